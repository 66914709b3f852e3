"""Where bytes live: git repositories (dulwich) and the content-addressed blob store."""
