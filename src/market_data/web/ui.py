"""The web view's routes on the service's HTTP server.

- ``GET /``: redirects to ``/ui`` (keeping the query, so ``?token=`` follows);
- ``GET /ui``: the page (``static/index.html``);
- ``GET /ui/static/{name}``: its script and style sheet (a fixed list, read once
  from the package; they hold no data, so they need no token);
- ``GET /ui/stats``: what the pages cost (pages open, dropped, frames sent, the
  event loop's time spent on them, the p99 and longest of its single stretches);
- ``GET /ui/ws``: the WebSocket. The page sends ``{"symbol": "BTCUSDT"}`` (or
  ``{"symbol": null}`` for the overview only); the service pushes
  ``{"now_ms": ..., "view": {"overview": ..., "detail": ...}}`` through the
  service's :class:`~market_data.web.fanout.Fanout` (at most 10 frames/s,
  conflated; each view built once per tick for every page; a slow page is
  dropped).

The page and the WebSocket answer 401 without the ``ui_token`` when one is
configured. Read-only: nothing the page sends changes the service.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from market_data.web.auth import require_token
from market_data.web.fanout import Fanout, Page
from market_data.web.push import SlowClient
from market_data.web.snapshot import ViewModel

if TYPE_CHECKING:
    from market_data.service.app import App

log = logging.getLogger(__name__)

#: Pages served at once; more are refused (503) rather than slowing the service.
MAX_CLIENTS = 100
#: A view is built at most once per this many seconds, whatever the number of pages.
BUILD_EVERY_S = 0.05

STATIC_TYPES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
#: The page loads nothing from elsewhere, and may talk only to its own origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def static_files() -> dict[str, bytes]:
    """The page's files, read from the installed package."""
    root = resources.files("market_data.web") / "static"
    return {name: (root / name).read_bytes() for name in STATIC_TYPES}


async def open_page(request: web.Request, token: str, open_pages: int) -> web.WebSocketResponse:
    """Accept a page's WebSocket: the token checked, at most MAX_CLIENTS at once."""
    require_token(token, request)
    if open_pages >= MAX_CLIENTS:
        raise web.HTTPServiceUnavailable(text=f"{MAX_CLIENTS} pages open already")
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096, compress=False)
    await ws.prepare(request)
    return ws


class _Selection(msgspec.Struct):
    symbol: str | None = None


_decode_selection = msgspec.json.Decoder(_Selection)


def selected_symbol(text: str) -> str | None:
    """The symbol a page asks for (None: the overview only; bad input is ignored)."""
    try:
        symbol = _decode_selection.decode(text).symbol
    except msgspec.DecodeError:  # ValidationError included
        return None
    if symbol is None or not symbol.isalnum() or len(symbol) > 20:
        return None
    return symbol.upper()


@dataclass
class ViewCache:
    """Encoded views, each part rebuilt at most every ``BUILD_EVERY_S``.

    The overview is built once per period for every page; a symbol's detail
    once per period for every page that shows it.
    """

    model: ViewModel
    clock: Any
    _built: dict[str | None, tuple[float, bytes]] = field(default_factory=dict)

    def _part(self, key: str | None, build: Any) -> bytes:
        now = self.clock()
        cached = self._built.get(key)
        if cached is not None and now - cached[0] < BUILD_EVERY_S:
            return cached[1]
        if len(self._built) > 256:
            self._built.clear()
        body: bytes = build()
        self._built[key] = (now, body)
        return body

    def view(self, symbol: str | None) -> bytes:
        model = self.model
        overview = self._part(None, lambda: model.encode(model.overview()))
        detail = b"null"
        if symbol is not None:
            detail = self._part(symbol, lambda: model.encode(model.detail(symbol)))
        return b'{"overview":%s,"detail":%s}' % (overview, detail)


class WebView:
    """The routes of the page on one service."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.token = app.config.ui_token
        self.files = static_files()
        self.model = ViewModel(app, app.tape)
        self.cache = ViewCache(self.model, app.service.clock)
        self.fanout = Fanout(
            lambda symbol: self.cache.view(symbol),
            clock=app.service.clock,
            now_ms=self.model.now_ms,
            spent=self._spent,
        )
        self.clients = 0
        self.dropped = 0
        #: Time the event loop spent building and sending views, and its longest stretch.
        self.busy_ns = 0
        self.max_hold_ns = 0
        self._holds: deque[int] = deque(maxlen=10_000)  # the latest stretches, ns

    @property
    def frames_sent(self) -> int:
        return self.fanout.frames_sent

    def mount(self, web_app: web.Application) -> None:
        add_page_routes(web_app, self.files, self.token)
        web_app.router.add_get("/ui/ws", self.websocket)
        web_app.router.add_get("/ui/stats", self.stats)
        web_app.on_cleanup.append(self._close)

    async def _close(self, _: web.Application) -> None:
        await self.fanout.close()

    def _spent(self, spent_ns: int) -> None:
        self.busy_ns += spent_ns
        self._holds.append(spent_ns)
        if spent_ns > self.max_hold_ns:
            self.max_hold_ns = spent_ns

    async def stats(self, request: web.Request) -> web.Response:
        """What the pages cost: ``GET /ui/stats`` (same token as the page)."""
        require_token(self.token, request)
        return web.json_response(
            {
                "pages": self.clients,
                "dropped": self.dropped,
                "frames_sent": self.frames_sent,
                "busy_s": self.busy_ns / 1e9,
                "max_hold_us": self.max_hold_ns / 1e3,
                "hold_p99_us": _p99(self._holds) / 1e3,
            }
        )

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = await open_page(request, self.token, self.clients)
        transport = request.transport
        if transport is None:  # gone while the handshake was written
            return ws
        self.clients += 1
        page = Page(transport, lambda slow: self._drop(slow, transport), lambda: ws.closed)
        self.fanout.add(page)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    page.symbol = selected_symbol(message.data)
        finally:
            self.clients -= 1
            self.fanout.remove(page)
        return ws

    def _drop(self, slow: SlowClient, transport: asyncio.Transport) -> None:
        self.dropped += 1
        log.info("web view: dropped a page that did not keep up (%s)", slow)
        transport.abort()  # a stuck page cannot hold a close handshake either


def _p99(samples: deque[int]) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))])


def add_page_routes(web_app: web.Application, files: dict[str, bytes], token: str) -> None:
    """``/``, ``/ui`` and ``/ui/static/*`` (shared with the ``--workers`` front)."""

    async def root(request: web.Request) -> web.StreamResponse:
        query = request.query_string
        raise web.HTTPFound("/ui" + (f"?{query}" if query else ""))

    async def page(request: web.Request) -> web.StreamResponse:
        require_token(token, request)
        return web.Response(
            body=files["index.html"],
            content_type="text/html",
            charset="utf-8",
            headers={
                "Content-Security-Policy": CSP,
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff",
            },
        )

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in files or name == "index.html":
            raise web.HTTPNotFound()
        return web.Response(
            body=files[name],
            content_type=STATIC_TYPES[name],
            charset="utf-8",
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )

    web_app.router.add_get("/", root)
    web_app.router.add_get("/ui", page)
    web_app.router.add_get("/ui/static/{name}", static)
