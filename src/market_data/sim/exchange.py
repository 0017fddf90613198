"""Simulated Binance USD-M futures exchange: WebSocket streams and REST depth.

From the client side it looks like ``fstream.binance.com`` + ``fapi.binance.com``:

- WebSocket combined streams at ``/stream?streams=a/b``, raw streams at
  ``/ws/<name>``, and the 2026 split routes ``/public/...`` (depth, bookTicker)
  and ``/market/...`` (trades); ``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
  ``LIST_SUBSCRIPTIONS`` at run time, server pings. As on the real host, every
  SUBSCRIBE is acknowledged, also for names that do not exist, are uppercase or
  belong to another route, and such streams then send nothing; 1024 streams per
  connection and 10 incoming messages per second, beyond which the connection
  is closed with 1008 (BINANCE_FUTURES.md §2, from a public measurement of the
  live host by the polyoxide project, 2026-10).
- ``GET /fapi/v1/depth`` with Binance's limits, weights, 429, 451 and 400 answers.
- Fault injection (gaps, disconnects, malformed frames, silence, bursts) through
  methods on ``SimExchange`` and, periodically, through ``PeriodicFaults``.
- Either a live random-walk market (``sim/market.py``) or the replay of a capture
  (``sim/capture_source.py``) at its recorded pace or a speed factor.

Every diff-depth speed variant (``@depth``, ``@100ms``, ``@500ms``, ``@0ms``)
carries every diff: the pace is set by ``diff_rate_hz``, not by the name. That
is a simplification: on the exchange each speed aggregates its own interval
into a chain of its own (BINANCE_FUTURES.md §4); the service subscribes one
speed only. Frames are encoded once per event and shared by all subscribed
connections; each connection has its own writer task and queue, and a
connection whose queue passes ``max_queued_frames`` is closed as a slow
consumer (the exchange also drops clients that do not read, at a limit it does
not publish: this bound is the simulator's own).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from market_data.core.weights import (
    SNAPSHOT_LIMITS,
    WeightBudget,
    klines_weight,
    snapshot_weight,
)
from market_data.sim.capture_source import Capture, CaptureSnapshot, load_capture
from market_data.sim.faults import FaultCounters, MalformedKind, malformed_payload
from market_data.sim.history import TradeHistory
from market_data.sim.listing import exchange_info
from market_data.sim.market import MarketConfig, SimMarket
from market_data.sim.streams import StreamKind, StreamName, parse_stream, route_allows

log = logging.getLogger(__name__)

_DEFAULT_DEPTH_LIMIT = 500  # the exchange's default for GET /fapi/v1/depth
#: Weight of a depth request without ``limit`` (500 levels): 1, measured 2026-10
#: (BINANCE_FUTURES.md §4), though 500 levels asked for cost 10.
_NO_LIMIT_WEIGHT = 1

USED_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
GEO_BLOCKED_MSG = (
    "Service unavailable from a restricted location according to 'b. Eligibility' in "
    "https://www.binance.com/en/terms. Please contact customer service if you believe you "
    "received this message in error."
)
_encode = msgspec.json.Encoder().encode


class SimExchangeError(Exception):
    """The simulated exchange could not start (port taken, unreadable capture...)."""


@dataclass
class PeriodicFaults:
    """Faults injected on a timer (None: off). Each hits every symbol / connection."""

    drop_every_s: float | None = None
    disconnect_every_s: float | None = None
    malformed_every_s: float | None = None
    pause_every_s: float | None = None
    pause_seconds: float = 2.0
    burst_every_s: float | None = None
    burst_size: int = 100


@dataclass
class SimConfig:
    """Everything the simulated exchange can be told; defaults are gentle."""

    symbols: list[str] = field(default_factory=lambda: ["BTCUSDT", "ETHUSDT"])
    host: str = "127.0.0.1"
    port: int = 0  # 0: any free port (tests); the CLI defaults to 9443
    diff_rate_hz: float = 10.0  # depth diffs per second, per symbol
    trade_rate_hz: float = 2.0  # aggTrades per second, per symbol
    seed: int = 0
    market: MarketConfig = field(default_factory=MarketConfig)
    ping_interval_s: float | None = 180.0  # Binance pings every 3 minutes (§2)
    # BINANCE_FUTURES.md §2: "A connection lives at most 24 hours: plan a rotation
    # before the server cuts it." (the close code is not documented: 1000 here).
    max_connection_age_s: float = 86_400.0
    # A snapshot is often ahead of the stream: in the cryptofeed capture (tests/data,
    # four symbols) the event that bridges it arrived 7-990 ms after the REST answer,
    # its E 11-100 ms after the snapshot's. So a snapshot here includes the symbol's next
    # change, whose diff goes out at its usual time after the answer.
    snapshot_ahead: bool = True
    # BINANCE_FUTURES.md §2 (polyoxide's measurement of the live host, 2026-10): 1024
    # streams are accepted, the 1025th is refused and the connection closed with 1008.
    max_streams_per_connection: int = 1024
    # Same source: at most 10 incoming messages per second, then a 1008 close.
    max_incoming_per_s: int = 10
    # Per connection, independently (to measure redundant lines): a random extra delay
    # of up to this many ms on every data frame (order kept), and a chance to lose one.
    line_jitter_ms: float = 0.0
    line_drop_rate: float = 0.0
    max_queued_frames: int = 200_000  # per connection, before closing a slow consumer
    rest_weight_limit: int = 2400  # per minute
    rest_delay_s: float = 0.0  # extra latency of every REST answer
    geo_blocked: bool = False  # answer 451 to every REST request
    clock: Callable[[], float] = time.time  # wall clock: E/T stamps and the weight minute
    replay: Path | None = None  # a capture to replay instead of the random market
    replay_http: Path | None = None  # its REST snapshots, when not beside it
    speed: float = 1.0  # replay pace factor; <= 0 means as fast as possible
    replay_waits_for_subscriber: bool = True  # start the replay at the first subscription
    periodic: PeriodicFaults = field(default_factory=PeriodicFaults)
    ssl_context: ssl.SSLContext | None = None  # serve wss:// and https:// with it


class _Connection:
    """One client WebSocket: its streams, its outgoing queue and writer task."""

    def __init__(
        self,
        cid: int,
        ws: web.WebSocketResponse,
        request: web.Request,
        route: str,
        raw: bool,
        max_queued: int,
        on_overflow: Callable[[_Connection], None],
        jitter_s: float = 0.0,
        drop_rate: float = 0.0,
    ) -> None:
        self.cid = cid
        self.jitter_s = jitter_s
        self.drop_rate = drop_rate
        self.rng = random.Random(cid)
        self.dropped = 0
        self._last_due = 0.0
        self.max_queued = max_queued
        self.on_overflow = on_overflow
        self.ws = ws
        self.request = request
        self.route = route
        self.raw = raw  # raw streams send the payload without the {"stream","data"} envelope
        self.streams: dict[str, StreamName] = {}  # insertion-ordered, for LIST_SUBSCRIPTIONS
        #: Acknowledged names that carry nothing (unknown, uppercase, other route).
        self.silent: dict[str, None] = {}
        self.incoming: deque[float] = deque()  # receive times of the last second's messages
        self.queue: deque[bytes] = deque()
        self.wakeup = asyncio.Event()
        self.closed = False
        self.writer: asyncio.Task[None] | None = None

    def push_data(self, frame: bytes) -> None:
        """A stream frame, through this connection's own latency and losses (if any)."""
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self.dropped += 1
            return
        if not self.jitter_s:
            self.push(frame)
            return
        loop = asyncio.get_running_loop()
        # Strictly later than the previous frame's: timers due at the same instant run in
        # no fixed order, and one connection must keep its frames in order.
        due = max(self._last_due + 1e-6, loop.time() + self.rng.random() * self.jitter_s)
        self._last_due = due
        loop.call_at(due, self.push, frame)

    def push(self, frame: bytes) -> None:
        if self.closed:
            return
        self.queue.append(frame)
        if not self.wakeup.is_set():
            self.wakeup.set()
        elif len(self.queue) > self.max_queued:
            self.on_overflow(self)

    async def write_forever(self) -> None:
        send = self.ws.send_frame
        queue = self.queue
        try:
            while True:
                await self.wakeup.wait()
                self.wakeup.clear()
                while queue:
                    await send(queue.popleft(), WSMsgType.TEXT)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("connection %d: write stopped: %s", self.cid, exc)
            self.closed = True

    def abort(self) -> None:
        """Cut the TCP connection without a close frame."""
        self.closed = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()


class SimExchange:
    """The simulated exchange; ``async with SimExchange(config) as sim:`` runs it."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.counters = FaultCounters()
        self.rest_requests = 0
        self.geo_blocked = self.config.geo_blocked
        self.statuses: dict[str, str] = {}  # symbol -> exchangeInfo status (default TRADING)
        #: Every trade by minute, per symbol (live market only): klines and tickers.
        self.history: dict[str, TradeHistory] = {}
        self._ticker_due = 0.0
        self.replay_finished = asyncio.Event()
        self._budget = WeightBudget(self.config.rest_weight_limit)
        self._limited_until = 0.0  # the last 429's Retry-After runs until then
        self._banned_until = 0.0
        self.bans = 0  # 418s given (clients that did not back off after a 429)
        self._connections: dict[int, _Connection] = {}
        self._ids = itertools.count(1)
        self._subscribers: dict[str, set[_Connection]] = {}
        self._channel_names: dict[tuple[str, str], set[str]] = {}
        self._partials: dict[tuple[str, str], StreamName] = {}
        self._partial_due: dict[tuple[str, str], float] = {}
        self._prefixes: dict[str, bytes] = {}
        self._drops: dict[str, int] = {}
        #: Per symbol, a diff in a snapshot already and not sent yet: (its pu, its frame).
        self._held_diffs: dict[str, tuple[int, bytes]] = {}
        self._paused_until: dict[str, float] = {}  # symbol ("" = all) -> loop time
        self._trades_muted_until: dict[str, float] = {}  # symbol -> loop time
        self._first_subscriber = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Future[bool]] = set()  # closes under way
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._capture: Capture | None = None
        self._replay_channels: set[tuple[str, str]] = set()
        self._replay_pos_ns = 0
        self._market: SimMarket | None = None
        if self.config.replay is not None:
            self._capture = load_capture(self.config.replay, self.config.replay_http)
            for frame in self._capture.frames:
                parsed = parse_stream(frame.stream)
                if parsed is not None:
                    self._replay_channels.add(parsed.channel)
        else:
            self._market = SimMarket(
                self.config.symbols,
                seed=self.config.seed,
                config=self.config.market,
                now_ms=self._now_ms(),
            )
            for symbol in self._market.symbols:
                spec = self._market.spec(symbol)
                history = self.history[symbol] = TradeHistory(
                    spec.price_decimals, spec.qty_decimals
                )
                history.seed_day(
                    self._now_ms(),
                    spec.start_price,
                    spec.typical_qty,
                    f"{self.config.seed}:{symbol}",
                )

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> SimExchange:
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
            app.router.add_get(f"{route}/stream", functools.partial(self._ws, route, False))
            app.router.add_get(f"{route}/ws", functools.partial(self._ws, route, True))
            app.router.add_get(f"{route}/ws/{{streams}}", functools.partial(self._ws, route, True))
        app.router.add_get("/fapi/v1/depth", self._rest_depth)
        app.router.add_get("/fapi/v1/exchangeInfo", self._rest_exchange_info)
        app.router.add_get("/fapi/v1/klines", self._rest_klines)
        app.router.add_get("/fapi/v1/ticker/24hr", self._rest_ticker)
        app.router.add_get("/fapi/v1/ping", self._rest_ping)
        app.router.add_get("/fapi/v1/time", self._rest_time)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self.config.host, self.config.port, ssl_context=self.config.ssl_context
        )
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise SimExchangeError(
                f"cannot listen on {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        self._port = int(self._runner.addresses[0][1])
        main = self._run_replay() if self._capture is not None else self._run_live()
        self._tasks.append(asyncio.create_task(main, name="sim-emitter"))
        self._tasks.extend(self._periodic_tasks())
        log.info("simulated exchange on %s and %s", self.ws_base_url, self.rest_base_url)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for conn in list(self._connections.values()):
            conn.closed = True
            if conn.writer is not None:
                conn.writer.cancel()
            await conn.ws.close(code=1001, message=b"server shutdown")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ----------------------------------------------------------------- public view

    @property
    def port(self) -> int:
        return self._port

    @property
    def ws_base_url(self) -> str:
        scheme = "wss" if self.config.ssl_context is not None else "ws"
        return f"{scheme}://{self.config.host}:{self._port}"

    @property
    def rest_base_url(self) -> str:
        scheme = "https" if self.config.ssl_context is not None else "http"
        return f"{scheme}://{self.config.host}:{self._port}"

    @property
    def market(self) -> SimMarket:
        """The live market model (ground truth for tests); not available in replay mode."""
        if self._market is None:
            raise SimExchangeError("a replaying exchange has no market model")
        return self._market

    @property
    def capture(self) -> Capture | None:
        return self._capture

    @property
    def connection_ids(self) -> list[int]:
        return list(self._connections)

    def connection_route(self, connection_id: int) -> str:
        """The route a connection came in on (``""``, ``/public`` or ``/market``)."""
        return self._connections[connection_id].route

    def subscriber_count(self, stream: str) -> int:
        return len(self._subscribers.get(stream, ()))

    # ----------------------------------------------------------------- faults

    def drop_next_diff(self, symbol: str, count: int = 1) -> None:
        """Do not send the next ``count`` diffs of ``symbol``: subscribers see a pu gap."""
        key = symbol.upper()
        self._drops[key] = self._drops.get(key, 0) + count

    def disconnect(self, connection_id: int | None = None) -> int:
        """Cut one connection (or all) abruptly, without a close frame; returns how many."""
        targets = [
            conn
            for cid, conn in self._connections.items()
            if connection_id is None or cid == connection_id
        ]
        for conn in targets:
            conn.abort()
        self.counters.disconnects += len(targets)
        return len(targets)

    def send_malformed(self, kind: MalformedKind, symbol: str | None = None) -> int:
        """Send a broken frame on every diff-depth stream of ``symbol`` (or of all symbols)."""
        sent = 0
        now_ms = self._now_ms()
        for sym in self._symbols() if symbol is None else [symbol.upper()]:
            last_u = self.last_sent_update_id(sym)
            data = malformed_payload(kind, sym, last_u, now_ms)
            sent += self._fan_out((sym, StreamKind.DIFF_DEPTH.value), data)
        self.counters.malformed[kind] += 1
        return sent

    def last_sent_update_id(self, symbol: str) -> int:
        """The ``u`` of the last diff sent for ``symbol`` (a snapshot may be ahead of it)."""
        if self._market is None:
            return 0
        held = self._held_diffs.get(symbol)
        return held[0] if held is not None else self._market.current_update_id(symbol)

    def pause(self, seconds: float, symbol: str | None = None) -> None:
        """Emit nothing for ``seconds`` (one symbol or all): a silent but open stream."""
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until["" if symbol is None else symbol.upper()] = until
        self.counters.pauses += 1

    def burst(self, symbol: str, count: int) -> None:
        """Emit ``count`` diffs of ``symbol`` at once (live mode only)."""
        now_ms = self._now_ms()
        for _ in range(count):
            self._emit_diff(symbol.upper(), now_ms)
        self.counters.burst_diffs += count

    def set_geo_blocked(self, blocked: bool) -> None:
        self.geo_blocked = blocked

    def set_status(self, symbol: str, status: str) -> None:
        """List ``symbol`` with ``status`` in exchangeInfo (``SETTLING`` for a delisting)."""
        self.statuses[symbol.upper()] = status

    # ----------------------------------------------------------------- emission

    def _now_ms(self) -> int:
        return int(self.config.clock() * 1000)

    def _symbols(self) -> list[str]:
        if self._market is not None:
            return self._market.symbols
        assert self._capture is not None
        return self._capture.symbols

    def _is_paused(self, symbol: str, now: float) -> bool:
        return now < self._paused_until.get("", 0.0) or now < self._paused_until.get(symbol, 0.0)

    def _fan_out(self, channel: tuple[str, str], data: bytes) -> int:
        """Send one event to every connection on any stream of ``channel``."""
        names = self._channel_names.get(channel)
        if not names:
            return 0
        sent = 0
        for name in names:
            frame = self._prefixes[name] + data + b"}"
            for conn in self._subscribers[name]:
                conn.push_data(data if conn.raw else frame)
                sent += 1
        return sent

    def _emit_diff(self, symbol: str, now_ms: int) -> None:
        market = self.market
        held = self._held_diffs.pop(symbol, None)
        data = held[1] if held is not None else _encode(market.step(symbol, now_ms))
        if self._drops.get(symbol):
            self._drops[symbol] -= 1
            self.counters.dropped_diffs += 1
        else:
            self._fan_out((symbol, StreamKind.DIFF_DEPTH.value), data)
        if self._channel_names.get((symbol, StreamKind.BOOK_TICKER.value)):
            ticker = _encode(market.book_ticker(symbol, now_ms))
            self._fan_out((symbol, StreamKind.BOOK_TICKER.value), ticker)

    async def _run_live(self) -> None:
        market = self.market
        loop = asyncio.get_running_loop()
        rate, trade_rate = self.config.diff_rate_hz, self.config.trade_rate_hz
        tick = min(0.01, 1.0 / max(rate, trade_rate, 1.0))
        max_per_tick = max(1, int(rate * 0.5))
        diff_due = dict.fromkeys(market.symbols, 0.0)
        trade_due = dict.fromkeys(market.symbols, 0.0)
        last = loop.time()
        while True:
            await asyncio.sleep(tick)
            now = loop.time()
            elapsed, last = now - last, now
            now_ms = self._now_ms()
            for symbol in market.symbols:
                if self._is_paused(symbol, now):
                    diff_due[symbol] = trade_due[symbol] = 0.0
                    continue
                diff_due[symbol] += rate * elapsed
                count = int(diff_due[symbol])
                diff_due[symbol] -= count
                for _ in range(min(count, max_per_tick)):
                    self._emit_diff(symbol, now_ms)
                trade_due[symbol] += trade_rate * elapsed
                trades = int(trade_due[symbol])
                trade_due[symbol] -= trades
                muted = now < self._trades_muted_until.get(symbol, 0.0)
                for _ in range(trades):
                    trade = self._trade(symbol, now_ms)
                    if muted:
                        self.counters.skipped_trades += 1
                    else:
                        self._fan_out((symbol, StreamKind.AGG_TRADE.value), trade)
            self._emit_partials(now, now_ms)
            if now >= self._ticker_due:
                # <symbol>@ticker: every 2000 ms (Binance USD-M futures "Individual Symbol
                # Ticker Streams").
                self._ticker_due = now + 2.0
                self._emit_tickers(now_ms)

    def _trade(self, symbol: str, now_ms: int) -> bytes:
        """One trade of the market, recorded in the history; its frame payload."""
        trade = self.market.trade(symbol, now_ms)
        history = self.history.get(symbol)
        if history is not None:
            history.record(
                float(trade["p"]), float(trade["q"]), (trade["f"], trade["l"]), trade["T"],
                trade["m"],
            )  # fmt: skip
        return _encode(trade)

    def _emit_tickers(self, now_ms: int) -> None:
        for symbol, history in self.history.items():
            channel = (symbol, StreamKind.TICKER.value)
            if self._channel_names.get(channel):
                self._fan_out(channel, _encode(history.ticker_event(symbol, now_ms)))

    def mute_trades(self, symbol: str, seconds: float) -> None:
        """For ``seconds``, ``symbol`` trades but its aggTrade stream sends nothing, while
        its tickers, on the same connection, count the trades: one stream stalled on a
        connection that stays busy (a fault to test with, not a documented behaviour)."""
        until = asyncio.get_running_loop().time() + seconds
        self._trades_muted_until[symbol.upper()] = until

    def skip_trades(self, symbol: str, count: int) -> None:
        """``count`` trades happen on the exchange and are not sent (a trade-stream gap)."""
        now_ms = self._now_ms()
        for _ in range(count):
            self._trade(symbol.upper(), now_ms)
        self.counters.skipped_trades += count

    def _emit_partials(self, now: float, now_ms: int) -> None:
        for channel, stream in self._partials.items():
            if now < self._partial_due.get(channel, 0.0) or self._is_paused(stream.symbol, now):
                continue
            self._partial_due[channel] = now + stream.interval_ms / 1000
            payload = self.market.partial_depth(stream.symbol, stream.levels, now_ms)
            self._fan_out(channel, _encode(payload))

    async def _run_replay(self) -> None:
        capture = self._capture
        assert capture is not None
        if self.config.replay_waits_for_subscriber:
            await self._first_subscriber.wait()
        loop = asyncio.get_running_loop()
        speed = self.config.speed
        start = loop.time()
        first_ns = capture.frames[0].recv_ns if capture.frames else 0
        channels = {frame.stream: parse_stream(frame.stream) for frame in capture.frames}
        for index, frame in enumerate(capture.frames):
            if speed > 0:
                delay = start + (frame.recv_ns - first_ns) / 1e9 / speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif index % 256 == 0:
                await asyncio.sleep(0)
            stream = channels[frame.stream]
            if stream is None:
                continue
            while self._is_paused(stream.symbol, loop.time()):
                await asyncio.sleep(0.01)
                start += 0.01  # the recorded timeline moves on after the silence
            self._replay_pos_ns = frame.recv_ns
            if stream.kind is StreamKind.DIFF_DEPTH and self._drops.get(stream.symbol):
                self._drops[stream.symbol] -= 1
                self.counters.dropped_diffs += 1
                continue
            self._fan_out(stream.channel, frame.data)
        self.replay_finished.set()

    def _periodic_tasks(self) -> list[asyncio.Task[None]]:
        plan = self.config.periodic
        kinds = itertools.cycle(MalformedKind)

        def drop() -> None:
            for symbol in self._symbols():
                self.drop_next_diff(symbol)

        def burst() -> None:
            if self._market is not None:
                for symbol in self._symbols():
                    self.burst(symbol, plan.burst_size)

        actions: list[tuple[float | None, Callable[[], object]]] = [
            (plan.drop_every_s, drop),
            (plan.disconnect_every_s, self.disconnect),
            (plan.malformed_every_s, lambda: self.send_malformed(next(kinds))),
            (plan.pause_every_s, lambda: self.pause(plan.pause_seconds)),
            (plan.burst_every_s, burst),
        ]
        return [
            asyncio.create_task(_every(interval, action), name="sim-periodic-fault")
            for interval, action in actions
            if interval
        ]

    # ----------------------------------------------------------------- WebSocket

    async def _ws(self, route: str, raw: bool, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.config.ping_interval_s, compress=False, max_msg_size=1 << 16
        )
        await ws.prepare(request)
        conn = _Connection(
            next(self._ids),
            ws,
            request,
            route,
            raw,
            self.config.max_queued_frames,
            self._close_slow_consumer,
            self.config.line_jitter_ms / 1000,
            self.config.line_drop_rate,
        )
        self._connections[conn.cid] = conn
        conn.writer = asyncio.create_task(conn.write_forever(), name=f"sim-writer-{conn.cid}")
        cut = asyncio.get_running_loop().call_later(
            self.config.max_connection_age_s, self._cut_for_age, conn
        )
        try:
            names = request.match_info.get("streams") or request.query.get("streams", "")
            initial = [name for name in names.split("/") if name]
            close = self._subscribe(conn, initial, None, acknowledge=False) if initial else None
            if close is None:
                async for message in ws:
                    if message.type is WSMsgType.TEXT:
                        close = self._on_request(conn, message.data)
                        if close is not None:
                            break
            if close is not None:
                await self._close_after_writes(conn, close)
        finally:
            cut.cancel()
            self._drop_connection(conn)
        return ws

    def _cut_for_age(self, conn: _Connection) -> None:
        """The exchange's 24 h limit (``max_connection_age_s``): the server closes."""
        self.counters.age_closes += 1
        task = asyncio.ensure_future(conn.ws.close(code=1000, message=b"connection too old"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _close_after_writes(self, conn: _Connection, reason: str) -> None:
        """Let the writer send what is queued (the error reply), then close with 1008."""
        for _ in range(100):
            if not conn.queue:
                break
            await asyncio.sleep(0.005)
        self.counters.policy_closes += 1
        await conn.ws.close(code=1008, message=reason.encode())

    def _on_request(self, conn: _Connection, text: str) -> str | None:
        """Answer one client message; returns a close reason when the connection must go."""
        now = time.monotonic()
        incoming = conn.incoming
        incoming.append(now)
        while incoming and incoming[0] <= now - 1.0:
            incoming.popleft()
        if len(incoming) > self.config.max_incoming_per_s:
            return "Too many requests"
        try:
            request = msgspec.json.decode(text)
        except msgspec.DecodeError:
            conn.push(_error_reply("Invalid JSON: expected value", None, code=3))
            return None
        if not isinstance(request, dict):
            conn.push(_error_reply("Invalid request: expected an object", None))
            return None
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            listed = [*conn.streams, *conn.silent]
            conn.push(_encode({"result": listed, "id": request_id}))
            return None
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or not isinstance(params, list):
            conn.push(_error_reply(f"Invalid request: unknown method {method!r}", request_id))
            return None
        if not all(isinstance(param, str) for param in params):
            conn.push(_error_reply("Invalid request: params must be strings", request_id))
            return None
        if method == "SUBSCRIBE":
            return self._subscribe(conn, params, request_id)
        self._unsubscribe(conn, params)
        conn.push(_encode({"result": None, "id": request_id}))
        return None

    def _subscribe(
        self, conn: _Connection, names: list[str], request_id: Any, acknowledge: bool = True
    ) -> str | None:
        """Subscribe ``names`` and acknowledge; returns a close reason past the stream limit.

        Names the exchange does not serve are acknowledged all the same and stay
        silent (BINANCE_FUTURES.md §2): an unknown symbol is never an error here.
        """
        new = [n for n in dict.fromkeys(names) if n not in conn.streams and n not in conn.silent]
        held = len(conn.streams) + len(conn.silent)
        if held + len(new) > self.config.max_streams_per_connection:
            conn.push(_error_reply("Too many subscriptions", request_id, code=4))
            return "Too many subscriptions"
        for name in new:
            stream = parse_stream(name)
            if stream is None or not self._serves(stream) or not route_allows(conn.route, stream):
                conn.silent[name] = None
                self.counters.silent_subscriptions += 1
                continue
            conn.streams[stream.name] = stream
            self._subscribers.setdefault(stream.name, set()).add(conn)
            self._channel_names.setdefault(stream.channel, set()).add(stream.name)
            self._prefixes.setdefault(stream.name, b'{"stream":"%s","data":' % stream.name.encode())
            if stream.kind is StreamKind.PARTIAL_DEPTH:
                self._partials[stream.channel] = stream
        if acknowledge:
            conn.push(_encode({"result": None, "id": request_id}))
        self._first_subscriber.set()
        return None

    def _unsubscribe(self, conn: _Connection, names: list[str]) -> None:
        for name in names:
            conn.silent.pop(name, None)
            stream = conn.streams.pop(name, None)
            if stream is None:
                continue
            subscribers = self._subscribers.get(name)
            if subscribers is not None:
                subscribers.discard(conn)
                if not subscribers:
                    del self._subscribers[name]
                    channel_names = self._channel_names.get(stream.channel, set())
                    channel_names.discard(name)
                    if not channel_names:
                        self._channel_names.pop(stream.channel, None)
                        self._partials.pop(stream.channel, None)

    def _serves(self, stream: StreamName) -> bool:
        if self._market is not None:
            return self._market.has_symbol(stream.symbol) and stream.kind in (
                StreamKind.DIFF_DEPTH,
                StreamKind.PARTIAL_DEPTH,
                StreamKind.AGG_TRADE,
                StreamKind.BOOK_TICKER,
                StreamKind.TICKER,
            )
        return stream.channel in self._replay_channels

    def _close_slow_consumer(self, conn: _Connection) -> None:
        log.info("connection %d: %d frames queued, closing it", conn.cid, len(conn.queue))
        conn.queue.clear()
        conn.abort()
        self.counters.slow_consumers_closed += 1

    def _drop_connection(self, conn: _Connection) -> None:
        conn.closed = True
        self._unsubscribe(conn, list(conn.streams))
        self._connections.pop(conn.cid, None)
        if conn.writer is not None:
            conn.writer.cancel()

    # ----------------------------------------------------------------- REST

    def _rest_error(self, status: int, code: int, msg: str, now: float) -> web.Response:
        return web.Response(
            status=status,
            body=_encode({"code": code, "msg": msg}),
            content_type="application/json",
            headers={USED_WEIGHT_HEADER: str(self._budget.used_now(now))},
        )

    def _too_many(self, now: float, wait_s: float, msg: str) -> web.Response:
        """429 with its Retry-After; asking again before it runs out, for anything, is a
        ban (:meth:`_banned`).

        Binance: "Repeatedly violating rate limits and/or failing to back off after
        receiving 429s will result in an automated IP ban (HTTP status 418)"; "IP bans
        are tracked and scale in duration for repeat offenders, from 2 minutes to 3
        days"; both carry a Retry-After header (USD-M Futures API docs, General Info,
        Limits; BINANCE_FUTURES.md section 1: "418/429 rate limits").
        """
        self._limited_until = now + max(1, math.ceil(wait_s))
        response = self._rest_error(429, -1003, msg, now)
        response.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
        return response

    def _banned(self, now: float) -> web.Response | None:
        """The 418 answer while a ban runs, or for a request made before a 429's
        Retry-After ran out, which starts a ban (None: neither)."""
        if now < self._limited_until and now >= self._banned_until:
            self.bans += 1
            self._banned_until = now + min(120.0 * 2 ** (self.bans - 1), 3 * 86_400.0)
            self._limited_until = 0.0
        if now >= self._banned_until:
            return None
        response = self._rest_error(
            418, -1003, "Way too many requests; IP banned until further notice.", now
        )
        response.headers["Retry-After"] = str(max(1, math.ceil(self._banned_until - now)))
        return response

    async def _rest_depth(self, request: web.Request) -> web.Response:
        now = self.config.clock()
        self.rest_requests += 1
        if self.geo_blocked:
            return self._rest_error(451, 0, GEO_BLOCKED_MSG, now)
        if (banned := self._banned(now)) is not None:
            return banned
        symbol = request.query.get("symbol", "").upper()
        if not symbol:
            msg = "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            return self._rest_error(400, -1102, msg, now)
        limit_text = request.query.get("limit", str(_DEFAULT_DEPTH_LIMIT))
        if not limit_text.isdigit() or int(limit_text) not in SNAPSHOT_LIMITS:
            allowed = ", ".join(map(str, SNAPSHOT_LIMITS))
            msg = f"Illegal characters found in parameter 'limit'; legal range is '{allowed}'."
            return self._rest_error(400, -1100, msg, now)
        limit = int(limit_text)
        if symbol not in self._symbols():
            return self._rest_error(400, -1121, "Invalid symbol.", now)
        weight = snapshot_weight(limit) if "limit" in request.query else _NO_LIMIT_WEIGHT
        wait_s = self._budget.try_acquire(weight, now)
        if wait_s > 0:
            return self._too_many(
                now,
                wait_s,
                f"Too many requests; current limit of IP is {self.config.rest_weight_limit} "
                "request weight per 1 MINUTE.",
            )
        if self.config.rest_delay_s > 0:
            await asyncio.sleep(self.config.rest_delay_s)
        if self._market is not None:
            now_ms = self._now_ms()
            if self.config.snapshot_ahead and symbol not in self._held_diffs:
                diff = self._market.step(symbol, now_ms)
                self._held_diffs[symbol] = (diff["pu"], _encode(diff))
            body = _encode(self._market.snapshot(symbol, limit, now_ms))
        else:
            body = self._replay_snapshot(symbol, limit)
        return web.Response(
            body=body,
            content_type="application/json",
            headers={USED_WEIGHT_HEADER: str(self._budget.used_now(now))},
        )

    def _replay_snapshot(self, symbol: str, limit: int) -> bytes:
        """The capture's latest snapshot of ``symbol`` at the replay position."""
        assert self._capture is not None
        own = [snap for snap in self._capture.snapshots if snap.symbol == symbol]
        if not own:
            return _encode({"lastUpdateId": 0, "E": 0, "T": 0, "bids": [], "asks": []})
        seen = [snap for snap in own if snap.recv_ns <= self._replay_pos_ns]
        chosen: CaptureSnapshot = seen[-1] if seen else own[0]
        body: dict[str, Any] = msgspec.json.decode(chosen.body)
        if len(body.get("bids", ())) <= limit and len(body.get("asks", ())) <= limit:
            return chosen.body
        body["bids"] = body["bids"][:limit]
        body["asks"] = body["asks"][:limit]
        return _encode(body)

    async def _rest_exchange_info(self, request: web.Request) -> web.Response:
        return await self._light_answer(
            exchange_info(self._symbols(), self.statuses, self._now_ms())
        )

    async def _rest_klines(self, request: web.Request) -> web.Response:
        """``GET /fapi/v1/klines``: 1-minute rows of the history (limit 1..1500, default 500).

        Weight by limit as the docs give it: 1 up to 100, 2 up to 500, 5 up to 1000, 10 above.
        """
        query = request.query
        symbol = query.get("symbol", "").upper()
        now = self.config.clock()
        if symbol not in self._symbols():
            return self._rest_error(400, -1121, "Invalid symbol.", now)
        if query.get("interval") != "1m":
            return self._rest_error(400, -1120, "Invalid interval.", now)
        limit_text = query.get("limit", "500")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1500:
            return self._rest_error(
                400, -1130, "Data sent for parameter 'limit' is not valid.", now
            )
        limit = int(limit_text)
        start = int(query["startTime"]) if query.get("startTime", "").isdigit() else None
        end = int(query["endTime"]) if query.get("endTime", "").isdigit() else None
        weight = klines_weight(limit)
        history = self.history.get(symbol)
        rows = history.klines(start, end, limit) if history is not None else []
        return await self._light_answer(rows, weight)

    async def _rest_ticker(self, request: web.Request) -> web.Response:
        """``GET /fapi/v1/ticker/24hr?symbol=`` (weight 1; every symbol: 40)."""
        symbol = request.query.get("symbol", "").upper()
        now_ms = self._now_ms()
        if not symbol:
            rows = [h.ticker(s, now_ms) for s, h in self.history.items()]
            return await self._light_answer(rows, 40)
        history = self.history.get(symbol)
        if history is None:
            return self._rest_error(400, -1121, "Invalid symbol.", self.config.clock())
        return await self._light_answer(history.ticker(symbol, now_ms), 1)

    async def _rest_ping(self, request: web.Request) -> web.Response:
        return await self._light_answer({})

    async def _rest_time(self, request: web.Request) -> web.Response:
        return await self._light_answer({"serverTime": self._now_ms()})

    async def _light_answer(self, body: Any, weight: int = 1) -> web.Response:
        now = self.config.clock()
        self.rest_requests += 1
        if self.geo_blocked:
            return self._rest_error(451, 0, GEO_BLOCKED_MSG, now)
        if (banned := self._banned(now)) is not None:
            return banned
        if (wait_s := self._budget.try_acquire(weight, now)) > 0:
            return self._too_many(now, wait_s, "Too many requests.")
        return web.Response(
            body=_encode(body),
            content_type="application/json",
            headers={USED_WEIGHT_HEADER: str(self._budget.used_now(now))},
        )


def _error_reply(msg: str, request_id: Any, code: int = 2) -> bytes:
    """Binance's WebSocket error answer: ``{"error":{"code":2,"msg":...},"id":1}``."""
    return _encode({"error": {"code": code, "msg": msg}, "id": request_id})


async def _every(interval_s: float, action: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(interval_s)
        action()
