"""Read what the service publishes to Redis, as typed messages.

    async with RedisSubscriber("redis://localhost:6379/0", ["BTCUSDT"]) as feed:
        async for message in feed:
            match message:
                case OrderBookMessage() if message.trusted: ...   # a live book
                case OrderBookMessage(): ...                      # not live: no levels
                case TradeMessage(): ...                          # in trade-id order
                case TradeGap(): ...                              # trades that were missed
                case MarketDataMessage(): ...                     # best prices, 24h figures
                case PublisherStatus(alive=False): ...  # the service is gone: no book is live
                case ConnectionChange(): ...            # Redis lost (or back): nothing arrives

Messages are decoded with the Structs of :mod:`market_data.wire.messages`, the
schema the service encodes. With active/standby, messages carry the publisher's
fencing epoch and those of an epoch older than one already seen are dropped
(``stale_epoch``). :class:`PublisherStatus` messages come from the service's
heartbeat and :class:`ConnectionChange` from the subscriber's own connection:
both on by default (``publisher_events``, ``connection_events``), since a
consumer that hears of neither keeps a dead publisher's last book as live. A
book that is not live arrives as such, without levels. Trades come in id order:
a trade at or below the last id seen is a re-delivery and is dropped; a jump in
ids is reported as a :class:`TradeGap` before the trade that follows it. The
subscriber reconnects by itself (backoff 0.2 s to 3 s) and first reads the
stored ``market_data:`` key of each symbol, so a fresh consumer starts with 24h
figures. :func:`consume` is the plain callback form.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, ClusterPubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException

from market_data.outputs.redis_client import Client, redis_client
from market_data.outputs.redis_url import parse_redis_url, redact_url
from market_data.wire.messages import (
    Channels,
    MarketDataMessage,
    OrderBookMessage,
    TradeMessage,
    decode_channel,
)

log = logging.getLogger(__name__)

_RETRY_INITIAL_S = 0.2
_RETRY_MAX_S = 3.0
_POLL_S = 0.25
_CONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class TradeGap:
    """Trades ``first_missing`` to ``last_missing`` (aggregate ids) never arrived."""

    symbol: str
    first_missing: int
    last_missing: int

    @property
    def count(self) -> int:
        return self.last_missing - self.first_missing + 1


@dataclass(frozen=True)
class ConnectionChange:
    """The subscriber connected to Redis, or lost it (``reason`` says why)."""

    connected: bool
    reason: str = ""


@dataclass(frozen=True)
class PublisherStatus:
    """The service's heartbeat (``market_data:heartbeat``) came back, or stopped.

    A publisher that died (``kill -9``) leaves its last books saying ``live``; its
    silence says otherwise: treat every book as not live while ``alive`` is False.
    With ``run --workers N`` each worker beats for its own symbols: ``silent`` names
    the symbols whose worker went quiet (empty: every one's).
    """

    alive: bool
    reason: str = ""
    epoch: int = 0
    silent: tuple[str, ...] = ()


#: How often the per-symbol silence (one worker's) is looked at, at most.
_SYMBOL_CHECK_S = 0.25
#: The service beats every second; this much silence means it is gone.
SILENT_AFTER_S = 3.0
HEARTBEAT_CHANNEL = "market_data:heartbeat"

Message = (
    OrderBookMessage | MarketDataMessage | TradeMessage | TradeGap | ConnectionChange
    | PublisherStatus
)  # fmt: skip


class RedisSubscriber:
    """An async iterator of the messages of ``symbols``, reconnecting on its own."""

    def __init__(
        self,
        redis_url: str,
        symbols: Iterable[str],
        *,
        books: bool = True,
        trades: bool = True,
        market_data: bool = True,
        connection_events: bool = True,
        publisher_events: bool = True,
        silent_after_s: float = SILENT_AFTER_S,
    ) -> None:
        parse_redis_url(redis_url)  # fail fast on an unusable URL
        self.redis_url = redis_url
        self.symbols = [s.upper() for s in symbols]
        if not self.symbols:
            raise ValueError("RedisSubscriber needs at least one symbol")
        self.connection_events = connection_events
        self.publisher_events = publisher_events
        self.silent_after_s = silent_after_s
        self._last_beat: float | None = None  # loop time of the last heartbeat
        #: Per symbol, the loop time of the last beat that named it as served (a beat
        #: of a service that names none counts for every symbol, as before).
        self._beat_at: dict[str, float] = {}
        self._mine = frozenset(self.symbols)
        self._next_symbol_check = 0.0  # the per-symbol look runs a few times a second
        self._publisher_alive: bool | None = None
        self._connected: bool | None = None  # as last told: None before the first attempt
        #: The newest publisher epoch seen, of any symbol.
        self.epoch = 0
        #: Per symbol, the newest epoch seen: its messages of an older one are dropped.
        #: Per symbol, because ``run --workers N`` gives each worker its own group, and
        #: so its own epochs: one worker's failover must not silence the others' symbols.
        self._epochs: dict[str, int] = {}
        #: Per symbol, the ha_group whose beats name it: a symbol that moves to another
        #: worker (more symbols, another --workers count) starts over at its epochs.
        self._groups: dict[str, str] = {}
        self.stale_epoch = 0  # messages dropped for coming from an older epoch
        self.malformed = 0
        self.duplicate_trades = 0
        self._channels: list[str] = []
        for symbol in self.symbols:
            names = Channels.of(symbol)
            if books:
                self._channels.append(names.orderbook)
            if market_data:
                self._channels.append(names.market_data)
            if trades:
                self._channels.append(names.trades)
        if publisher_events:
            self._channels.append(HEARTBEAT_CHANNEL)
        self._want_market_data = market_data
        self._last_trade: dict[str, int] = {}
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=10_000)
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> RedisSubscriber:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="redis-subscriber")

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            # The reader's own end (cancelled, or an error already seen by the
            # iterator) must not mask what the caller's ``async with`` raised.
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        self.start()
        reader = self._task
        assert reader is not None
        while True:
            getter = asyncio.ensure_future(self._queue.get())
            try:
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()  # never left behind to take a later message
            if getter in done and not getter.cancelled():
                yield getter.result()
                continue
            if reader.cancelled() or self._stop.is_set():
                return  # closed: a clean end
            reader.result()  # re-raise what ended the reader
            return

    async def until(self, stop: asyncio.Event) -> AsyncIterator[Message]:
        """The messages, ending as soon as ``stop`` is set (even while none arrive)."""
        iterator = aiter(self)
        stopper = asyncio.ensure_future(stop.wait())
        step: asyncio.Future[Message] | None = None
        try:
            while True:
                step = asyncio.ensure_future(anext(iterator))
                done, _ = await asyncio.wait({step, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if step not in done:
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                try:
                    message = step.result()
                except StopAsyncIteration:
                    return
                yield message
        finally:
            stopper.cancel()
            if step is not None and not step.done():
                step.cancel()

    # -- decoding -----------------------------------------------------------------

    def decode(self, channel: str, data: bytes | str) -> list[Message]:
        """The messages one pub/sub message gives (none if malformed or a re-delivery)."""
        try:
            message = decode_channel(channel, data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self.malformed += 1
            log.warning("skipped a malformed %s message: %s", channel, exc)
            return []
        symbol = message.symbol or channel.partition(":")[2]
        epoch = message.epoch
        if epoch:  # active/standby: a deposed publisher's late messages are not current
            if epoch < self._epochs.get(symbol, 0):
                self.stale_epoch += 1
                return []
            self._epochs[symbol] = epoch
            self.epoch = max(self.epoch, epoch)
        if isinstance(message, TradeMessage):
            return self._in_order(symbol, message)
        return [message]

    def _in_order(self, symbol: str, trade: TradeMessage) -> list[Message]:
        last = self._last_trade.get(symbol)
        if last is not None and trade.trade_id <= last:
            self.duplicate_trades += 1
            return []
        self._last_trade[symbol] = trade.trade_id
        if last is not None and trade.trade_id > last + 1:
            return [TradeGap(symbol, last + 1, trade.trade_id - 1), trade]
        return [trade]

    # -- the reader ---------------------------------------------------------------

    async def _beat(self, payload: bytes | None) -> None:
        """A heartbeat (or, with None, the absence of its key at connect)."""
        if payload is None:
            if self._publisher_alive is not False:
                self._publisher_alive = False
                await self._put(PublisherStatus(False, "no heartbeat from the service"))
            return
        now = self._last_beat = asyncio.get_running_loop().time()
        epoch = 0
        served: object = None
        group = ""
        with contextlib.suppress(msgspec.DecodeError, AttributeError, TypeError, ValueError):
            beat = msgspec.json.decode(payload)
            epoch = int(beat.get("epoch", 0))
            served = beat.get("served")
            group = str(beat.get("group", ""))
        if isinstance(served, list):  # one worker's beat: it vouches for its symbols only
            mine, groups = self._mine, self._groups
            for symbol in served:
                if symbol in mine:
                    self._beat_at[symbol] = now
                    # Only the lease holder beats, so a beat's epoch is its group's current
                    # one: lower than seen, the count began again (Redis lost it while every
                    # instance restarted); another group, the symbol moved. Either way, it
                    # holds from here on.
                    if groups.get(symbol, group) != group or epoch < self._epochs.get(symbol, 0):
                        self._epochs[symbol] = epoch
                    groups[symbol] = group
        if self._publisher_alive is not True and not self._silent_symbols(now):
            self._publisher_alive = True
            await self._put(PublisherStatus(True, epoch=epoch))

    def _silent_symbols(self, now: float) -> list[str]:
        """The symbols whose beats stopped (``run --workers N``: one worker's).

        Only symbols a beat has named count: one the service does not serve (or not
        yet) has no publisher to be silent.
        """
        limit = self.silent_after_s
        return [s for s, at in self._beat_at.items() if now - at > limit]

    async def _check_silence(self) -> None:
        last = self._last_beat
        if last is None or self._publisher_alive is False:
            return
        now = asyncio.get_running_loop().time()
        silent = now - last
        if silent > self.silent_after_s:
            self._publisher_alive = False
            await self._put(PublisherStatus(False, f"no heartbeat for {silent:.1f}s"))
        elif now >= self._next_symbol_check:
            self._next_symbol_check = now + _SYMBOL_CHECK_S
            if quiet := self._silent_symbols(now):
                self._publisher_alive = False
                reason = f"no heartbeat from the publisher of {', '.join(quiet)}"
                await self._put(PublisherStatus(False, reason, silent=tuple(quiet)))

    async def _connection_changed(self, change: ConnectionChange) -> None:
        """Say it when the connection comes or goes, not at every failed retry."""
        if self.connection_events and change.connected != self._connected:
            await self._put(change)
        self._connected = change.connected

    async def _put(self, message: Message) -> None:
        await self._queue.put(message)  # a slow consumer slows this reader, never the service

    async def _follow(self) -> None:
        password = parse_redis_url(self.redis_url).password
        backoff = _RETRY_INITIAL_S
        # On a cluster, every node seen so far: the URL's seed node may be the one that died.
        known_nodes: dict[str, Any] = {}
        while not self._stop.is_set():
            client = redis_client(
                self.redis_url,
                socket_connect_timeout=_CONNECT_TIMEOUT_S,
                health_check_interval=10,
                retry=Retry(NoBackoff(), 0),  # surface failures now; this loop retries
                **known_nodes,
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                next_message = await _subscribe(client, pubsub, self._channels)
                self._beat_at.clear()  # beats missed while away say nothing of the workers
                if isinstance(client, aioredis.RedisCluster):
                    nodes = [ClusterNode(node.host, node.port) for node in client.get_nodes()]
                    known_nodes = {"startup_nodes": nodes}
                if self._want_market_data:  # after subscribing: nothing falls in between
                    for symbol in self.symbols:
                        stored = None
                        with contextlib.suppress(redis.exceptions.ResponseError):
                            stored = await client.get(Channels.of(symbol).market_data)
                        if stored is not None:
                            for message in self.decode(f"market_data:{symbol}", stored):
                                await self._put(message)
                await self._connection_changed(ConnectionChange(True))
                if self.publisher_events:  # the beat's key expires 3 s after the last beat
                    beat = await client.get(HEARTBEAT_CHANNEL)
                    await self._beat(beat if isinstance(beat, bytes) else None)
                backoff = _RETRY_INITIAL_S
                while not self._stop.is_set():
                    raw = await next_message(_POLL_S)
                    if self.publisher_events:
                        await self._check_silence()
                    if raw is None or raw.get("type") not in _MESSAGE_TYPES:
                        continue
                    channel = raw["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    if name == HEARTBEAT_CHANNEL:
                        await self._beat(raw["data"])
                        continue
                    for message in self.decode(name, raw["data"]):
                        await self._put(message)
            except (redis.exceptions.RedisError, RedisClusterException, OSError) as exc:
                reason = f"{type(exc).__name__}: {exc}".strip()
                if password:
                    reason = reason.replace(password, "***")
                log.info(
                    "Redis %s: %s; retrying in %.1fs",
                    redact_url(self.redis_url),
                    reason,
                    backoff,
                )
                await self._connection_changed(ConnectionChange(False, reason))
            finally:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await client.aclose()
            if not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await self._stop.wait()
                backoff = min(backoff * 2, _RETRY_MAX_S)


#: A channel message: classic pub/sub, or sharded (``SSUBSCRIBE``) on a cluster.
_MESSAGE_TYPES = ("message", "smessage")
NextMessage = Callable[[float], Awaitable[dict[str, Any] | None]]


async def _subscribe(client: Client, pubsub: PubSub, channels: list[str]) -> NextMessage:
    """Subscribe to ``channels``; the function that waits for the next message.

    On a Redis Cluster whose servers have sharded pub/sub the service publishes
    with SPUBLISH, so the reader sends SSUBSCRIBE, which redis-py sends to the
    owner of each channel's slot (one node pubsub per owner) and moves when a
    slot does. Otherwise a plain SUBSCRIBE (on a cluster, classic PUBLISH
    reaches every node).
    """
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()  # the slot map: SSUBSCRIBE is routed by it
    if isinstance(client, aioredis.RedisCluster) and await _has_sharded_pubsub(client):
        assert isinstance(pubsub, ClusterPubSub)
        await pubsub.ssubscribe(*channels)
        return lambda timeout: pubsub.get_sharded_message(timeout=timeout)
    await pubsub.subscribe(*channels)
    return lambda timeout: pubsub.get_message(timeout=timeout)


async def _has_sharded_pubsub(client: aioredis.RedisCluster) -> bool:
    info = await client.execute_command(
        "COMMAND", "INFO", "SPUBLISH", target_nodes=aioredis.RedisCluster.RANDOM
    )
    return bool(info) and (not isinstance(info, dict) or any(info.values()))


async def consume(
    redis_url: str,
    symbols: Iterable[str],
    callback: Callable[[Message], Awaitable[None] | None],
    *,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> None:
    """Call ``callback`` with every message until ``stop`` is set (the callback form).

    ``options`` are :class:`RedisSubscriber`'s (``books``, ``publisher_events``...).
    """
    stop = stop if stop is not None else asyncio.Event()
    async with RedisSubscriber(redis_url, symbols, **options) as feed:
        async for message in feed.until(stop):
            result = callback(message)
            if result is not None:
                await result
