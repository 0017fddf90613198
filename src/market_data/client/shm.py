"""Read the market-data shared-memory ring from any local Python process.

    from market_data.client.shm import ShmRingReader, BookRecord

    with ShmRingReader.attach("market_data") as reader:
        for record in reader:          # blocks; or reader.poll() / reader.read(timeout)
            if isinstance(record, BookRecord):
                print(record.symbol, record.bids[0], record.asks[0])

Reading takes no lock and makes no system call while records flow: it polls
the ring's sequence words in the shared mapping (see ``core/ring.py`` and
docs/SHM.md). A record is returned only if its slot did not change while it
was copied out; records the writer overwrote first are counted in ``missed``.

When the writer restarts, its new segment replaces the old file under the same
name. While idle, the reader looks at the name at most every
``REATTACH_CHECK_S`` seconds; on a new file it drains what is left of the old
mapping, then attaches to the new one (``reattaches`` counts these) and reads
the new generation from its first record.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from market_data.outputs.shm import segment_path
from market_data.wire.ring import (
    WRITER_SILENT_AFTER_S,
    BookRecord,
    JsonRecord,
    Record,
    RecordKind,
    RingCursor,
    RingHeader,
    ShmLayoutError,
    ShmRingError,
    ShmSegmentMissingError,
    TradeRecord,
    decode_header,
)
from market_data.wire.ring_index import ring_for

__all__ = [
    "BookRecord",
    "JsonRecord",
    "Record",
    "RecordKind",
    "ShmLayoutError",
    "ShmRingError",
    "ShmRingReader",
    "ShmSegmentMissingError",
    "TradeRecord",
]

REATTACH_CHECK_S = 0.05
#: Map the whole ring's page tables at attach (~30 ms for 64 MiB) instead of a
#: minor fault on the first read of each 4 KiB page: those faults raised a
#: busy-polling reader's p99 (1 KB records: 29-64 μs without, 17-22 μs with).
_MAP_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)
_SPIN_BEFORE_SLEEP = 200
_MIN_SLEEP_S = 50e-6
_MAX_SLEEP_S = 1e-3


class _Attachment:
    """One mapped segment file and the cursor reading it."""

    def __init__(self, path: Path, *, from_oldest: bool = False, from_first: bool = False) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ShmSegmentMissingError(
                f"no shared-memory segment {path}: is the writer running?"
            ) from None
        except OSError as exc:
            raise ShmRingError(f"cannot open shared-memory segment {path}: {exc}") from exc
        try:
            stat = os.fstat(fd)
            if stat.st_size == 0:
                raise ShmLayoutError(f"segment {path} is empty")
            self.mapping = mmap.mmap(
                fd, stat.st_size, mmap.MAP_SHARED | _MAP_POPULATE, mmap.PROT_READ
            )
        except OSError as exc:
            raise ShmRingError(f"cannot map shared-memory segment {path}: {exc}") from exc
        finally:
            os.close(fd)  # the mapping stays valid
        self.inode = stat.st_ino
        try:
            with memoryview(self.mapping) as view:
                self.header: RingHeader = decode_header(view)
        except ShmLayoutError as exc:
            self.mapping.close()
            raise ShmLayoutError(f"{path}: {exc}") from None
        self.cursor = RingCursor(
            memoryview(self.mapping), self.header, from_oldest=from_oldest, from_first=from_first
        )

    def close(self) -> None:
        self.cursor.release()
        self.mapping.close()


class ShmRingReader:
    """A consumer of the ring: poll, read or iterate records; any number may attach."""

    def __init__(
        self, path: Path, attachment: _Attachment, resolve: Callable[[], Path] | None = None
    ) -> None:
        self.path = path
        self._att = attachment
        #: Where the records are now (``attach_symbol``: through the workers' index),
        #: looked up again while idle; None: always ``path``.
        self._resolve = resolve
        self._pending: deque[Record] = deque()
        self._books: dict[str, BookRecord] = {}
        self._missed_before = 0  # records lost in earlier generations
        self._next_check = time.monotonic() + REATTACH_CHECK_S
        self.reattaches = 0
        self.records_read = 0
        self.segment_present = True
        self._closed = False

    @classmethod
    def attach(cls, name: str, *, from_oldest: bool = False) -> ShmRingReader:
        """Attach to segment ``name``; read records published from now on.

        With ``from_oldest`` the reader starts at the oldest record still in
        the ring instead. Raises ShmSegmentMissingError if there is no such
        segment and ShmLayoutError if it is not a ring of this layout version.
        """
        path = segment_path(name)
        return cls(path, _Attachment(path, from_oldest=from_oldest))

    @classmethod
    def attach_symbol(cls, name: str, symbol: str, *, from_oldest: bool = False) -> ShmRingReader:
        """Attach to the ring that carries ``symbol``, however many workers write ``name``.

        With ``run --workers N`` the ring is found through the index the
        supervisor publishes (:mod:`market_data.wire.ring_index`); with one
        process it is ``name`` itself. The ring may carry other symbols too. The
        index is read again while idle: a reader that found ``name`` (an old single
        process's ring, or workers still starting) moves to the worker's ring once
        the index names one.
        """

        def resolve() -> Path:
            return segment_path(ring_for(name, symbol))

        path = resolve()
        return cls(path, _Attachment(path, from_oldest=from_oldest), resolve)

    # --- state --------------------------------------------------------------

    @property
    def missed(self) -> int:
        """Records lost to laps (the writer overwrote them before we read them)."""
        return self._missed_before + self._att.cursor.missed

    @property
    def generation(self) -> int:
        """Generation of the segment currently attached."""
        return self._att.header.generation

    @property
    def header(self) -> RingHeader:
        return self._att.header

    @property
    def head(self) -> int:
        """Last record number the writer completed in the current generation."""
        return self._att.cursor.head

    @property
    def lag(self) -> int:
        """Records published but not yet read (includes any about to be missed)."""
        return self._att.cursor.head - self._att.cursor.next_seq + 1 + len(self._pending)

    @property
    def writer_closed(self) -> bool:
        """The writer of the attached segment closed it cleanly."""
        return self._att.cursor.writer_closed

    @property
    def writer_silent_s(self) -> float | None:
        """Seconds since the writer last said it is alive (None: a writer that never does).

        The service's writer beats every second; a crashed or hung one leaves every
        book it wrote looking ``live``, so trust them only while this stays small.
        """
        beat = self._att.cursor.writer_beat_ns
        if not beat:
            return None
        return max(0.0, (time.monotonic_ns() - beat) / 1e9)

    @property
    def writer_alive(self) -> bool:
        """The writer is running and beating: its live books are current.

        False once it closed the ring, or has been silent for
        :data:`~market_data.wire.ring.WRITER_SILENT_AFTER_S` (dead or hung). A writer
        that never beats counts as alive until it closes.
        """
        if self.writer_closed:
            return False
        silent = self.writer_silent_s
        return silent is None or silent < WRITER_SILENT_AFTER_S

    def latest_book(self, symbol: str) -> BookRecord | None:
        """The last book of ``symbol`` this reader has read in the segment it is attached to.

        Its ``state`` is what the writer last said: check :attr:`writer_alive` before
        taking a ``live`` one as current.
        """
        return self._books.get(symbol)

    # --- reading ------------------------------------------------------------

    def poll(self) -> list[Record]:
        """All new records (up to one ring's worth), oldest first; never blocks."""
        if self._pending:
            records = list(self._pending)
            self._pending.clear()
            return records
        records = self._att.cursor.poll()
        if records:
            self._account(records)
        else:
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + REATTACH_CHECK_S
                records = self._check_segment()
        return records

    def read(self, timeout: float | None = None, busy_poll: bool = False) -> Record | None:
        """The next record, waiting up to ``timeout`` seconds (None: forever).

        ``busy_poll`` spins on the sequence words (lowest latency, one core at
        100%); otherwise the reader spins briefly, then sleeps 50 μs to 1 ms.
        """
        if self._pending:
            return self._pending.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        spins = 0
        sleep_s = _MIN_SLEEP_S
        while True:
            records = self.poll()
            if records:
                self._pending.extend(records[1:])
                return records[0]
            if deadline is not None and time.monotonic() >= deadline:
                return None
            if busy_poll:
                continue
            spins += 1
            if spins > _SPIN_BEFORE_SLEEP:
                time.sleep(sleep_s)
                sleep_s = min(sleep_s * 2, _MAX_SLEEP_S)

    def __iter__(self) -> Iterator[Record]:
        """Every record from now on, blocking between them."""
        while True:
            record = self.read()
            if record is not None:
                yield record

    def _account(self, records: list[Record]) -> None:
        self.records_read += len(records)
        books = self._books
        for record in records:
            if type(record) is BookRecord:
                books[record.symbol] = record

    # --- generation change ----------------------------------------------------

    def _check_segment(self) -> list[Record]:
        """Re-attach if the name now points at a new segment, or the symbol at another
        ring; return records drained."""
        path = self._resolve() if self._resolve is not None else self.path
        try:
            inode = os.stat(path).st_ino
        except FileNotFoundError:
            self.segment_present = False
            return []
        except OSError:
            return []
        self.segment_present = True
        moved = path != self.path
        if inode == self._att.inode and not moved:
            return []
        try:
            # A new generation of the same ring: from its record 1 (what it overwrote
            # already is missed); another ring: from its oldest record still held.
            fresh = _Attachment(path, from_first=not moved, from_oldest=moved)
        except ShmRingError:
            return []  # replaced by something we cannot read (yet): keep looking
        old = self._att
        drained: list[Record] = []
        while batch := old.cursor.poll():
            drained.extend(batch)
        self._missed_before += old.cursor.missed
        old.close()
        self._account(drained)
        # The new writer's books start from nothing: an old generation's live book,
        # kept until the new one publishes that symbol (or for ever), would be stale.
        self._books.clear()
        self._att = fresh
        self.path = path
        self.reattaches += 1
        records = fresh.cursor.poll()
        self._account(records)
        return drained + records

    # --- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Unmap the segment (the writer is not affected)."""
        if not self._closed:
            self._closed = True
            self._att.close()

    def __enter__(self) -> ShmRingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ShmRingReader({str(self.path)!r}, generation={self.generation}, "
            f"records_read={self.records_read}, missed={self.missed}, "
            f"reattaches={self.reattaches})"
        )
