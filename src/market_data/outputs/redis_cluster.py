"""The Redis publisher on a Redis Cluster: the same lean writer, one pipeline per primary.

:class:`RedisClusterSink` is :class:`~market_data.outputs.redis.RedisSink` with
routing: it reads the slot map (``CLUSTER SLOTS``) from the seed node of a
``redis+cluster://`` URL, or from any node it has known since, keeps one
connection per primary and splits every batch by the hash slot of each
command's key or channel. The per-node pipelines go out concurrently. Trades of
one symbol share a channel and a stream, so one slot and one pipeline: their
order is kept.

Channels use sharded pub/sub (``SPUBLISH``) when the server has it (Redis and
Valkey 7.0+; asked once with ``COMMAND INFO``): a message is then handled by
the shard that owns its channel's slot instead of being broadcast over the
whole cluster bus, so fan-out grows with the number of shards. Readers
subscribe with ``SSUBSCRIBE`` on the owner of each channel
(:class:`~market_data.client.redis.RedisSubscriber` does). Servers without it
get classic ``PUBLISH``.

Redirects: ``MOVED`` refreshes the slot map before the next round; ``ASK`` (a
slot being migrated) sends the command again to the named node, preceded by
``ASKING``; ``TRYAGAIN`` and ``CLUSTERDOWN`` send it again a moment later.
Nothing refused for routing is counted as published or lost: it is queued
again (books and market data stay conflated). A primary that dies is an outage
like a single Redis going away (publishing pauses, memory stays bounded, one
log line at each end) until the cluster has promoted its replica and the slot
map names a primary for every slot again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from typing import Any

from hiredis import ReplyError

from market_data.outputs.cluster_slots import (
    Address,
    SlotMap,
    SlotMapError,
    key_slot,
    parse_redirect,
    retry_later,
)
from market_data.outputs.redis import (
    HEARTBEAT_KEY,
    RedisSink,
    RedisUnavailableError,
    _Batch,
    _command,
    _Connection,
)
from market_data.outputs.redis_url import RedisEndpoint

logger = logging.getLogger(__name__)

#: Pause before sending again what a node refused with TRYAGAIN or CLUSTERDOWN.
RETRY_LATER_S = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class _SymbolSlots:
    trades: int
    book: int
    market_data: int


class RedisClusterSink(RedisSink):
    """Conflating, never-blocking publisher to a Redis Cluster (see the module docstring)."""

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._seeds: list[Address] = [(self._endpoint.host, self._endpoint.port)]
        self._slots: SlotMap | None = None
        self._nodes: dict[Address, _Connection] = {}
        self._stale = True
        self._asking: dict[int, Address] = {}
        self._retry_soon = False
        self._symbol_slots: dict[str, _SymbolSlots] = {}
        self._heartbeat_slot = key_slot(HEARTBEAT_KEY)
        #: Whether channels go out with SPUBLISH (None until a node was asked).
        self.sharded: bool | None = None

    @property
    def primaries(self) -> list[Address]:
        """The primaries of the last slot map read, in slot order."""
        return self._slots.primaries if self._slots is not None else []

    # -- topology --------------------------------------------------------------

    def _is_connected(self) -> bool:
        return self._slots is not None and not self._stale

    async def _connect(self) -> None:
        """Read the slot map from any node that answers, then connect to every primary."""
        slots = await self._read_slot_map()
        unserved = slots.unserved
        if unserved:
            raise RedisUnavailableError(
                f"{unserved} of 16384 hash slots have no primary (cluster failing over?)"
            )
        primaries = slots.primaries
        for address in list(self._nodes):
            if address not in primaries:  # a demoted or removed node
                await self._nodes.pop(address).close()
        for address in primaries:
            if address not in self._nodes:
                try:
                    self._nodes[address] = await _Connection.open(
                        self._endpoint_of(address), self._connect_timeout_s
                    )
                except RedisUnavailableError as exc:
                    raise RedisUnavailableError(f"primary {_show(address)}: {exc}") from None
        if self.sharded is None:
            await self._ask_for_sharded_pubsub(self._nodes[primaries[0]])
        self._slots = slots
        self._seeds = list(dict.fromkeys([*primaries, *self._seeds]))
        self._stale = False

    async def _read_slot_map(self) -> SlotMap:
        tried: list[str] = []
        candidates = list(dict.fromkeys([*self._nodes, *self.primaries, *self._seeds]))
        for address in candidates:
            connection = self._nodes.get(address)
            try:
                if connection is None:
                    connection = await _Connection.open(
                        self._endpoint_of(address), self._connect_timeout_s
                    )
                    self._nodes[address] = connection
                async with asyncio.timeout(self._io_timeout_s):
                    (reply,) = await connection.exchange(_command(b"CLUSTER", b"SLOTS"), 1)
            except (RedisUnavailableError, TimeoutError) as exc:
                tried.append(f"{_show(address)}: {exc or 'timed out'}")
                dropped = self._nodes.pop(address, None)
                if dropped is not None:
                    await dropped.close()
                continue
            if isinstance(reply, ReplyError):
                if "cluster support disabled" in str(reply).lower():
                    raise RedisUnavailableError(
                        f"{_show(address)} is not a cluster node ({reply}): "
                        "use redis:// for a single server"
                    )
                tried.append(f"{_show(address)}: {reply}")  # e.g. LOADING: ask another
                dropped = self._nodes.pop(address, None)
                if dropped is not None:
                    await dropped.close()
                continue
            try:
                return SlotMap.from_cluster_slots(reply, address)
            except SlotMapError as exc:
                tried.append(f"{_show(address)}: {exc}")
        raise RedisUnavailableError("no cluster node answered: " + "; ".join(tried))

    async def _ask_for_sharded_pubsub(self, connection: _Connection) -> None:
        async with asyncio.timeout(self._io_timeout_s):
            (info,) = await connection.exchange(_command(b"COMMAND", b"INFO", b"SPUBLISH"), 1)
        self.sharded = isinstance(info, list) and bool(info) and info[0] is not None
        if self.sharded:
            self._publish_verb = b"SPUBLISH"
            self._commands.clear()
        logger.info(
            "Redis Cluster at %s: %s",
            self._shown_url,
            "sharded pub/sub (SPUBLISH)" if self.sharded else "no SPUBLISH: classic PUBLISH",
        )

    def _endpoint_of(self, address: Address) -> RedisEndpoint:
        return dataclasses.replace(self._endpoint, host=address[0], port=address[1])

    async def _drop_connection(self) -> None:
        nodes, self._nodes = self._nodes, {}
        self._stale = True
        for connection in nodes.values():
            await connection.close()

    # -- delivery ----------------------------------------------------------------

    async def _deliver(self, batch: _Batch) -> None:
        groups = self._split(batch)
        results = await asyncio.gather(
            *(self._deliver_to(address, group) for address, group in groups),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        if self._retry_soon:
            self._retry_soon = False
            await asyncio.sleep(RETRY_LATER_S)

    async def _deliver_to(self, address: Address | None, group: _Batch) -> None:
        connection = self._nodes.get(address) if address is not None else None
        if connection is None and address is not None and group.asking:
            try:  # an ASK to a node that serves no slot yet (a slot moving to a new node)
                connection = self._nodes[address] = await _Connection.open(
                    self._endpoint_of(address), self._connect_timeout_s
                )
            except RedisUnavailableError:
                connection = None
        if connection is None:
            self._requeue(group)
            self._stale = True
            where = _show(address) if address is not None else "no primary"
            raise RedisUnavailableError(f"{where}: not connected")
        try:
            await self._send(connection, group)
        except BaseException as exc:
            self._requeue(group)
            if isinstance(exc, RedisUnavailableError):
                self._stale = True
                assert address is not None
                raise RedisUnavailableError(f"{_show(address)}: {exc}") from None
            raise

    def _split(self, batch: _Batch) -> list[tuple[Address | None, _Batch]]:
        """One batch per node (and one per ASK target), each in the batch's own order."""
        assert self._slots is not None
        owners = self._slots.owners
        asking, self._asking = self._asking, {}
        groups: dict[tuple[Address | None, bool], _Batch] = {}

        def group_of(slot: int) -> _Batch:
            target = asking.get(slot)
            key = (target, True) if target is not None else (owners[slot], False)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Batch({}, {}, deque(), [], asking=key[1])
            return group

        slots_of = self._slots_of
        for symbol, payload in batch.trades:
            group_of(slots_of(symbol).trades).trades.append((symbol, payload))
        for symbol, payload in batch.books.items():
            group_of(slots_of(symbol).book).books[symbol] = payload
        for symbol, payload in batch.market_data.items():
            group_of(slots_of(symbol).market_data).market_data[symbol] = payload
        if batch.heartbeat is not None or batch.pings:
            beat = groups.setdefault(
                (owners[self._heartbeat_slot], False), _Batch({}, {}, deque(), [])
            )
            beat.heartbeat = batch.heartbeat
            beat.pings = batch.pings
        return [(key[0], group) for key, group in groups.items()]

    def _slots_of(self, symbol: str) -> _SymbolSlots:
        slots = self._symbol_slots.get(symbol)
        if slots is None:
            name = symbol.upper().encode()
            slots = self._symbol_slots[symbol] = _SymbolSlots(
                key_slot(b"trades:" + name),
                key_slot(b"orderbook:" + name),
                key_slot(b"market_data:" + name),
            )
        return slots

    def _retry_replies(self, replies: list[object], errors: list[int]) -> set[int]:
        retry: set[int] = set()
        for index in errors:
            message = str(replies[index])
            if not retry_later(message):
                continue
            retry.add(index)
            self.stats.redirects += 1
            redirect = parse_redirect(message)
            if redirect is not None and redirect.ask:
                self._asking[redirect.slot] = redirect.address
            elif redirect is not None:
                self._stale = True  # MOVED: read the slot map again before the next round
                logger.info("Redis Cluster: slot %d moved to %s", redirect.slot, redirect.address)
            else:
                self._retry_soon = True
        if retry:
            self._wake.set()
        return retry


def _show(address: Address) -> str:
    return f"{address[0]}:{address[1]}"
