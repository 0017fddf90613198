"""HTTP endpoints: liveness, readiness, Prometheus metrics and JSON views of the books.

- ``GET /health``: the process answers (no dependency is checked, it stays cheap).
- ``GET /ready``: 200 only when Redis answers, a feed is up and every book is
  live and fresh; otherwise 503 with one reason per failing dependency or symbol.
- ``GET /metrics``: Prometheus text from the app's own registry.
- ``GET /book/{symbol}``: the top of the book, its state, last update id and age.
- ``GET /stats/{symbol}``: the rolling 24h statistics.
- ``GET /ui`` (``/`` redirects there): the web view (``market_data.web``).

Every response carries ``Access-Control-Allow-Origin`` from ``cors_allow_origin``
(none when it is empty), so a browser dashboard can read the JSON directly.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from market_data import __version__
from market_data.errors import MarketDataError
from market_data.ops.readiness import check_readiness
from market_data.service.symbols import SymbolState
from market_data.web.ui import WebView
from market_data.wire.payloads import price_text

if TYPE_CHECKING:
    from market_data.service.app import App

log = logging.getLogger(__name__)

MAX_BOOK_DEPTH = 1000
_encode = msgspec.json.Encoder().encode
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpServerError(MarketDataError):
    """The HTTP server could not listen on its address."""


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(body), status=status, content_type="application/json")


class HttpServer:
    """The aiohttp server of one :class:`~market_data.service.app.App`."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._cors_origin = app.config.cors_allow_origin
        self.web_view = WebView(app)

    def build(self) -> web.Application:
        """The aiohttp application (routes and the CORS middleware)."""
        web_app = web.Application(middlewares=[self._cors])
        web_app.router.add_get("/health", self.health)
        web_app.router.add_get("/ready", self.ready)
        web_app.router.add_get("/metrics", self.metrics)
        web_app.router.add_get("/book/{symbol}", self.book)
        web_app.router.add_get("/stats/{symbol}", self.stats)
        self.web_view.mount(web_app)  # /, /ui, /ui/static/*, /ui/ws
        return web_app

    async def start(self) -> int:
        """Listen on ``http_host:health_port``; returns the bound port (0 picks one)."""
        config = self.app.config
        runner = web.AppRunner(
            self.build(), handle_signals=False, access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, config.http_host, config.health_port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror.lower() if exc.strerror else str(exc)
            raise HttpServerError(
                f"cannot listen on {config.http_host}:{config.health_port}: {reason}"
            ) from None
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info(
            "HTTP on %s:%d (/health /ready /metrics /book /stats /ui)",
            config.http_host,
            self.port,
            extra={"port": self.port},
        )
        return self.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # ------------------------------------------------------------ middleware

    @web.middleware
    async def _cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = self._cors_origin
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # 404 for an unknown route, 405...
            if origin:
                exc.headers["Access-Control-Allow-Origin"] = origin
            raise
        if origin:
            response.headers["Access-Control-Allow-Origin"] = origin
        return response

    # -------------------------------------------------------------- handlers

    async def health(self, request: web.Request) -> web.Response:
        return _json({"status": "healthy", "service": "market-data", "version": __version__})

    async def ready(self, request: web.Request) -> web.Response:
        readiness = await check_readiness(self.app)
        return _json(readiness.as_json(), 200 if readiness.ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        readiness = await check_readiness(self.app)
        self.app.metrics.ready = readiness.ready
        body = generate_latest(self.app.metrics_registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def book(self, request: web.Request) -> web.Response:
        state = self._symbol(request)
        if isinstance(state, web.Response):
            return state
        try:
            depth = int(request.query.get("depth", self.app.config.order_book_depth))
        except ValueError:
            depth = 0
        if not 1 <= depth <= MAX_BOOK_DEPTH:
            return _json(
                {"error": f"depth must be an integer from 1 to {MAX_BOOK_DEPTH}"}, status=400
            )
        service = self.app.service
        book_state = state.state
        trusted = book_state.trusted
        bids, asks = state.top(depth) if trusted else ([], [])
        age = service.book_age_s(state)
        return _json(
            {
                "symbol": state.symbol,
                "state": book_state.label,
                "initialized": trusted,
                "last_update_id": state.last_update_id if trusted else 0,
                "event_time": state.event_time_ms,
                "age_s": None if age is None else round(age, 6),
                "bids": [[price_text(price), qty] for price, qty in bids],
                "asks": [[price_text(price), qty] for price, qty in asks],
                "book_updates": state.book_updates,
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        state = self._symbol(request)
        if isinstance(state, web.Response):
            return state
        now_ms = int(self.app.service.wall_clock() * 1000)
        stats = state.stats.snapshot(now_ms)
        precision = state.precision
        return _json(
            {
                "symbol": state.symbol,
                "last_price": stats.last_price,
                "last_trade_time": stats.last_trade_ms,
                "open_24h": stats.open_price,
                "high_24h": stats.high,
                "low_24h": stats.low,
                "volume_24h": precision.qty(stats.volume),
                "quote_volume_24h": precision.quote(stats.quote_volume),
                "trade_count_24h": stats.trade_count,
                "price_change_24h": precision.price(stats.price_change),
                "price_change_percent_24h": precision.percent(stats.price_change_percent),
                "window_start": (
                    stats.window_start_ms if stats.complete else stats.covered_from_ms
                ),
                "window_complete": stats.complete,
                "updated_at": stats.updated_ms,
                "trades_received": state.trades,
            }
        )

    def _symbol(self, request: web.Request) -> SymbolState | web.Response:
        """The symbol's state, or a 404 response naming the symbols served."""
        symbol = request.match_info["symbol"].upper()
        state = self.app.service.symbols.get(symbol)
        if state is None:
            served = ", ".join(self.app.service.symbols)
            return _json(
                {
                    "error": f"unknown symbol {symbol!r}: this service follows {served}",
                    "symbols": list(self.app.service.symbols),
                },
                status=404,
            )
        return state
