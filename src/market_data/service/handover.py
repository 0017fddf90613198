"""Make-before-break rotation: when may the old connection close without a gap?

Before the exchange's 24 h cut, the feed opens the replacement connection
while the old one still delivers. Both carry the same streams, and every event
generated after the new one subscribed goes out on both. So closing the old
one can lose only events it had not yet delivered that the new one starts
*after*. Per stream the tracker keeps the last id the old connection delivered
and the first id the new one delivered (its chain start: ``pu`` of a depth
event, ``a - 1`` of an aggregate trade). The old connection may close once
every stream either connection delivered during the overlap has been
delivered by the new one too, from a start the old one had reached: then
nothing of those streams is only on the old one. The feed also keeps the
overlap at least :data:`MIN_OVERLAP_S`, so what was in flight on the old one
arrives (a stream quiet for all of it has nothing in flight). The new
connection's frames are held until then and handed over in order; its copies
of what the old one delivered are dropped downstream (stale events, duplicate
trades). Should an event still be missed, it is a gap the depth chain or the
trade ids show (a resync, a counted trade gap), never a silent one. Pure:
feed frames in, ask :meth:`HandoverTracker.ready`.
"""

from __future__ import annotations

import msgspec

#: Shortest overlap of the old and the new connection during a rotation (seconds).
MIN_OVERLAP_S = 0.5


class _Ids(msgspec.Struct):
    s: str = ""
    e: str = ""
    u: int | None = None
    pu: int | None = None
    a: msgspec.Raw = msgspec.Raw(b"")  # the trade id of an aggTrade, the asks of a depth event


class _Envelope(msgspec.Struct):
    stream: str = ""
    data: _Ids | None = None


_decode = msgspec.json.Decoder(_Envelope).decode


def _ids(raw: str | bytes) -> tuple[str, int, int] | None:
    """(stream key, chain start, last id) of a depth or trade frame, else None."""
    try:
        envelope = _decode(raw)
    except (msgspec.DecodeError, ValueError):
        return None  # not ours to judge: the engine counts malformed frames
    data = envelope.data
    if data is None:
        return None
    if data.u is not None and data.pu is not None:
        return f"{data.s}@depth", data.pu, data.u
    if data.e == "aggTrade" and data.a:
        try:
            trade_id = int(bytes(data.a))
        except ValueError:
            return None
        return f"{data.s}@trade", trade_id - 1, trade_id
    return None


class HandoverTracker:
    """Ids seen on the old and the new connection during one rotation."""

    def __init__(self) -> None:
        self._old_last: dict[str, int] = {}
        self._new_first: dict[str, int] = {}
        #: The new connection's frames, held until the old one closes.
        self.held: list[str | bytes] = []
        self._held_ids: list[tuple[str, int] | None] = []

    def on_old(self, raw: str | bytes) -> None:
        ids = _ids(raw)
        if ids is not None:
            key, _, last = ids
            if last > self._old_last.get(key, -1):
                self._old_last[key] = last

    def on_new(self, raw: str | bytes) -> None:
        self.held.append(raw)
        ids = _ids(raw)
        self._held_ids.append(None if ids is None else (ids[0], ids[2]))
        if ids is not None and ids[0] not in self._new_first:
            self._new_first[ids[0]] = ids[1]

    def fresh(self) -> list[str | bytes]:
        """The held frames the old connection did not deliver, in order (copies dropped).

        Handing the copies over too would make a run of stale events that the
        book counts as a stream gone wrong.
        """
        old_last = self._old_last
        return [
            raw
            for raw, ids in zip(self.held, self._held_ids, strict=True)
            if ids is None or ids[1] > old_last.get(ids[0], -1)
        ]

    def ready(self) -> bool:
        """Whether nothing delivered during the overlap is only on the old connection."""
        if not self.held:
            return False  # the new one has not delivered anything yet
        return not self.behind()

    def behind(self) -> list[str]:
        """Streams the old connection has but the new one does not yet (or not from there)."""
        old_last, new_first = self._old_last, self._new_first
        waiting = [key for key in old_last if key not in new_first]
        waiting += [key for key, start in new_first.items() if old_last.get(key, -1) < start]
        return sorted(waiting)
