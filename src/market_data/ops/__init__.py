"""Running it in production: config, HTTP endpoints, metrics, readiness, logs, affinity."""
