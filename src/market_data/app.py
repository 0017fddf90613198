"""Assemble the running service: outputs, the service itself, and shut it down.

``run(config, shutdown)`` takes its configuration and its shutdown signal as
arguments (mini-redis's ``run(listener, shutdown)``), so tests start and stop
the whole service in-process.
"""

import asyncio
import logging
from collections.abc import Callable

from market_data.config import Config
from market_data.io.redis_sink import RedisSink
from market_data.io.redis_url import redact_url
from market_data.io.shm_writer import ShmRingWriter
from market_data.io.sinks import RedisOutput, ShmOutput, Sink
from market_data.service import MarketDataService

log = logging.getLogger(__name__)


class App:
    """The service and its outputs, built from a config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.redis = RedisSink(config.redis_url, max_pending_trades=config.publish_trades_max_queue)
        self.shm: ShmRingWriter | None = None
        sinks: list[Sink] = [RedisOutput(self.redis)]
        if config.shm_enabled:
            self.shm = ShmRingWriter.create(
                config.shm_name, config.shm_capacity_bytes, config.shm_group_access
            )
            sinks.append(ShmOutput(self.shm))
        self.sinks = sinks
        self.service = MarketDataService(config, sinks)

    async def run(self, shutdown: asyncio.Event) -> None:
        cfg = self.config
        log.info(
            "starting: %d symbols, exchange %s, redis %s",
            len(cfg.symbols),
            cfg.exchange_ws_url,
            redact_url(cfg.redis_url),
            extra={"symbols": len(cfg.symbols)},
        )
        self.redis.start()
        try:
            await self.service.run(shutdown)
        finally:
            for sink in self.sinks:
                await sink.aclose()
            log.info("stopped")


async def run(
    config: Config, shutdown: asyncio.Event, on_started: Callable[[App], None] | None = None
) -> None:
    """Run the service until ``shutdown`` is set."""
    app = App(config)
    if on_started is not None:
        on_started(app)
    await app.run(shutdown)
