"""The running service: feeds in, the sync core per symbol, publication out, workers."""
