"""Where publications go: Redis, the shared-memory ring, and the sink interface they share."""
