"""Recording files: gzip text lines, one file per symbol per hour (or day).

The format is the one ``market_data.capture`` reads (see its docstring): a
frame is ``<recv_ns>[/<line>] <frame as received>``, a snapshot the service used
is ``<recv_ns> {"snapshot":SYMBOL,"data":<REST body>}``, a connection event is
``<recv_ns> {"connection":EVENT,...}``. Files are
``<dir>/<SYMBOL>/<SYMBOL>-<YYYYMMDD>T<HH>-<start ms>.gz`` (``T`` part omitted
for daily files); frames naming no symbol go to ``_other``.

Crash safety: the writer finishes a deflate block (``Z_SYNC_FLUSH``) every
``BLOCK_S`` (1 s), so a crash leaves every closed file complete and the open
one readable up to its last full line, at most a second before the crash (the
reader tolerates the missing trailer).
Nothing here runs in the service's process: :class:`RecordingWriter` belongs to
the history process (``worker.py``).
"""

import base64
import gzip
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from isal import igzip

log = logging.getLogger(__name__)

#: Compression level, of ISA-L's gzip (``isal``: the same format as zlib's, read by the
#: stdlib): on 75,000 lines of a real ETHUSDT capture (312 bytes each), level 1 costs
#: 0.45 μs a line for 4.40 MB, against zlib's 1.60 μs at its level 1 for 4.82 MB.
GZIP_LEVEL = 1
#: Seconds between the ends of deflate blocks: what a crash can lose of the open files.
BLOCK_S = 1.0
OTHER = "_other"


@dataclass(frozen=True, slots=True)
class Retention:
    """Keep files at most ``max_age_s`` old and ``max_bytes`` in all (0: no limit)."""

    max_age_s: float = 0.0
    max_bytes: int = 0


class _OpenFile:
    __slots__ = ("path", "raw", "gz", "period", "pending")

    def __init__(self, path: Path, period: str) -> None:
        self.path = path
        self.period = period
        #: Lines of the current batch: compressed in one call at the flush (a third the CPU
        #: of one call per line).
        self.pending: list[bytes] = []
        self.raw: IO[bytes] = path.open("xb")
        self.gz: gzip.GzipFile = igzip.IGzipFile(  # a GzipFile, ISA-L's deflate inside
            fileobj=self.raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0
        )

    def write_pending(self) -> None:
        if self.pending:
            data = b"".join(self.pending)
            self.pending.clear()
            self.gz.write(data)

    def close(self) -> None:
        try:
            self.write_pending()
            self.gz.close()
        finally:
            self.raw.close()


class RecordingWriter:
    """Appends lines to the right file, rotates at the hour (or day), applies retention.

    Raises ``OSError`` when the disk refuses (full, read-only, gone): the caller
    suspends recording.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        rotate: str = "hour",
        retention: Retention = Retention(),
        block_s: float = BLOCK_S,
    ) -> None:
        self.directory = Path(directory)
        self.block_s = block_s
        self._flushed_at = time.monotonic()
        self.rotate = rotate
        self.retention = retention
        self._files: dict[str, _OpenFile] = {}
        self._dirty: set[str] = set()
        #: Bytes written (uncompressed lines), for the metrics.
        self.bytes_in = 0
        #: Lines written, for the metrics.
        self.lines = 0
        #: Files opened so far.
        self.files_opened = 0
        #: Every symbol a file was opened for (the recording_gap goes to each).
        self.symbols: set[str] = set()
        # The period of the last receive time, valid for [_period_start, _period_end) ns.
        self._period = ""
        self._period_start = self._period_end = 0

    def period(self, recv_ns: int) -> str:
        """The file period a receive time falls in: ``20260103T14`` or ``20260103``."""
        if self._period_start <= recv_ns < self._period_end:
            return self._period  # one strftime per hour, not one per line
        span_s = 3600 if self.rotate == "hour" else 86_400
        start_s = recv_ns // 1_000_000_000 // span_s * span_s
        fmt = "%Y%m%dT%H" if self.rotate == "hour" else "%Y%m%d"
        self._period = time.strftime(fmt, time.gmtime(start_s))
        self._period_start, self._period_end = start_s * 10**9, (start_s + span_s) * 10**9
        return self._period

    def write_frame(self, symbol: str, recv_ns: int, line: int, frame: bytes) -> None:
        # Kept whole, escaped: lines must stay lines, and a frame that does not name its
        # stream up front (an error object, anything hostile) must not read back as a
        # snapshot or an event line.
        if b"\n" in frame or b"\r" in frame or b'"stream"' not in frame[:32]:
            body = b'{"raw_b64":"' + base64.b64encode(frame) + b'"}'
            self.write_line(symbol, recv_ns, b"%d %s\n" % (recv_ns, body))
        elif line:
            self.write_line(symbol, recv_ns, b"%d/%d %s\n" % (recv_ns, line, frame))
        else:
            self.write_line(symbol, recv_ns, b"%d %s\n" % (recv_ns, frame))

    def write_snapshot(self, symbol: str, recv_ns: int, body: bytes) -> None:
        if b"\n" in body or b"\r" in body:
            body = body.replace(b"\r", b"").replace(b"\n", b"")  # JSON whitespace only
        line = b'%d {"snapshot":"%s","data":%s}\n' % (recv_ns, symbol.encode(), body)
        self.write_line(symbol, recv_ns, line)

    def write_event(self, symbol: str, recv_ns: int, event_json: bytes) -> None:
        self.write_line(symbol, recv_ns, b"%d %s\n" % (recv_ns, event_json))

    def write_line(self, symbol: str, recv_ns: int, data: bytes) -> None:
        """Append one whole line (ending with a newline) to ``symbol``'s file."""
        handle = self._files.get(symbol)
        if (
            handle is None
            or not self._period_start <= recv_ns < self._period_end
            or handle.period != self._period
        ):
            handle = self._file_for(symbol, recv_ns)
        pending = handle.pending
        if not pending:  # the first line since the last flush
            self._dirty.add(symbol)
        pending.append(data)
        self.bytes_in += len(data)
        self.lines += 1

    def _file_for(self, symbol: str, recv_ns: int) -> _OpenFile:
        """The file of ``symbol`` for ``recv_ns``'s period: opened, or rotated to."""
        period = self.period(recv_ns)
        handle = self._files.get(symbol)
        if handle is None or handle.period != period:
            if handle is not None:
                self._close(symbol)
                self.apply_retention()
            handle = self._open(symbol, period, recv_ns)
        return handle

    def _open(self, symbol: str, period: str, recv_ns: int) -> _OpenFile:
        folder = self.directory / symbol
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{symbol}-{period}-{recv_ns // 1_000_000}"
        path = folder / f"{stem}.gz"
        n = 1
        while path.exists():
            path = folder / f"{stem}.{n}.gz"
            n += 1
        handle = self._files[symbol] = _OpenFile(path, period)
        self.files_opened += 1
        self.symbols.add(symbol)
        return handle

    def flush(self, force: bool = False) -> None:
        """End the current deflate block of every written file: readable to here after a crash.

        At most once per ``block_s`` unless ``force``: ending a block per file per batch
        cost more than the compression itself with 100 files.
        """
        now = time.monotonic()
        if not force and now - self._flushed_at < self.block_s:
            return
        self._flushed_at = now
        for symbol in self._dirty:
            handle = self._files.get(symbol)
            if handle is not None:
                handle.write_pending()
                handle.gz.flush()
                handle.raw.flush()
        self._dirty.clear()

    def _close(self, symbol: str) -> None:
        handle = self._files.pop(symbol, None)
        self._dirty.discard(symbol)
        if handle is not None:
            handle.close()

    def close(self) -> None:
        """Close every file (complete gzip members); errors of one do not keep the others open."""
        first: OSError | None = None
        for symbol in list(self._files):
            try:
                self._close(symbol)
            except OSError as exc:
                first = first or exc
        if first is not None:
            raise first

    def abandon(self) -> None:
        """Drop every open file without finishing it (after a write error)."""
        for handle in self._files.values():
            try:
                handle.raw.close()
            except OSError:
                pass
        self._files.clear()
        self._dirty.clear()

    def apply_retention(self, now_s: float | None = None) -> list[Path]:
        """Delete closed files past the age limit, then the oldest past the size limit."""
        keep = self.retention
        if not keep.max_age_s and not keep.max_bytes:
            return []
        now_s = time.time() if now_s is None else now_s
        open_paths = {handle.path for handle in self._files.values()}
        files: list[tuple[float, int, Path]] = []
        total = 0
        for path in self.directory.glob("*/*.gz"):
            if not _is_recording(path):  # only files this writer names: never anyone else's
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            total += stat.st_size
            if path not in open_paths:
                files.append((stat.st_mtime, stat.st_size, path))
        files.sort()
        removed: list[Path] = []
        for mtime, size, path in files:
            too_old = keep.max_age_s > 0 and now_s - mtime > keep.max_age_s
            too_big = keep.max_bytes > 0 and total > keep.max_bytes
            if not (too_old or too_big):
                continue
            try:
                os.unlink(path)
            except OSError as exc:
                log.warning("recording retention: cannot delete %s: %s", path, exc)
                continue
            total -= size
            removed.append(path)
        if removed:
            log.info("recording retention: deleted %d old file(s)", len(removed))
        return removed


_RECORDING_NAME = re.compile(r"^([A-Za-z0-9_]+)-\d{8}(T\d{2})?-\d+(\.\d+)?\.gz$")


def _is_recording(path: Path) -> bool:
    """``<SYMBOL>/<SYMBOL>-<period>-<ms>[.<n>].gz``: a file of this writer's."""
    match = _RECORDING_NAME.match(path.name)
    return match is not None and match.group(1) == path.parent.name
