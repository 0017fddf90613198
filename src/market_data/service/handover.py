"""Make-before-break rotation: when may the old connection close without a gap?

Before the exchange's 24 h cut, the feed opens the replacement connection
while the old one still delivers. Both carry the same streams, and every event
generated after the new one subscribed goes out on both. So closing the old
one can lose only events it had not yet delivered that the new one starts
*after*. Per stream the tracker keeps the last id the old connection delivered
and the first id the new one delivered (its chain start: ``pu`` of a depth
event, ``a - 1`` of an aggregate trade); the old connection may close once,
for every stream the new one has delivered, the old one reached that start.
Streams the new one has not delivered yet are either quiet (nothing pending)
or behind the old one (they will repeat what was already taken, and the
copies are dropped as stale or duplicate trades). The new connection's frames
are held until then and handed over in order. Pure: feed frames in, ask
:meth:`HandoverTracker.ready`.
"""

from __future__ import annotations

import msgspec


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

    def on_old(self, raw: str | bytes) -> None:
        ids = _ids(raw)
        if ids is not None:
            key, _, last = ids
            if last > self._old_last.get(key, -1):
                self._old_last[key] = last

    def on_new(self, raw: str | bytes) -> None:
        self.held.append(raw)
        ids = _ids(raw)
        if ids is not None and ids[0] not in self._new_first:
            self._new_first[ids[0]] = ids[1]

    def ready(self) -> bool:
        """Whether the old connection has delivered all the new one starts after."""
        if not self.held:
            return False  # the new one has not delivered anything yet
        old_last = self._old_last
        return all(old_last.get(key, -1) >= start for key, start in self._new_first.items())

    def behind(self) -> list[str]:
        """Streams where the old connection still lags the new one's start (for the log)."""
        old_last = self._old_last
        return sorted(k for k, start in self._new_first.items() if old_last.get(k, -1) < start)
