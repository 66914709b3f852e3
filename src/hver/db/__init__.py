"""Metadata in SQL: accounts, tokens and the repo index. Schema changes only via migrations."""
