"""Read recorded Binance captures: the two formats in ``tests/data/``.

* cryptofeed text recordings: line 1 is ``<url> <-> <ts>``, later lines are
  ``<recv_ts>: <frame json>`` (seconds, float); REST snapshots sit in a separate
  file of lines ``<url> -> <recv_ts>: <body>``.
* hftbacktest gzip recordings: lines ``<recv_ns> <json>``; a line whose JSON has
  no ``"stream"`` key is the REST snapshot (the file names no symbol for it:
  it belongs to the one depth stream of the file).
* this service's recordings (``market_data.history.recorder``), an extension
  of the hftbacktest format: ``<recv_ns>[/<line>] <frame>`` for frames (the
  feed line after the slash when it is not 0), ``<recv_ns> {"snapshot":SYMBOL,
  "data":<REST body>}`` for every snapshot the service used and ``<recv_ns>
  {"connection":EVENT,...}`` for connection events (``connected``,
  ``disconnected``, ``recording_gap``). A directory is read as every ``*.gz``
  file under it, merged by receive time. A file that ends in the middle of a
  gzip block or of a line (the writer crashed) is read up to its last full line.

All come out as :class:`CaptureItem` in file order.
"""

import base64
import heapq
import re
import zlib
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from market_data.errors import MarketDataError


class CaptureError(MarketDataError):
    """A capture file that cannot be read."""


@dataclass(frozen=True, slots=True)
class CaptureItem:
    """One recorded frame (``symbol`` None) or REST snapshot (``symbol`` set).

    ``event`` names a connection event (its JSON is ``body``); ``line`` is the
    feed line a frame came from; ``used`` marks a snapshot the service fed to
    the book at exactly this point (recordings), not merely fetched.
    """

    recv_ns: int
    body: bytes
    snapshot_symbol: str | None = None
    event: str | None = None
    line: int = 0
    used: bool = False

    @property
    def is_snapshot(self) -> bool:
        return self.snapshot_symbol is not None


_GZIP_MAGIC = b"\x1f\x8b"
_SYMBOL_IN_STREAM = re.compile(rb'"stream":"([a-z0-9]+)@depth')


def read_capture(
    path: str | Path, symbol: str | None = None, *, events: bool = False
) -> Generator[CaptureItem, None, None]:
    """Yield a capture's frames and inline snapshots in file order.

    ``symbol`` names the owner of an inline (hftbacktest) snapshot; when not
    given, it is taken from the file's depth stream. Connection events of a
    recording are yielded only with ``events``. A directory yields the items of
    every ``*.gz`` under it, merged by receive time.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.gz"))
        if not files:
            raise CaptureError(f"{path}: no *.gz recording in this directory")
        yield from _merged(files, symbol, events)
        return
    if path.exists() and not path.is_file():  # a pipe: its first bytes, once read, are gone
        raise CaptureError(
            f"{path}: not a regular file (a pipe?): a capture is read twice, its format "
            "first; save the stream to a file and give that"
        )
    try:
        with path.open("rb") as probe:
            magic = probe.read(2)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if magic == _GZIP_MAGIC:
        for item in _read_gzip_lines(path, symbol):
            if events or item.event is None:
                yield item
    else:
        yield from _read_text_lines(path)


def _merged(files: list[Path], symbol: str | None, events: bool) -> Iterator[CaptureItem]:
    """The items of many recordings merged by receive time, each file open only from its
    first item on.

    A day of 100 symbols is 2,400 hourly files: opening them all at once, as a plain
    merge does, passes the 1,024 files a process may usually open. Each file's first
    item is read first (the file closed again), and a file is opened when the merge
    reaches that time. Ties go to the file first in path order, as in ``heapq.merge``.
    """
    starts: list[tuple[int, int, Path]] = []
    for index, file in enumerate(files):
        peek = read_capture(file, symbol, events=events)
        try:
            first = next(peek, None)
        finally:
            peek.close()
        if first is not None:
            starts.append((first.recv_ns, index, file))
    starts.sort()
    waiting = deque(starts)
    heap: list[tuple[int, int, CaptureItem, Generator[CaptureItem, None, None]]] = []
    while waiting or heap:
        while waiting and (not heap or waiting[0][0] <= heap[0][0]):
            _, index, file = waiting.popleft()
            reader = read_capture(file, symbol, events=events)
            item = next(reader, None)
            if item is not None:
                heapq.heappush(heap, (item.recv_ns, index, item, reader))
        if not heap:  # the last files to open had nothing left (changed since the peek)
            return
        _, index, item, reader = heap[0]
        yield item
        following = next(reader, None)
        if following is None:
            heapq.heappop(heap)  # that file is done (and closed by its reader)
        else:
            heapq.heapreplace(heap, (following.recv_ns, index, following, reader))


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
        if b" -> " in ts:  # '<url> -> <ts>: <body>': the REST snapshots' file
            raise CaptureError(
                f"{path}:{lineno}: this is a file of REST snapshots: give it with --snapshot, "
                "beside the capture of the WebSocket frames"
            )
        yield CaptureItem(_seconds_to_ns(ts, path, lineno), body)


def _read_gzip_lines(path: Path, symbol: str | None) -> Iterator[CaptureItem]:
    pending_snapshots: list[CaptureItem] = []
    for lineno, line in _gzip_lines(path):
        if not line:
            continue
        ts, sep, body = line.partition(b" ")
        stamp, slash, line_text = ts.partition(b"/")
        if not sep or not stamp.isdigit() or (slash and not line_text.isdigit()):
            raise CaptureError(f"{path}:{lineno}: expected '<recv_ns> <json>'")
        recv_ns = int(stamp)
        head = body[:32]
        if b'"stream"' in head:
            if symbol is None:
                match = _SYMBOL_IN_STREAM.search(body, 0, 64)
                if match:
                    symbol = match.group(1).decode().upper()
                    for item in pending_snapshots:
                        yield CaptureItem(item.recv_ns, item.body, symbol)
                    pending_snapshots.clear()
            yield CaptureItem(recv_ns, body, line=int(line_text) if slash else 0)
        elif head.startswith(_RECORDED):
            yield _recorded_item(path, lineno, recv_ns, body)
        elif symbol is None:
            pending_snapshots.append(CaptureItem(recv_ns, body, ""))
        else:
            yield CaptureItem(recv_ns, body, symbol)
    if pending_snapshots:
        raise CaptureError(f"{path}: snapshot found but no depth stream names its symbol")


_RECORDED = (b'{"snapshot":', b'{"connection":', b'{"raw_b64":')
_SNAPSHOT_LINE = re.compile(rb'^\{"snapshot":"([A-Z0-9]+)","data":(.*)\}$', re.DOTALL)
_CONNECTION_EVENT = re.compile(rb'^\{"connection":"([a-z_]+)"')
_RAW_LINE = re.compile(rb'^\{"raw_b64":"([A-Za-z0-9+/=]*)"\}$')


def _recorded_item(path: Path, lineno: int, recv_ns: int, body: bytes) -> CaptureItem:
    """A snapshot, connection event or escaped frame line of this service's recordings."""
    if match := _SNAPSHOT_LINE.match(body):
        return CaptureItem(recv_ns, match.group(2), match.group(1).decode(), used=True)
    if match := _CONNECTION_EVENT.match(body):
        return CaptureItem(recv_ns, body, event=match.group(1).decode())
    if match := _RAW_LINE.match(body):  # a frame whose bytes held a line break
        return CaptureItem(recv_ns, base64.b64decode(match.group(1)))
    raise CaptureError(f"{path}:{lineno}: unreadable recording line {body[:60]!r}")


def _gzip_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """The lines of a gzip file (every member), tolerating a truncated tail.

    A writer that crashed leaves its last block unfinished and no gzip trailer:
    everything up to the last complete line is read, the unfinished rest dropped.
    """
    lineno = 0
    rest = b""
    decompressor = zlib.decompressobj(wbits=31)
    whole = False  # the last member ended with its trailer: the file is complete
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 16):
                while chunk:
                    try:
                        data = decompressor.decompress(chunk)
                    except zlib.error as exc:
                        if lineno == 0 and not rest:
                            raise CaptureError(f"{path}: {exc}") from None
                        return  # a damaged tail: what came before stands
                    chunk = b""
                    whole = decompressor.eof
                    if decompressor.eof:  # the next member, if any
                        chunk = decompressor.unused_data
                        decompressor = zlib.decompressobj(wbits=31)
                    rest += data
                    *lines, rest = rest.split(b"\n")
                    for raw in lines:
                        lineno += 1
                        yield lineno, raw.rstrip(b"\r")
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    if whole and rest:  # a complete file's last line, without a line break
        yield lineno + 1, rest.rstrip(b"\r")
    # Otherwise ``rest`` is an unfinished last line (the writer stopped in it): dropped.


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
