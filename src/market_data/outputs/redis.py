"""Publishes books, 24h market data and trades to Redis without ever making ingestion wait.

The hot path calls ``publish_book`` / ``publish_market_data`` / ``publish_trade``:
plain synchronous methods that only store the payload and set an event. Books
and market data are conflated (one pending payload per symbol, the newest wins);
trades are a bounded FIFO (the oldest is dropped when full). A single writer
task drains everything pending in one pipelined batch per round.

The write path is lean on purpose: commands are written as RESP bytes straight
to the socket and replies are parsed with ``hiredis.Reader``. redis-py spends
~10 μs of Python per pipelined command, which would make the client, not Redis,
the bottleneck (``python -m market_data.bench.redis`` measures both).

Redis down or restarted: publishing pauses, memory stays bounded by conflation,
the writer reconnects with capped exponential backoff plus jitter and then
publishes the latest book and market data of every symbol again (a restarted
Redis has lost its ``market_data:`` keys, a new subscriber wants a snapshot).
An outage is logged once at warning when it starts (and again if its cause
becomes a refused handshake, e.g. NOAUTH) and once when it ends (a warning if
trades were dropped meanwhile), never once per message. A Redis that answers
but refuses writes (OOM, READONLY) is logged at the start and the end of it.

Channels: ``orderbook:{SYMBOL}``, ``market_data:{SYMBOL}`` (also stored with
``SET market_data:{SYMBOL} payload EX 300``), ``trades:{SYMBOL}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator
from types import TracebackType

import hiredis
from hiredis import ReplyError

from market_data.core.backoff import backoff
from market_data.errors import MarketDataError
from market_data.outputs.redis_url import RedisEndpoint, parse_redis_url, redact_url

logger = logging.getLogger(__name__)

#: A refusal episode ends when writes go through and nothing was refused for this long:
#: books are PUBLISHes, which Redis takes even out of memory or as a replica, and each
#: cluster node answers for itself, so one clean batch does not mean writes work again.
REFUSALS_END_AFTER_S = 2.0
#: How a server that answers and refuses the connection's set-up (AUTH, SELECT) is named.
_REFUSED_HANDSHAKE = "handshake refused"

MARKET_DATA_TTL_S = 300
_READ_CHUNK = 1 << 16


#: Channel and key of the publisher's liveness beat (see ``service/engine.py``).
#: Active/standby: how often a writer without a valid lease looks at it again.
GATE_POLL_S = 0.05
HEARTBEAT_KEY = b"market_data:heartbeat"
#: The beat's key expires this long after the last beat: a dead publisher shows.
HEARTBEAT_TTL_MS = b"3000"


class RedisSinkError(MarketDataError):
    """Redis could not be reached or refused a command; never carries the password."""


class RedisUnavailableError(RedisSinkError):
    """The connection could not be opened, authenticated or kept."""


@dataclasses.dataclass(slots=True)
class RedisSinkStats:
    """Counters and state for metrics and health checks (read them, do not write)."""

    published_books: int = 0
    published_market_data: int = 0
    published_trades: int = 0
    conflated_books: int = 0
    conflated_market_data: int = 0
    dropped_trades: int = 0
    #: Trades queued under an active/standby epoch that ended before they were sent.
    discarded_trades: int = 0
    #: PUBLISHes Redis acknowledged with 0 receivers: nobody was subscribed to hear them.
    unheard_books: int = 0
    unheard_market_data: int = 0
    unheard_trades: int = 0
    #: Trades appended to their stream (``XADD trades:{SYMBOL}``), for consumers to resume.
    streamed_trades: int = 0
    errors: int = 0
    #: Payloads Redis refused to take (OOM, READONLY, NOREPLICAS, NOPERM...): not
    #: published, never sent again (a newer book or 24h figure follows; a trade is lost).
    refused_books: int = 0
    refused_market_data: int = 0
    refused_trades: int = 0
    #: Why Redis refuses writes now (None: it takes them): from its first refusal until
    #: a batch of writes goes through whole.
    refusing: str | None = None
    #: Redis Cluster: commands refused for routing (MOVED, ASK, TRYAGAIN, CLUSTERDOWN), sent again.
    redirects: int = 0
    outages: int = 0
    batches: int = 0
    connected: bool = False
    last_error: str | None = None
    last_batch_latency_s: float | None = None
    last_batch_commands: int = 0

    @property
    def published(self) -> int:
        return self.published_books + self.published_market_data + self.published_trades

    @property
    def conflated(self) -> int:
        return self.conflated_books + self.conflated_market_data


@dataclasses.dataclass(slots=True)
class _SymbolCommands:
    """RESP prefixes for one symbol, encoded once."""

    publish_book: bytes
    publish_market_data: bytes
    set_market_data: bytes
    publish_trade: bytes
    add_trade: bytes  # XADD to the trade stream, up to the payload (sent unless it is off)


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def _command(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(_bulk(part) for part in parts)


#: Sent before a command that follows an ``ASK`` redirect (cluster slot migration).
ASKING = b"*1\r\n$6\r\nASKING\r\n"
#: Encoded once: every batch is encoded on the publishing path, pings or not.
PING = _command(b"PING")


def _symbol_commands(
    symbol: str, stream_maxlen: int, publish: bytes = b"PUBLISH", prefix: bytes = b""
) -> _SymbolCommands:
    """The command prefixes of ``symbol``; ``publish`` may be ``SPUBLISH`` (sharded).

    ``prefix`` goes before each command: ``ASKING`` for a batch sent after an ASK.
    """
    name = symbol.upper().encode()
    # XADD trades:{SYMBOL} MAXLEN ~ N * trade <payload>: the stream shares the channel's
    # name (keys and channels are separate namespaces), trimmed approximately (cheap).
    add_trade = (
        prefix + b"*8\r\n" + _bulk(b"XADD") + _bulk(b"trades:" + name) + _bulk(b"MAXLEN")
        + _bulk(b"~") + _bulk(str(stream_maxlen).encode()) + _bulk(b"*") + _bulk(b"trade")
    )  # fmt: skip
    return _SymbolCommands(
        publish_book=prefix + b"*3\r\n" + _bulk(publish) + _bulk(b"orderbook:" + name),
        publish_market_data=prefix + b"*3\r\n" + _bulk(publish) + _bulk(b"market_data:" + name),
        set_market_data=prefix + b"*5\r\n" + _bulk(b"SET") + _bulk(b"market_data:" + name),
        publish_trade=prefix + b"*3\r\n" + _bulk(publish) + _bulk(b"trades:" + name),
        add_trade=add_trade,
    )


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason for an I/O failure."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError | EOFError):
        return "connection closed by server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


@dataclasses.dataclass(slots=True)
class _Batch:
    """What one round sends, kept so a failure can put back what was not acknowledged."""

    books: dict[str, bytes]
    market_data: dict[str, bytes]
    trades: deque[tuple[str, bytes]]
    pings: list[asyncio.Future[str | None]]
    heartbeat: bytes | None = None
    commands: int = 0
    acknowledged: int = 0
    #: Every command is preceded by ASKING (a cluster slot being migrated): two replies each.
    asking: bool = False

    @property
    def replies_expected(self) -> int:
        return self.commands * 2 if self.asking else self.commands

    @property
    def commands_acknowledged(self) -> int:
        return self.acknowledged // 2 if self.asking else self.acknowledged


class _Connection:
    """A socket to Redis speaking RESP via hiredis; any failure becomes RedisUnavailableError."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    @classmethod
    async def open(cls, endpoint: RedisEndpoint, timeout_s: float) -> _Connection:
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.ssl_context(),
                    server_hostname=endpoint.host if endpoint.tls else None,
                )
        except (OSError, TimeoutError) as exc:
            raise RedisUnavailableError(_describe(exc)) from None
        connection = cls(reader, writer)
        handshake: list[bytes] = []
        if endpoint.password is not None:
            if endpoint.username is not None:
                auth = _command(b"AUTH", endpoint.username.encode(), endpoint.password.encode())
            else:
                auth = _command(b"AUTH", endpoint.password.encode())
            handshake.append(auth)
        if endpoint.db:
            handshake.append(_command(b"SELECT", str(endpoint.db).encode()))
        handshake.append(PING)
        try:
            async with asyncio.timeout(timeout_s):
                replies = await connection.exchange(b"".join(handshake), len(handshake))
        except TimeoutError:
            await connection.close()
            raise RedisUnavailableError("timed out during the handshake") from None
        except BaseException:
            await connection.close()
            raise
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                await connection.close()
                raise RedisUnavailableError(f"{_REFUSED_HANDSHAKE}: {reply}")
        return connection

    async def exchange(
        self, request: bytes, expected_replies: int, batch: _Batch | None = None
    ) -> list[object]:
        """Write ``request`` and read ``expected_replies`` replies (in order)."""
        replies: list[object] = []
        try:
            self._writer.write(request)
            await self._writer.drain()
            while len(replies) < expected_replies:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    raise EOFError
                self._parser.feed(data)
                while (reply := self._parser.gets()) is not False:
                    replies.append(reply)
                if batch is not None:
                    batch.acknowledged = len(replies)
        except (OSError, EOFError, TimeoutError, hiredis.ProtocolError) as exc:
            raise RedisUnavailableError(_describe(exc)) from None
        return replies

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


class RedisSink:
    """Conflating, never-blocking Redis publisher (see the module docstring).

    Use as ``async with RedisSink(url) as sink:`` or call ``start()`` then
    ``aclose()``; alternatively run ``await sink.run()`` in a task of your own.
    """

    def __init__(
        self,
        url: str,
        *,
        max_pending_trades: int = 10_000,
        trade_stream_maxlen: int = 10_000,
        market_data_ttl_s: int = MARKET_DATA_TTL_S,
        connect_timeout_s: float = 2.0,
        io_timeout_s: float = 5.0,
        reconnect_initial_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_pending_trades < 1:
            raise ValueError(f"max_pending_trades must be >= 1, got {max_pending_trades}")
        self._endpoint = parse_redis_url(url)
        self._shown_url = redact_url(url)
        self._max_pending_trades = max_pending_trades
        self._stream_maxlen = trade_stream_maxlen
        self._per_trade = 2 if trade_stream_maxlen > 0 else 1  # PUBLISH (+ XADD)
        self._ttl_suffix = _bulk(b"EX") + _bulk(str(market_data_ttl_s).encode())
        self._connect_timeout_s = connect_timeout_s
        self._io_timeout_s = io_timeout_s
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._rng = rng or random.Random()

        self._books: dict[str, bytes] = {}
        self._market_data: dict[str, bytes] = {}
        self._trades: deque[tuple[str, bytes]] = deque()
        self._pings: list[asyncio.Future[str | None]] = []
        self._heartbeat: bytes | None = None
        # Last payload Redis acknowledged, republished after an outage.
        self._sent_books: dict[str, bytes] = {}
        self._sent_market_data: dict[str, bytes] = {}
        self._commands: dict[str, _SymbolCommands] = {}
        #: PUBLISH, or SPUBLISH on a cluster that has sharded pub/sub.
        self._publish_verb = b"PUBLISH"
        #: Active/standby: whether this instance holds its lease. While it does not,
        #: nothing goes out: see :meth:`discard_ended_epoch`.
        self.gate: Callable[[], bool] | None = None

        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._connection: _Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._outage_started: float | None = None
        self._outage_errors = 0
        self._outage_reason = ""
        self._outage_dropped_from = 0  # dropped_trades when the outage began
        self._refused_in_episode = 0
        self._last_refusal = 0.0  # monotonic time of the last refused command
        self.stats = RedisSinkStats()

    # -- hot path: synchronous, never awaits, never raises -------------------

    def publish_book(self, symbol: str, payload: bytes) -> None:
        """Queue a book; replaces this symbol's unsent one (counted as conflated)."""
        books = self._books
        if symbol in books:
            self.stats.conflated_books += 1
        books[symbol] = payload
        self._wake.set()

    def publish_market_data(self, symbol: str, payload: bytes) -> None:
        """Queue 24h market data (PUBLISH + SET with TTL); conflated like books."""
        market_data = self._market_data
        if symbol in market_data:
            self.stats.conflated_market_data += 1
        market_data[symbol] = payload
        self._wake.set()

    def publish_trade(self, symbol: str, payload: bytes) -> None:
        """Queue a trade in FIFO order; when full, the oldest pending trade is dropped."""
        trades = self._trades
        if len(trades) >= self._max_pending_trades:
            trades.popleft()
            self.stats.dropped_trades += 1
        trades.append((symbol, payload))
        self._wake.set()

    def publish_heartbeat(self, payload: bytes) -> None:
        """Queue the liveness beat (PUBLISH + SET with a short TTL); only the latest counts."""
        self._heartbeat = payload
        self._wake.set()

    def discard_ended_epoch(self) -> None:
        """Drop what was queued, and kept for republishing, under an epoch that ended.

        Its payloads carry the old epoch: sent after the lease lapsed, they would be
        a second publisher. The trades are counted (``discarded_trades``); the
        instance that takes over publishes them from its own feed.
        """
        waiting = self.queue_depth + len(self._sent_books) + len(self._sent_market_data)
        self._heartbeat = None
        if not waiting:
            return
        self.stats.discarded_trades += len(self._trades)
        logger.warning(
            "the lease lapsed: dropping %d updates queued for Redis (%d trades) of the old epoch",
            self.queue_depth,
            len(self._trades),
            extra={"event": "redis_epoch_discard", "trades": len(self._trades)},
        )
        self._books, self._market_data, self._trades = {}, {}, deque()
        self._sent_books.clear()
        self._sent_market_data.clear()

    # -- observation ---------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Items waiting to be sent (books + market data + trades)."""
        return len(self._books) + len(self._market_data) + len(self._trades)

    @property
    def connected(self) -> bool:
        return self.stats.connected

    @property
    def url(self) -> str:
        """The Redis URL with the password redacted."""
        return self._shown_url

    async def ping(self, within_s: float = 1.0) -> str | None:
        """None when Redis answers a PING sent through the writer's connection, else why not."""
        if not self._running:
            return "publisher not running"
        if not self._is_connected():
            return f"disconnected: {self.stats.last_error or 'connecting'}"
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pings.append(waiter)
        self._wake.set()
        try:
            async with asyncio.timeout(within_s):
                problem = await asyncio.shield(waiter)
        except TimeoutError:
            return "ping timed out"
        refusing = self.stats.refusing
        # It answers and takes nothing; not on a standby, which writes nothing: what it
        # was refused then says nothing about now.
        if problem is None and refusing is not None and (self.gate is None or self.gate()):
            return f"refusing writes: {refusing}"
        return problem

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Run the writer in a background task of the running loop."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="redis-sink-writer")

    async def aclose(self, flush_timeout_s: float = 2.0) -> None:
        """Send what is pending (bounded by ``flush_timeout_s``), then close the connection."""
        self._closing.set()
        self._wake.set()
        task = self._task
        if task is not None:
            done, _ = await asyncio.wait({task}, timeout=flush_timeout_s)
            if not done:
                task.cancel()
            # The writer's own cancellation is expected; the caller's is passed on.
            await asyncio.gather(task, return_exceptions=True)
            self._task = None
        if self.queue_depth:
            logger.warning(
                "Redis publisher closed with %d items unsent (%s)",
                self.queue_depth,
                self._shown_url,
            )
        self._fail_pings("publisher closed")

    async def __aenter__(self) -> RedisSink:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def run(self) -> None:
        """The writer loop: connect, drain pending work in batches, reconnect on failure."""
        self._running = True
        if self._task is None:  # run() awaited directly: aclose() still needs the task
            self._task = asyncio.current_task()
        delays: Iterator[float] | None = None
        try:
            while True:
                if not self._is_connected():
                    try:
                        await self._connect()
                    except RedisUnavailableError as exc:
                        self._record_failure(str(exc))
                        if delays is None:
                            delays = self._backoff()
                        if self._closing.is_set() and not self.queue_depth:
                            return
                        await self._sleep_unless_closing(next(delays))
                        continue
                    delays = None
                    if not self.stats.connected:
                        self._record_connected()
                if not self.queue_depth and not self._pings and self._heartbeat is None:
                    if self._closing.is_set():
                        return
                    await self._wake.wait()
                    self._wake.clear()
                    continue
                self._wake.clear()
                if self.gate is not None and not self.gate():
                    # No valid lease: publish nothing, answer health pings only. The lease
                    # may come back under the same epoch (a late renewal): what is queued
                    # waits for it; if the epoch ended, discard_ended_epoch drops it.
                    if self._closing.is_set():
                        self.discard_ended_epoch()
                    if not self._pings:
                        if not self._closing.is_set():
                            await self._sleep_unless_closing(GATE_POLL_S)
                        continue
                    batch = _Batch({}, {}, deque(), self._pings, None)
                    self._pings = []
                else:
                    batch = self._take_batch()
                try:
                    await self._deliver(batch)
                except RedisUnavailableError as exc:
                    self._fail_pings(f"disconnected: {exc}", batch.pings)
                    await self._drop_connection()
                    self._record_failure(str(exc))
        finally:
            self._running = False
            await self._drop_connection()
            self.stats.connected = False

    # -- where commands go: one server here, one per hash slot owner in a cluster ---

    def _is_connected(self) -> bool:
        return self._connection is not None

    async def _connect(self) -> None:
        """Open the connection (raises :class:`RedisUnavailableError`)."""
        self._connection = await _Connection.open(self._endpoint, self._connect_timeout_s)

    async def _deliver(self, batch: _Batch) -> None:
        """Send ``batch``; whatever was not acknowledged is queued again before raising."""
        assert self._connection is not None
        try:
            await self._send(self._connection, batch)
        except BaseException:  # also aclose() timing out mid-batch: count it as unsent
            self._requeue(batch)
            raise

    def _retry_replies(self, replies: list[object], errors: list[int]) -> set[int]:
        """Indices of refused commands worth sending again (routing errors in a cluster)."""
        return set()

    # -- writer internals ------------------------------------------------------

    def _backoff(self) -> Iterator[float]:
        return backoff(self._reconnect_initial_s, self._reconnect_max_s, rng=self._rng)

    async def _sleep_unless_closing(self, delay_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._closing.wait()

    def _take_batch(self) -> _Batch:
        batch = _Batch(self._books, self._market_data, self._trades, self._pings, self._heartbeat)
        self._books, self._market_data, self._trades, self._pings = {}, {}, deque(), []
        self._heartbeat = None
        return batch

    def _commands_for(self, symbol: str) -> _SymbolCommands:
        commands = self._commands.get(symbol)
        if commands is None:
            commands = self._commands[symbol] = _symbol_commands(
                symbol, self._stream_maxlen, self._publish_verb
            )
        return commands

    def _asking_commands_for(self, symbol: str) -> _SymbolCommands:
        return _symbol_commands(symbol, self._stream_maxlen, self._publish_verb, ASKING)

    def _encode(self, batch: _Batch) -> bytes:
        """RESP for the batch, in this order: trades, books, market data (PUBLISH, SET), pings."""
        parts: list[bytes] = []
        append = parts.append
        commands_for = self._asking_commands_for if batch.asking else self._commands_for
        streamed = self._per_trade == 2
        for symbol, payload in batch.trades:
            commands = commands_for(symbol)
            size = b"$%d\r\n" % len(payload)
            append(commands.publish_trade)
            append(size)
            append(payload)
            append(b"\r\n")
            if streamed:
                append(commands.add_trade)
                append(size)
                append(payload)
                append(b"\r\n")
        for symbol, payload in batch.books.items():
            append(commands_for(symbol).publish_book)
            append(b"$%d\r\n" % len(payload))
            append(payload)
            append(b"\r\n")
        ttl_suffix = self._ttl_suffix
        for symbol, payload in batch.market_data.items():
            commands = commands_for(symbol)
            size = b"$%d\r\n" % len(payload)
            append(commands.publish_market_data)
            append(size)
            append(payload)
            append(b"\r\n")
            append(commands.set_market_data)
            append(size)
            append(payload)
            append(b"\r\n")
            append(ttl_suffix)
        if batch.heartbeat is not None:  # never re-sent after a failure: the next beat is due
            append(_command(self._publish_verb, HEARTBEAT_KEY, batch.heartbeat))
            append(_command(b"SET", HEARTBEAT_KEY, batch.heartbeat, b"PX", HEARTBEAT_TTL_MS))
        for _ in batch.pings:
            append(PING)
        batch.commands = (
            self._per_trade * len(batch.trades)
            + len(batch.books)
            + 2 * len(batch.market_data)
            + (2 if batch.heartbeat is not None else 0)
            + len(batch.pings)
        )
        return b"".join(parts)

    async def _send(self, connection: _Connection, batch: _Batch) -> None:
        request = self._encode(batch)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._io_timeout_s):
                replies = await connection.exchange(request, batch.replies_expected, batch)
        except TimeoutError:
            raise RedisUnavailableError("timed out") from None
        self.stats.last_batch_latency_s = time.perf_counter() - started
        self.stats.last_batch_commands = batch.commands
        self.stats.batches += 1
        if batch.asking:  # drop ASKING's +OK before each command
            replies = replies[1::2]
        errors = [index for index, reply in enumerate(replies) if isinstance(reply, ReplyError)]
        if errors:
            retry = self._retry_replies(replies, errors)
            if retry:  # sent again in a later round, not counted as published now
                batch, replies, again = _partition(batch, replies, retry, self._per_trade)
                self._requeue(again)
                errors = [i for i, reply in enumerate(replies) if isinstance(reply, ReplyError)]
        self._count_unheard(batch, replies)  # by reply position: before refusals are taken out
        if errors:
            batch = self._drop_refused(batch, errors)
        elif (
            self.stats.refusing is not None
            and self._has_writes(batch)
            and time.monotonic() - self._last_refusal >= REFUSALS_END_AFTER_S
        ):
            self._refusals_ended()
        stats = self.stats
        stats.published_trades += len(batch.trades)
        stats.published_books += len(batch.books)
        stats.published_market_data += len(batch.market_data)
        self._sent_books.update(batch.books)
        self._sent_market_data.update(batch.market_data)
        first_ping = batch.commands - len(batch.pings)
        for index in errors:
            reply = replies[index]
            self._record_reply_error(str(reply))
            if index >= first_ping:
                waiter = batch.pings[index - first_ping]
                if not waiter.done():
                    waiter.set_result(str(reply))
        for waiter in batch.pings:
            if not waiter.done():
                waiter.set_result(None)

    def _has_writes(self, batch: _Batch) -> bool:
        """Whether ``batch`` stored anything (SET, XADD): PUBLISH alone needs no memory."""
        streamed = self._per_trade == 2 and bool(batch.trades)
        return bool(batch.market_data) or batch.heartbeat is not None or streamed

    def _drop_refused(self, batch: _Batch, errors: list[int]) -> _Batch:
        """What Redis took of ``batch`` (same replies order), counting the refused payloads.

        A refused payload is not published: it is neither counted so nor kept as the
        symbol's latest for a republish. It is not sent again either: Redis refuses for
        a reason that lasts (memory, a replica, an ACL), and a newer book and 24h
        figures follow anyway.
        """
        per_trade = self._per_trade
        trades_end = len(batch.trades) * per_trade
        books_end = trades_end + len(batch.books)
        market_end = books_end + 2 * len(batch.market_data)
        bad_trades = {i // per_trade for i in errors if i < trades_end}
        bad_books = {i - trades_end for i in errors if trades_end <= i < books_end}
        bad_market = {(i - books_end) // 2 for i in errors if books_end <= i < market_end}
        if not (bad_trades or bad_books or bad_market):
            return batch
        stats = self.stats
        stats.refused_trades += len(bad_trades)
        stats.refused_books += len(bad_books)
        stats.refused_market_data += len(bad_market)
        self._refused_in_episode += len(bad_trades) + len(bad_books) + len(bad_market)
        taken = _Batch(
            {s: p for n, (s, p) in enumerate(batch.books.items()) if n not in bad_books},
            {s: p for n, (s, p) in enumerate(batch.market_data.items()) if n not in bad_market},
            deque(t for n, t in enumerate(batch.trades) if n not in bad_trades),
            batch.pings,
            batch.heartbeat,
        )
        taken.commands = batch.commands
        return taken

    def _count_unheard(self, batch: _Batch, replies: list[object]) -> None:
        """PUBLISH answers how many subscribers got the message: count those nobody got."""
        stats = self.stats
        per_trade = self._per_trade
        trades = len(batch.trades) * per_trade
        for index in range(0, trades, per_trade):
            if replies[index] == 0:
                stats.unheard_trades += 1
        if per_trade == 2:
            stats.streamed_trades += sum(
                1 for index in range(1, trades, 2) if isinstance(replies[index], bytes)
            )
        books_end = trades + len(batch.books)
        stats.unheard_books += sum(1 for index in range(trades, books_end) if replies[index] == 0)
        market_end = books_end + 2 * len(batch.market_data)
        stats.unheard_market_data += sum(
            1 for index in range(books_end, market_end, 2) if replies[index] == 0
        )

    def _requeue(self, batch: _Batch) -> None:
        """Put back what Redis did not acknowledge, unless something newer is pending.

        A trade whose PUBLISH was acknowledged but not its XADD is sent again whole:
        consumers dedupe on ``trade_id`` (at-least-once, as documented).
        """
        acked = batch.commands_acknowledged
        per_trade = self._per_trade
        unacked_trades = list(batch.trades)[acked // per_trade :]
        position = len(batch.trades) * per_trade
        for symbol, payload in batch.books.items():
            if position >= acked:
                self._requeue_conflated(self._books, symbol, payload, is_book=True)
            else:
                self._sent_books[symbol] = payload
                self.stats.published_books += 1
            position += 1
        for symbol, payload in batch.market_data.items():
            if position + 1 >= acked:  # PUBLISH and SET both needed
                self._requeue_conflated(self._market_data, symbol, payload, is_book=False)
            else:
                self._sent_market_data[symbol] = payload
                self.stats.published_market_data += 1
            position += 2
        self.stats.published_trades += len(batch.trades) - len(unacked_trades)
        if unacked_trades:
            self._trades.extendleft(reversed(unacked_trades))
            while len(self._trades) > self._max_pending_trades:
                self._trades.popleft()
                self.stats.dropped_trades += 1

    def _requeue_conflated(
        self, pending: dict[str, bytes], symbol: str, payload: bytes, *, is_book: bool
    ) -> None:
        if symbol in pending:  # a newer payload arrived meanwhile: the old one is superseded
            if is_book:
                self.stats.conflated_books += 1
            else:
                self.stats.conflated_market_data += 1
            return
        pending[symbol] = payload

    def _republish_latest(self) -> None:
        """After an outage, send every symbol's latest book and market data again."""
        for symbol, payload in self._sent_books.items():
            self._books.setdefault(symbol, payload)
        for symbol, payload in self._sent_market_data.items():
            self._market_data.setdefault(symbol, payload)

    def _fail_pings(
        self, reason: str, waiters: list[asyncio.Future[str | None]] | None = None
    ) -> None:
        if waiters is None:
            waiters, self._pings = self._pings, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(reason)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _record_failure(self, reason: str) -> None:
        stats = self.stats
        stats.errors += 1
        stats.last_error = reason
        stats.connected = False
        if self._outage_started is None:
            self._outage_started = time.monotonic()
            self._outage_errors = 1
            self._outage_reason = reason
            self._outage_dropped_from = stats.dropped_trades
            stats.outages += 1
            logger.warning(
                "Redis unavailable at %s: %s; publishing paused, latest state per symbol kept",
                self._shown_url,
                reason,
                extra={"event": "redis_outage_start", "redis": self._shown_url, "reason": reason},
            )
        else:
            self._outage_errors += 1
            # A server that answers but refuses us (NOAUTH after a restart with a password)
            # is a new cause worth a line; "closed" then "refused" is one plain outage.
            if reason != self._outage_reason and _REFUSED_HANDSHAKE in reason:  # cluster: "node"
                self._outage_reason = reason
                logger.warning(
                    "Redis still unavailable at %s, now: %s",
                    self._shown_url,
                    reason,
                    extra={"event": "redis_outage_reason", "reason": reason},
                )

    def _record_connected(self) -> None:
        self.stats.connected = True
        if self._outage_started is None:
            logger.debug("Redis connected at %s", self._shown_url)
            return
        duration = time.monotonic() - self._outage_started
        dropped = self.stats.dropped_trades - self._outage_dropped_from
        logger.log(
            logging.WARNING if dropped else logging.INFO,
            "Redis back at %s after %.1fs (%d errors during the outage); "
            "republishing the latest state of %d symbols%s",
            self._shown_url,
            duration,
            self._outage_errors,
            len(self._sent_books.keys() | self._sent_market_data.keys()),
            f"; {dropped} trades were dropped (the trade queue was full)" if dropped else "",
            extra={
                "event": "redis_outage_end",
                "redis": self._shown_url,
                "outage_s": round(duration, 3),
                "errors": self._outage_errors,
                "dropped_trades": dropped,
            },
        )
        self._outage_started = None
        self._outage_errors = 0
        self._republish_latest()

    def _record_reply_error(self, message: str) -> None:
        """Count a refused command; log once when Redis starts refusing (and at its end)."""
        stats = self.stats
        stats.errors += 1
        stats.last_error = message
        self._last_refusal = time.monotonic()
        if stats.refusing is None:
            stats.refusing = message
            logger.warning(
                "Redis at %s refuses commands: %s; what it refuses is not published "
                "(counted in redis_refused) and /ready says so until it takes writes again",
                self._shown_url,
                message,
                extra={"event": "redis_refusing", "redis": self._shown_url, "reason": message},
            )

    def _refusals_ended(self) -> None:
        logger.warning(
            "Redis at %s takes writes again (%d payloads refused: %s)",
            self._shown_url,
            self._refused_in_episode,
            self.stats.refusing,
            extra={"event": "redis_refusing_end", "refused": self._refused_in_episode},
        )
        self.stats.refusing = None
        self._refused_in_episode = 0


def _partition(
    batch: _Batch, replies: list[object], again: set[int], per_trade: int
) -> tuple[_Batch, list[object], _Batch]:
    """Split a sent batch into what was done and what to send again (reply indices ``again``).

    Replies follow the batch's order: trades (``per_trade`` each), books, market
    data (PUBLISH and SET), the heartbeat (two), pings. An item is sent again
    whole when any of its commands is to be; a heartbeat never is.
    """
    done = _Batch({}, {}, deque(), batch.pings, batch.heartbeat)
    retry = _Batch({}, {}, deque(), [])
    kept: list[object] = []
    position = 0
    for trade in batch.trades:
        end = position + per_trade
        if again.isdisjoint(range(position, end)):
            done.trades.append(trade)
            kept.extend(replies[position:end])
        else:
            retry.trades.append(trade)
        position = end
    for width, source, done_items, retry_items in (
        (1, batch.books, done.books, retry.books),
        (2, batch.market_data, done.market_data, retry.market_data),
    ):
        for symbol, payload in source.items():
            end = position + width
            if again.isdisjoint(range(position, end)):
                done_items[symbol] = payload
                kept.extend(replies[position:end])
            else:
                retry_items[symbol] = payload
            position = end
    kept.extend(replies[position:])  # heartbeat and pings
    done.commands = len(kept)
    done.acknowledged = len(kept)
    return done, kept, retry
