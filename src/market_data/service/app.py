"""Assemble the running service: outputs, HTTP, the service itself, and shut it down.

``App.run(shutdown)`` takes its shutdown signal as an argument (mini-redis's
``run(listener, shutdown)``), so tests start and stop the whole service
in-process. :func:`serve` is the production entry point: it adds the signal
handling around it.

Shutdown order, so that nothing is lost and load balancers stop first:
readiness answers 503 ("shutting down") from the moment ``shutdown`` is set,
then the feeds close, every book is published as no longer live, the Redis
publisher flushes what is pending (bounded), and only then does the HTTP
server stop.
"""

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from market_data.core.state import BookState
from market_data.history.wiring import attach as attach_history
from market_data.history.wiring import build_history
from market_data.ops.affinity import apply_cpu_affinity
from market_data.ops.config import Config
from market_data.ops.gc_freeze import freeze_startup_objects
from market_data.ops.http import HttpServer
from market_data.ops.metrics import build_registry
from market_data.outputs.redis_client import redis_sink
from market_data.outputs.redis_url import redact_url
from market_data.outputs.shm import ShmRingWriter
from market_data.outputs.sinks import RedisOutput, ShmOutput, Sink
from market_data.service.engine import MarketDataService
from market_data.web.tape import TradeTape
from market_data.wire.ring import slot_size_for_depth

log = logging.getLogger(__name__)

#: Seconds a graceful shutdown may take before the process exits anyway.
SHUTDOWN_GRACE_S = 15.0


class App:
    """The service, its outputs and its HTTP server, built from a config."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.redis = redis_sink(
            config.redis_url,
            max_pending_trades=config.publish_trades_max_queue,
            trade_stream_maxlen=config.trade_stream_maxlen,
        )
        self.shm: ShmRingWriter | None = None
        sinks: list[Sink] = [RedisOutput(self.redis)]
        if config.shm_enabled:
            self.shm = ShmRingWriter.create(
                config.shm_name,
                config.shm_capacity_bytes,
                config.shm_group_access,
                slot_size=slot_size_for_depth(config.order_book_depth),
            )
            sinks.append(ShmOutput(self.shm))
        #: The recent trades of each symbol, for the web view's tape.
        self.tape = TradeTape()
        sinks.append(self.tape)
        #: Recording and the history store (``market_data.history``), when configured.
        self.history = build_history(config)
        if self.history is not None:
            sinks.append(self.history)
        self.sinks = sinks
        self.service = MarketDataService(config, sinks)
        if self.history is not None:
            attach_history(self.service, self.history)
        self.metrics_registry, self.metrics = build_registry(self)
        self.http = HttpServer(self)
        self._shutdown: asyncio.Event | None = None
        self.stopping = False

    @property
    def http_port(self) -> int | None:
        """The port the HTTP server listens on (None before it started)."""
        return self.http.port

    @property
    def shutting_down(self) -> bool:
        """True from the moment shutdown is requested: /ready answers 503."""
        return self.stopping or (self._shutdown is not None and self._shutdown.is_set())

    async def run(self, shutdown: asyncio.Event) -> None:
        """Run until ``shutdown`` is set, then stop in order (see the module docstring)."""
        cfg = self.config
        self._shutdown = shutdown
        apply_cpu_affinity(cfg.cpu_affinity)
        log.info(
            "starting: %d symbols, exchange %s, redis %s",
            len(cfg.symbols),
            cfg.exchange_ws_url,
            redact_url(cfg.redis_url),
            extra={"symbols": len(cfg.symbols)},
        )
        self.redis.start()
        announcer = asyncio.create_task(self._announce_shutdown(shutdown), name="shutdown-log")
        try:
            await self.http.start()
            await self.service.run(shutdown)
        finally:
            self.stopping = True
            announcer.cancel()
            await asyncio.gather(announcer, return_exceptions=True)
            for sink in self.sinks:
                await sink.aclose()
            await self.http.stop()
            log.info(
                "stopped: %s",
                ", ".join(self._final_books()) or "no books",
                extra={"final_books": self._final_books_detail()},
            )

    async def _announce_shutdown(self, shutdown: asyncio.Event) -> None:
        await shutdown.wait()
        log.info("shutdown requested: /ready now 503, closing feeds, flushing publications")

    def _final(self) -> dict[str, tuple[BookState, int]]:
        """Each book as it was when the service stopped (before it was retired)."""
        final = self.service.final_books
        return {
            symbol: final.get(symbol, (state.state, state.last_update_id))
            for symbol, state in self.service.symbols.items()
        }

    def _final_books(self) -> list[str]:
        return [f"{symbol} {state.label} u={u}" for symbol, (state, u) in self._final().items()]

    def _final_books_detail(self) -> dict[str, dict[str, object]]:
        return {
            symbol: {"state": state.label, "last_update_id": u}
            for symbol, (state, u) in self._final().items()
        }


async def run(
    config: Config, shutdown: asyncio.Event, on_started: Callable[[App], None] | None = None
) -> None:
    """Run the service until ``shutdown`` is set."""
    app = App(config)
    if on_started is not None:
        on_started(app)
    await app.run(shutdown)


async def serve(config: Config, grace_s: float = SHUTDOWN_GRACE_S) -> int:
    """Run until SIGTERM or SIGINT, then shut down gracefully; returns the exit code.

    The first signal starts the graceful shutdown (bounded by ``grace_s``: past
    it the process exits with status 1); a second signal exits at once with
    128 + the signal number, as a shell would report it.
    """
    loop = asyncio.get_running_loop()
    shutdown = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if shutdown.is_set():
            log.warning("%s again: exiting now, without a clean shutdown", name)
            _exit_now(128 + signum)
        log.info("%s received: shutting down (%.0fs at most)", name, grace_s)
        shutdown.set()
        loop.call_later(grace_s, _shutdown_overran, grace_s)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        await run(config, shutdown, on_started=_freeze_startup_objects)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


def _freeze_startup_objects(_: App) -> None:
    freeze_startup_objects()


def _shutdown_overran(grace_s: float) -> None:
    log.error("shutdown took longer than %.0fs: exiting now", grace_s)
    _exit_now(1)


def _exit_now(code: int) -> None:
    logging.shutdown()
    os._exit(code)
