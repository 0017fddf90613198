"""The project's own error types.

Foreign exceptions (redis, aiohttp, OSError, YAML) are translated into these at
the boundary, so the service and the CLI only ever handle ``MarketDataError``.
Add new error classes below, one per failure the caller can act on.
"""


class MarketDataError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(MarketDataError):
    """The configuration is invalid; the message lists every problem, one per line."""
