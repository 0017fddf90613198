"""Redis Cluster routing: which primary serves a hash slot, and what a redirect says.

A cluster splits the key space into 16384 hash slots (CRC16 of the key, or of
its ``{hash tag}``, modulo 16384; redis-py's ``key_slot``). ``CLUSTER SLOTS``
lists slot ranges with their primary first, then replicas. A node that does
not serve a slot answers ``MOVED <slot> <host:port>`` (the slot has a new
owner: refresh the map) or, while a slot migrates, ``ASK <slot> <host:port>``
(send this one command there, preceded by ``ASKING``). ``TRYAGAIN`` and
``CLUSTERDOWN`` mean the same command may succeed later. Pure: no I/O here.
"""

from __future__ import annotations

import dataclasses

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

__all__ = ["SLOTS", "Address", "Redirect", "SlotMap", "key_slot", "parse_redirect", "retry_later"]

SLOTS = REDIS_CLUSTER_HASH_SLOTS
Address = tuple[str, int]


class SlotMapError(ValueError):
    """A ``CLUSTER SLOTS`` reply that cannot be a slot map."""


@dataclasses.dataclass(frozen=True, slots=True)
class SlotMap:
    """The primary serving each hash slot (None where no node serves it)."""

    owners: tuple[Address | None, ...]

    @classmethod
    def from_cluster_slots(cls, reply: object, asked: Address) -> SlotMap:
        """Parse ``CLUSTER SLOTS`` as hiredis returns it; ``asked`` is the node that answered.

        A node may name itself with an empty host (or ``?``) when it does not know
        its own address: that is the address it was asked at.
        """
        if not isinstance(reply, list):
            raise SlotMapError(f"CLUSTER SLOTS answered {type(reply).__name__}, not a list")
        owners: list[Address | None] = [None] * SLOTS
        for entry in reply:
            if not isinstance(entry, list) or len(entry) < 3:
                raise SlotMapError(f"CLUSTER SLOTS entry {entry!r} is not [start, end, node...]")
            start, end, primary = entry[0], entry[1], entry[2]
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end < SLOTS):
                raise SlotMapError(f"CLUSTER SLOTS range {start!r}-{end!r} is not a slot range")
            address = _node_address(primary, asked)
            owners[start : end + 1] = [address] * (end - start + 1)
        return cls(tuple(owners))

    def owner(self, slot: int) -> Address | None:
        return self.owners[slot]

    @property
    def primaries(self) -> list[Address]:
        """Every primary that serves at least one slot, in slot order."""
        return list(dict.fromkeys(owner for owner in self.owners if owner is not None))

    @property
    def unserved(self) -> int:
        """Slots no primary serves (the cluster is down for keys in them)."""
        return sum(1 for owner in self.owners if owner is None)

    def moved(self, slot: int, address: Address) -> SlotMap:
        """The map after a ``MOVED``: the slot now belongs to ``address``."""
        owners = list(self.owners)
        owners[slot] = address
        return SlotMap(tuple(owners))


def _node_address(node: object, asked: Address) -> Address:
    if not isinstance(node, list) or len(node) < 2 or not isinstance(node[1], int):
        raise SlotMapError(f"CLUSTER SLOTS node {node!r} is not [host, port, ...]")
    host = node[0]
    text = host.decode() if isinstance(host, bytes) else str(host or "")
    if text in ("", "?"):
        text = asked[0]
    return (text, node[1])


@dataclasses.dataclass(frozen=True, slots=True)
class Redirect:
    """``MOVED`` or ``ASK``: the slot and the node to send its command to."""

    ask: bool
    slot: int
    address: Address


def parse_redirect(message: str) -> Redirect | None:
    """The redirect in an error reply (``MOVED 3999 10.0.0.2:6381``), else None."""
    kind, _, rest = message.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot_text, _, endpoint = rest.partition(" ")
    host, _, port_text = endpoint.rpartition(":")
    if not (slot_text.isdigit() and port_text.isdigit()):
        return None
    slot = int(slot_text)
    if slot >= SLOTS:
        return None
    return Redirect(kind == "ASK", slot, (host, int(port_text)))


_RETRY_LATER = ("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")


def retry_later(message: str) -> bool:
    """Whether a command refused with ``message`` should be sent again (routing, not data)."""
    return message.startswith(_RETRY_LATER)
