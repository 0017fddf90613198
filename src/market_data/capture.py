"""Read recorded Binance captures: the two formats in ``tests/data/``.

* cryptofeed text recordings: line 1 is ``<url> <-> <ts>``, later lines are
  ``<recv_ts>: <frame json>`` (seconds, float); REST snapshots sit in a separate
  file of lines ``<url> -> <recv_ts>: <body>``.
* hftbacktest gzip recordings: lines ``<recv_ns> <json>``; a line whose JSON has
  no ``"stream"`` key is the REST snapshot (the file names no symbol for it:
  it belongs to the one depth stream of the file).

Both come out as :class:`CaptureItem` in file order.
"""

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from market_data.errors import MarketDataError


class CaptureError(MarketDataError):
    """A capture file that cannot be read."""


@dataclass(frozen=True, slots=True)
class CaptureItem:
    """One recorded frame (``symbol`` None) or REST snapshot (``symbol`` set)."""

    recv_ns: int
    body: bytes
    snapshot_symbol: str | None = None

    @property
    def is_snapshot(self) -> bool:
        return self.snapshot_symbol is not None


_GZIP_MAGIC = b"\x1f\x8b"
_SYMBOL_IN_STREAM = re.compile(rb'"stream":"([a-z0-9]+)@depth')


def read_capture(path: str | Path, symbol: str | None = None) -> Iterator[CaptureItem]:
    """Yield a capture's frames and inline snapshots in file order.

    ``symbol`` names the owner of an inline (hftbacktest) snapshot; when not
    given, it is taken from the file's depth stream.
    """
    path = Path(path)
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if magic == _GZIP_MAGIC:
        yield from _read_gzip_lines(path, symbol)
    else:
        yield from _read_text_lines(path)


def read_snapshots(path: str | Path) -> Iterator[CaptureItem]:
    """Yield the snapshots of a cryptofeed ``...http...`` file (``<url> -> <ts>: <body>``)."""
    path = Path(path)
    for lineno, line in _lines(path):
        head, sep, body = line.partition(b": ")
        url, arrow, ts = head.rpartition(b" -> ")
        if not sep or not arrow:
            raise CaptureError(f"{path}:{lineno}: expected '<url> -> <ts>: <body>'")
        query = parse_qs(urlsplit(url.decode()).query)
        if "symbol" not in query:
            raise CaptureError(f"{path}:{lineno}: snapshot URL names no symbol")
        yield CaptureItem(_seconds_to_ns(ts, path, lineno), body, query["symbol"][0].upper())


def _read_text_lines(path: Path) -> Iterator[CaptureItem]:
    for lineno, line in _lines(path):
        if lineno == 1 and b" <-> " in line:
            continue  # the connection URL
        ts, sep, body = line.partition(b": ")
        if not sep:
            raise CaptureError(f"{path}:{lineno}: expected '<recv_ts>: <frame>'")
        yield CaptureItem(_seconds_to_ns(ts, path, lineno), body)


def _read_gzip_lines(path: Path, symbol: str | None) -> Iterator[CaptureItem]:
    pending_snapshots: list[CaptureItem] = []
    try:
        with gzip.open(path, "rb") as stream:
            for lineno, raw in enumerate(stream, start=1):
                line = raw.rstrip(b"\r\n")
                if not line:
                    continue
                ts, sep, body = line.partition(b" ")
                if not sep or not ts.isdigit():
                    raise CaptureError(f"{path}:{lineno}: expected '<recv_ns> <json>'")
                recv_ns = int(ts)
                if b'"stream"' in body[:32]:
                    if symbol is None:
                        match = _SYMBOL_IN_STREAM.search(body, 0, 64)
                        if match:
                            symbol = match.group(1).decode().upper()
                            for item in pending_snapshots:
                                yield CaptureItem(item.recv_ns, item.body, symbol)
                            pending_snapshots.clear()
                    yield CaptureItem(recv_ns, body)
                elif symbol is None:
                    pending_snapshots.append(CaptureItem(recv_ns, body, ""))
                else:
                    yield CaptureItem(recv_ns, body, symbol)
    except (OSError, EOFError) as exc:
        raise CaptureError(f"{path}: {exc}") from None
    if pending_snapshots:
        raise CaptureError(f"{path}: snapshot found but no depth stream names its symbol")


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    try:
        with path.open("rb") as stream:
            for lineno, raw in enumerate(stream, start=1):
                line = raw.rstrip(b"\r\n")
                if line:
                    yield lineno, line
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None


def _seconds_to_ns(text: bytes, path: Path, lineno: int) -> int:
    try:
        whole, _, frac = text.decode().strip().partition(".")
        return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    except ValueError:
        raise CaptureError(f"{path}:{lineno}: bad timestamp {text[:32]!r}") from None
