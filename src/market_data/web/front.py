"""The web view behind ``run --workers N``: one page over every worker.

The supervisor's front (``service/front.py``) serves ``/``, ``/ui`` and its
static files itself. For each page's ``/ui/ws`` it opens one WebSocket to
every worker's ``/ui/ws`` (loopback, with the same ``ui_token``), tells the
worker that owns the selected symbol which one it is, keeps the latest view of
each worker, and pushes the merged view through the same conflating
:func:`~market_data.web.push.push_loop` as a single process (at most 10
frames/s; a slow page dropped). A worker that does not answer has its symbols
shown in state ``unknown`` (not live), and the link to it is retried every
second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec
from aiohttp import WSMsgType, web

from market_data.web.push import PushPolicy, push_loop
from market_data.web.ui import add_page_routes, open_page, selected_symbol, static_files

log = logging.getLogger(__name__)

_RETRY_S = 1.0
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder()


def _unknown_row(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "state": "unknown",
        "live": False,
        "updated_ms": None,
        "best_bid": None,
        "best_ask": None,
        "spread_bps": None,
        "last_price": None,
        "volume_24h": None,
        "change_24h": None,
        "change_pct_24h": None,
        "update_rate": 0.0,
        "last_reset": "worker not answering",
        "halted": False,
    }


def merge_views(
    workers: Sequence[tuple[int, Sequence[str]]],
    views: dict[int, dict[str, Any]],
    symbol: str | None,
) -> dict[str, Any]:
    """One view from each worker's (``views`` by worker index; a missing one is down)."""
    rows: list[dict[str, Any]] = []
    connections: list[dict[str, Any]] = []
    redis_ok, redis_error = True, None
    version = None
    detail = None
    workers_out = []
    for index, symbols in workers:
        view = views.get(index)
        workers_out.append({"index": index, "up": view is not None})
        if view is None:
            rows.extend(_unknown_row(s) for s in symbols)
            redis_ok = False
            redis_error = redis_error or f"worker {index} not answering"
            continue
        overview = view["overview"]
        version = version or overview.get("version")
        rows.extend(overview["symbols"])
        connections.extend(
            {**line, "name": f"w{index}/{line['name']}"} for line in overview["connections"]
        )
        if not overview["redis"]["connected"]:
            redis_ok = False
            redis_error = redis_error or overview["redis"]["error"]
        worker_detail = view.get("detail")
        if symbol is not None and worker_detail is not None and worker_detail["symbol"] == symbol:
            detail = worker_detail
    return {
        "overview": {
            "version": version,
            "started": all(w["up"] for w in workers_out),
            "shutting_down": False,
            "role": None,
            "redis": {"connected": redis_ok, "error": redis_error},
            "connections": connections,
            "skipped": {},
            "symbols": rows,
            "workers": workers_out,
        },
        "detail": detail,
    }


class FrontView:
    """``/ui`` on the supervisor's front, merging the workers' pushes."""

    def __init__(self, workers: Sequence[Any], token: str) -> None:
        #: WorkerAddress-like: ``index``, ``symbols``, ``url`` (http://127.0.0.1:port).
        self.workers = list(workers)
        self.token = token
        self.files = static_files()
        self._session: aiohttp.ClientSession | None = None
        self.clients = 0

    def mount(self, web_app: web.Application) -> None:
        add_page_routes(web_app, self.files, self.token)
        web_app.router.add_get("/ui/ws", self.websocket)
        web_app.on_cleanup.append(self._close)

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        ws = await open_page(request, self.token, self.clients)
        self.clients += 1
        link = _Links(self, ws, request)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT:
                    await link.select(selected_symbol(message.data))
        finally:
            self.clients -= 1
            await link.close()
        return ws


class _Links:
    """One page's links to every worker and its push loop."""

    def __init__(self, front: FrontView, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.front = front
        self.ws = ws
        self.request = request
        self.symbol: str | None = None
        self.views: dict[int, dict[str, Any]] = {}
        self.upstream: dict[int, aiohttp.ClientWebSocketResponse] = {}
        self.owner = {s: w.index for w in front.workers for s in w.symbols}
        self.layout = [(w.index, tuple(w.symbols)) for w in front.workers]
        self.tasks = [
            asyncio.create_task(self._follow(worker), name=f"ui-worker-{worker.index}")
            for worker in front.workers
        ]
        self.tasks.append(asyncio.create_task(self._push(), name="ui-front-push"))

    def _selection_for(self, index: int) -> bytes:
        owned = self.symbol if self.owner.get(self.symbol or "") == index else None
        return _encode({"symbol": owned})

    async def select(self, symbol: str | None) -> None:
        self.symbol = symbol
        for index, upstream in list(self.upstream.items()):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await upstream.send_str(self._selection_for(index).decode())

    async def _follow(self, worker: Any) -> None:
        url = worker.url.replace("http://", "ws://", 1) + "/ui/ws"
        headers = {"Authorization": f"Bearer {self.front.token}"} if self.front.token else {}
        while True:
            try:
                async with self.front._client_session().ws_connect(
                    url, headers=headers, heartbeat=10.0, timeout=aiohttp.ClientWSTimeout(5.0)
                ) as upstream:
                    self.upstream[worker.index] = upstream
                    await upstream.send_str(self._selection_for(worker.index).decode())
                    async for message in upstream:
                        if message.type is not WSMsgType.TEXT:
                            break
                        frame = _decode.decode(message.data)
                        self.views[worker.index] = frame["view"]
            except (aiohttp.ClientError, OSError, TimeoutError, msgspec.DecodeError) as exc:
                log.debug("web view: worker %d link: %s", worker.index, exc)
            self.upstream.pop(worker.index, None)
            self.views.pop(worker.index, None)
            await asyncio.sleep(_RETRY_S)

    def _view(self) -> bytes:
        return _encode(merge_views(self.layout, self.views, self.symbol))

    async def _push(self) -> None:
        async def send(frame: bytes) -> None:
            await self.ws.send_frame(frame, WSMsgType.TEXT)

        transport = self.request.transport
        try:
            await push_loop(
                self._view,
                send,
                lambda: 0 if transport is None else transport.get_write_buffer_size(),
                clock=time.monotonic,
                now_ms=lambda: int(time.time() * 1000),
                policy=PushPolicy(),
            )
        except Exception as exc:  # a slow page, or its connection gone
            log.info("web view (front): page dropped: %s", exc)
            if transport is not None:
                transport.abort()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
