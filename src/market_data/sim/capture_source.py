"""Read recorded Binance sessions so the simulated exchange can replay them.

Parsing is ``market_data.capture``'s; this module arranges frames and
snapshots for serving. Two formats:

- cryptofeed (``*.ws.*``): line 1 is the URL, then ``<recv_ts>: <frame json>``
  with seconds as a float; REST snapshots sit in the sibling ``*.http.*`` file
  as ``<url> -> <recv_ts>: <body>``.
- hftbacktest (``*.gz``): ``<recv_ns> <json>``; a line without ``"stream"`` is
  the REST snapshot (its symbol is taken from the stream frames around it).

Frames keep the recorded bytes of ``data``: the replay is byte-exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from market_data.capture import CaptureError, read_capture, read_snapshots

__all__ = ["Capture", "CaptureError", "CaptureFrame", "CaptureSnapshot", "load_capture"]


@dataclass(frozen=True)
class CaptureFrame:
    recv_ns: int
    stream: str  # combined-stream name as recorded, e.g. "ethusdt@depth@0ms"
    data: bytes  # the recorded payload (the value of "data"), byte-exact


@dataclass(frozen=True)
class CaptureSnapshot:
    recv_ns: int
    symbol: str  # uppercase
    last_update_id: int
    body: bytes  # the recorded REST body


@dataclass
class Capture:
    frames: list[CaptureFrame] = field(default_factory=list)
    snapshots: list[CaptureSnapshot] = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        seen = {frame.stream.split("@", 1)[0].upper() for frame in self.frames}
        return sorted(seen | {snapshot.symbol for snapshot in self.snapshots})


class _Envelope(msgspec.Struct):
    stream: str


class _SnapshotHead(msgspec.Struct):
    lastUpdateId: int  # noqa: N815 - the exchange's field name


_envelope_decoder = msgspec.json.Decoder(_Envelope)
_snapshot_decoder = msgspec.json.Decoder(_SnapshotHead)
_DATA_KEY = b'"data":'


def split_frame(frame: bytes) -> tuple[str, bytes]:
    """``{"stream":s,"data":d}`` bytes -> (s, the bytes of d), without re-encoding d."""
    try:
        stream = _envelope_decoder.decode(frame).stream
    except msgspec.DecodeError as exc:
        raise CaptureError(f"not a combined-stream frame: {frame[:80]!r}") from exc
    start = frame.find(_DATA_KEY)
    end = frame.rfind(b"}")
    if start < 0 or end < 0:
        raise CaptureError(f"frame without data: {frame[:80]!r}")
    return stream, frame[start + len(_DATA_KEY) : end].strip()


def iter_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (recv_time_ns, frame bytes) for the stream frames only, in recorded order."""
    for item in read_capture(path):
        if not item.is_snapshot:
            yield item.recv_ns, item.body


def load_capture(path: Path, http_path: Path | None = None) -> Capture:
    """Read a whole capture: frames in order plus the REST snapshots recorded with it."""
    if not path.exists():  # a file, or a recording's folder (market_data.history)
        raise CaptureError(f"no capture file at {path}")
    capture = Capture()
    for item in read_capture(path):
        if item.snapshot_symbol is not None:
            capture.snapshots.append(_snapshot(item.recv_ns, item.snapshot_symbol, item.body))
        else:
            stream, data = split_frame(item.body)
            capture.frames.append(CaptureFrame(item.recv_ns, stream, data))
    sibling = http_path or _http_sibling(path)
    if sibling is not None:
        for item in read_snapshots(sibling):
            assert item.snapshot_symbol is not None
            capture.snapshots.append(_snapshot(item.recv_ns, item.snapshot_symbol, item.body))
    capture.snapshots.sort(key=lambda snapshot: snapshot.recv_ns)
    return capture


def _snapshot(recv_ns: int, symbol: str, body: bytes) -> CaptureSnapshot:
    try:
        head = _snapshot_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise CaptureError(f"unreadable snapshot line: {body[:80]!r}") from exc
    return CaptureSnapshot(recv_ns, symbol, head.lastUpdateId, body)


def _http_sibling(path: Path) -> Path | None:
    """cryptofeed writes ``NAME.ws.N.M`` next to ``NAME.http.N.M``."""
    if ".ws." not in path.name:
        return None
    prefix = path.name.split(".ws.", 1)[0]
    candidates = sorted(path.parent.glob(f"{prefix}.http.*"))
    return candidates[0] if candidates else None
