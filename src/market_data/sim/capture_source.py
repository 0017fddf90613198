"""Read recorded Binance sessions so the simulated exchange can replay them.

Two formats, detected from the file name:

- cryptofeed (``*.ws.*``): line 1 is the URL, then ``<recv_ts>: <frame json>``
  with seconds as a float; REST snapshots sit in the sibling ``*.http.*`` file
  as ``<url> -> <recv_ts>: <body>``.
- hftbacktest (``*.gz``): ``<recv_ns> <json>``; a line without ``"stream"`` is
  the REST snapshot (its symbol is taken from the stream frames around it).

Frames keep the recorded bytes of ``data``: the replay is byte-exact.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec


class CaptureError(Exception):
    """The capture file cannot be read or has an unknown layout."""


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
_HTTP_LINE = re.compile(rb"^(\S+) -> ([0-9.]+): (.*)$")


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


def iter_recorded_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (recv_time_ns, recorded json bytes) for every message line of a capture."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as lines:
            for line in lines:
                stamp, _, body = line.rstrip(b"\r\n").partition(b" ")
                if body:
                    yield int(stamp), body
        return
    with path.open("rb") as lines:
        next(lines, None)  # the URL line
        for line in lines:
            stamp, _, body = line.rstrip(b"\r\n").partition(b": ")
            if body:
                yield _seconds_to_ns(stamp), body


def iter_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """Yield (recv_time_ns, frame bytes) for the stream frames only, in recorded order."""
    for recv_ns, body in iter_recorded_lines(path):
        if body.startswith(b'{"stream"'):
            yield recv_ns, body


def load_capture(path: Path, http_path: Path | None = None) -> Capture:
    """Read a whole capture: frames in order plus the REST snapshots recorded with it."""
    if not path.is_file():
        raise CaptureError(f"no capture file at {path}")
    capture = Capture()
    unassigned: list[tuple[int, bytes]] = []
    last_symbol = ""
    for recv_ns, body in iter_recorded_lines(path):
        if b'"stream"' not in body[:16]:
            if last_symbol:
                capture.snapshots.append(_snapshot(recv_ns, last_symbol, body))
            else:
                unassigned.append((recv_ns, body))
            continue
        stream, data = split_frame(body)
        capture.frames.append(CaptureFrame(recv_ns, stream, data))
        last_symbol = stream.split("@", 1)[0].upper()
        for pending_ns, pending in unassigned:
            capture.snapshots.append(_snapshot(pending_ns, last_symbol, pending))
        unassigned.clear()
    sibling = http_path or _http_sibling(path)
    if sibling is not None:
        capture.snapshots.extend(_read_http_file(sibling))
    capture.snapshots.sort(key=lambda snapshot: snapshot.recv_ns)
    return capture


def _snapshot(recv_ns: int, symbol: str, body: bytes) -> CaptureSnapshot:
    try:
        head = _snapshot_decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise CaptureError(f"unreadable snapshot line: {body[:80]!r}") from exc
    return CaptureSnapshot(recv_ns, symbol, head.lastUpdateId, body)


def _read_http_file(path: Path) -> Iterator[CaptureSnapshot]:
    with path.open("rb") as lines:
        for line in lines:
            match = _HTTP_LINE.match(line.rstrip(b"\r\n"))
            if match is None or b"/depth" not in match.group(1):
                continue
            symbol_match = re.search(rb"symbol=([A-Za-z0-9_]+)", match.group(1))
            if symbol_match is None:
                continue
            symbol = symbol_match.group(1).decode().upper()
            yield _snapshot(_seconds_to_ns(match.group(2)), symbol, match.group(3))


def _http_sibling(path: Path) -> Path | None:
    """cryptofeed writes ``NAME.ws.N.M`` next to ``NAME.http.N.M``."""
    if ".ws." not in path.name:
        return None
    prefix = path.name.split(".ws.", 1)[0]
    candidates = sorted(path.parent.glob(f"{prefix}.http.*"))
    return candidates[0] if candidates else None


def _seconds_to_ns(text: bytes) -> int:
    whole, _, frac = text.partition(b".")
    return int(whole) * 1_000_000_000 + int((frac + b"000000000")[:9] or b"0")
