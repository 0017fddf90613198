"""A lean exchange for load tests: pre-built diff-depth frames written straight to the socket.

The simulated exchange (``sim/``) builds every frame on the fly and sends it
through aiohttp: realistic, but a Python process doing that cannot offer more
than a few tens of thousands of frames/s next to the service on 2 cores. Here
every frame is built before the run (envelope, update ids and WebSocket header
included), the upgrade handshake is aiohttp's, and the paced sender joins the
frames due per connection and writes them to the transport in one call (about
1 μs a frame). Each send is stamped with ``time.monotonic_ns()`` per symbol and
frame index, so a subscriber in the same process turns a published
``last_update_id`` back into the exact time its update left the exchange.

Update ids: frame ``k`` of every symbol covers ``U = BASE + 10k + 1`` to
``u = BASE + 10(k + 1)`` with ``pu = BASE + 10k``; the REST snapshot sits inside
frame 0 (``lastUpdateId = BASE + 5``), so the first frame bridges it.
Levels stay on their side of a fixed mid price: the book never crosses.

The level changes of a symbol's frames cycle through its ``_BODY_VARIANTS``
pre-built bodies, so the same (price, quantity) pairs keep coming back, which
real streams rarely do: a cache keyed by level values hits here far more often than
on a real feed (one such cache counted 6% fewer instructions here, yet made
``bench e2e`` slower). Judge such a change on the real captures in
``tests/data`` too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from array import array
from types import TracebackType

import msgspec
from aiohttp import web

BASE_UPDATE_ID = 1_000_000
IDS_PER_FRAME = 10
SNAPSHOT_UPDATE_ID = BASE_UPDATE_ID + IDS_PER_FRAME // 2
PRICE_TICK = 0.1
_BODY_VARIANTS = 64
_TOUCHED_LEVELS = 50  # diffs change the levels near the top, as real ones mostly do
_encode = msgspec.json.Encoder().encode


def update_id(index: int) -> int:
    """The final update id (``u``) of frame ``index``."""
    return BASE_UPDATE_ID + (index + 1) * IDS_PER_FRAME


def frame_index(last_update_id: int) -> int:
    """The frame whose ``u`` is ``last_update_id`` (-1 for ids before frame 0)."""
    return (last_update_id - BASE_UPDATE_ID) // IDS_PER_FRAME - 1


def ws_text_frame(payload: bytes) -> bytes:
    """An unmasked (server to client) WebSocket text frame."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


@dataclasses.dataclass(frozen=True)
class SymbolFrames:
    """Everything served for one symbol: its REST snapshot and its frames, in order."""

    symbol: str
    snapshot: bytes  # GET /fapi/v1/depth body
    frames: list[bytes]  # complete WebSocket frames; frame k carries update_id(k)
    payload_bytes: int  # mean JSON size of a frame


def build_frames(
    symbols: list[str],
    frames_per_symbol: int,
    *,
    depth_stream: str = "depth@100ms",
    changes_per_side: int = 5,
    snapshot_levels: int = 200,
    seed: int = 0,
) -> dict[str, SymbolFrames]:
    """Pre-build ``frames_per_symbol`` diff frames and a snapshot for every symbol."""
    rng = random.Random(seed)
    event_ms = int(time.time() * 1000)
    built: dict[str, SymbolFrames] = {}
    for position, symbol in enumerate(symbols):
        mid = 1000.0 + position
        bids = [f"{mid - PRICE_TICK * (i + 1):.1f}" for i in range(snapshot_levels)]
        asks = [f"{mid + PRICE_TICK * (i + 1):.1f}" for i in range(snapshot_levels)]
        snapshot = _encode(
            {
                "lastUpdateId": SNAPSHOT_UPDATE_ID,
                "E": event_ms,
                "T": event_ms,
                "bids": [[price, f"{rng.uniform(0.1, 10):.3f}"] for price in bids],
                "asks": [[price, f"{rng.uniform(0.1, 10):.3f}"] for price in asks],
            }
        )
        near_bids, near_asks = bids[:_TOUCHED_LEVELS], asks[:_TOUCHED_LEVELS]
        bodies = [
            b'"b":%s,"a":%s}}'
            % (
                _encode(_changes(rng, near_bids, changes_per_side)),
                _encode(_changes(rng, near_asks, changes_per_side)),
            )
            for _ in range(_BODY_VARIANTS)
        ]
        head = b'{"stream":"%s@%s","data":{"e":"depthUpdate","s":"%s",' % (
            symbol.lower().encode(),
            depth_stream.encode(),
            symbol.encode(),
        )
        frames: list[bytes] = []
        total = 0
        for index in range(frames_per_symbol):
            first = BASE_UPDATE_ID + index * IDS_PER_FRAME
            payload = (
                head
                + b'"E":%d,"T":%d,"U":%d,"u":%d,"pu":%d,'
                % (event_ms + index, event_ms + index, first + 1, first + IDS_PER_FRAME, first)
                + bodies[index % _BODY_VARIANTS]
            )
            total += len(payload)
            frames.append(ws_text_frame(payload))
        built[symbol] = SymbolFrames(
            symbol, snapshot, frames, total // frames_per_symbol if frames_per_symbol else 0
        )
    return built


def _changes(rng: random.Random, prices: list[str], count: int) -> list[list[str]]:
    """``count`` level changes among ``prices``: new absolute quantities, one in five a removal."""
    picked = rng.sample(prices, min(count, len(prices)))
    return [[p, "0" if rng.random() < 0.2 else f"{rng.uniform(0.1, 10):.3f}"] for p in picked]


@dataclasses.dataclass(eq=False)
class _Feed:
    """One symbol's sending state: next frame, where it goes, when each frame left."""

    symbol: str
    frames: list[bytes]
    send_ns: array[int]
    next_index: int = 0
    transport: asyncio.Transport | None = None


@dataclasses.dataclass(frozen=True)
class PacedRun:
    """What a paced run sent."""

    sent: int
    throttled: int  # frames skipped because the client's socket buffer was full
    exhausted: int  # frames skipped because the pre-built frames ran out
    elapsed_s: float


class LoadGenerator:
    """A WebSocket + REST endpoint shaped like Binance USD-M futures, serving pre-built frames.

    ``async with LoadGenerator(frames) as gen:`` listens on a free port; the
    service connects to ``gen.ws_base_url`` (``/stream``, ``/public/stream`` and
    ``/market/stream``; trade streams get no frames) and fetches snapshots from
    ``gen.rest_base_url``. :meth:`prime` sends frame 0 of every symbol,
    :meth:`run_paced` the rest at a total rate, round-robin over symbols.
    """

    def __init__(
        self,
        frames: dict[str, SymbolFrames],
        *,
        host: str = "127.0.0.1",
        max_buffered_bytes: int = 4 << 20,
    ) -> None:
        self.host = host
        self.max_buffered_bytes = max_buffered_bytes
        self.snapshots = {symbol: item.snapshot for symbol, item in frames.items()}
        self.feeds = {
            symbol: _Feed(symbol, item.frames, array("q", bytes(8 * len(item.frames))))
            for symbol, item in frames.items()
        }
        self.rest_requests = 0
        self._sockets: set[web.WebSocketResponse] = set()
        self._connected = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # -- lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> LoadGenerator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        for route in ("", "/public", "/market"):
            app.router.add_get(f"{route}/stream", self._ws)
        app.router.add_get("/fapi/v1/depth", self._rest_depth)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def ws_base_url(self) -> str:
        return f"ws://{self.host}:{self._port}"

    @property
    def rest_base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    # -- sending ------------------------------------------------------------------

    def send_ns(self, symbol: str) -> array[int]:
        """Send time (monotonic ns) of each frame of ``symbol``; 0 for frames not sent."""
        return self.feeds[symbol].send_ns

    def last_sent_index(self, symbol: str) -> int:
        return self.feeds[symbol].next_index - 1

    async def wait_connected(self, timeout_s: float) -> None:
        """Return once every symbol's depth stream has a connection."""
        async with asyncio.timeout(timeout_s):
            while any(feed.transport is None for feed in self.feeds.values()):
                self._connected.clear()
                await self._connected.wait()

    def prime(self) -> int:
        """Send frame 0 of every symbol not started yet; returns how many were sent."""
        sent = 0
        stamp = time.monotonic_ns()
        for feed in self.feeds.values():
            if feed.next_index == 0 and feed.transport is not None and feed.frames:
                feed.send_ns[0] = stamp
                feed.transport.write(feed.frames[0])
                feed.next_index = 1
                sent += 1
        return sent

    async def run_paced(self, rate_hz: float, seconds: float, tick_s: float = 0.001) -> PacedRun:
        """Send ``rate_hz`` frames/s in total for ``seconds``, round-robin over symbols."""
        loop = asyncio.get_running_loop()
        feeds = list(self.feeds.values())
        count = len(feeds)
        limit = self.max_buffered_bytes
        turn = scheduled = sent = throttled = exhausted = 0
        start = loop.time()
        end = start + seconds
        done = False
        while not done:
            await asyncio.sleep(tick_s)
            now = loop.time()
            if now >= end:
                now, done = end, True
            due = int(rate_hz * (now - start)) - scheduled
            if due <= 0:
                continue
            scheduled += due
            batches: dict[asyncio.Transport, list[bytes]] = {}
            picked: list[tuple[_Feed, int]] = []
            for _ in range(due):
                feed = feeds[turn]
                turn = turn + 1 if turn + 1 < count else 0
                transport = feed.transport
                if transport is None or transport.get_write_buffer_size() > limit:
                    throttled += 1
                    continue
                index = feed.next_index
                if index >= len(feed.frames):
                    exhausted += 1
                    continue
                feed.next_index = index + 1
                picked.append((feed, index))
                chunks = batches.get(transport)
                if chunks is None:
                    batches[transport] = [feed.frames[index]]
                else:
                    chunks.append(feed.frames[index])
            stamp = time.monotonic_ns()
            for feed, index in picked:
                feed.send_ns[index] = stamp
            for transport, chunks in batches.items():
                transport.write(b"".join(chunks))
            sent += len(picked)
        return PacedRun(sent, throttled, exhausted, loop.time() - start)

    # -- handlers -----------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False, heartbeat=None, max_msg_size=1 << 16)
        await ws.prepare(request)
        transport = request.transport
        assert transport is not None
        names = [name for name in request.query.get("streams", "").split("/") if name]
        mine = [
            self.feeds[symbol]
            for name in names
            if "@depth" in name and (symbol := name.partition("@")[0].upper()) in self.feeds
        ]
        for feed in mine:
            feed.transport = transport
        self._sockets.add(ws)
        self._connected.set()
        try:
            async for _ in ws:
                pass  # subscriptions at run time are not needed by the service
        finally:
            self._sockets.discard(ws)
            for feed in mine:
                if feed.transport is transport:
                    feed.transport = None
        return ws

    async def _rest_depth(self, request: web.Request) -> web.Response:
        self.rest_requests += 1
        snapshot = self.snapshots.get(request.query.get("symbol", "").upper())
        if snapshot is None:
            return web.Response(
                status=400,
                body=_encode({"code": -1121, "msg": "Invalid symbol."}),
                content_type="application/json",
            )
        return web.Response(body=snapshot, content_type="application/json")
