"""Pure Xet formats: hashes, content-defined chunking, xorbs and shards (no HTTP, no database)."""
