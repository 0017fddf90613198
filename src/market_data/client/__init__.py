"""What consumers import or run: Redis and shared-memory readers, terminal views."""
