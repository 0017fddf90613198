"""The single writer of a shared-memory ring on a named segment under /dev/shm.

Lifecycle, all off the hot path:

- A segment is built complete in a private temporary file, then published
  under its name with ``link`` (new name) or ``rename`` (replacing a stale
  one), so a reader never maps a half-initialised segment.
- The writer holds ``flock(LOCK_EX)`` on its segment for its whole life. The
  kernel drops the lock when the process dies, so "lock free" is the reliable
  test for "the writer of this segment is gone" (pids get reused); the pid in
  the header only names the owner in the error message.
- A segment whose lock is free, or whose magic/version is not ours, is stale
  and is replaced, with the generation bumped; readers see a new inode and
  re-attach. A locked segment belongs to a live writer and is never taken.
- The segment is allocated and mapped whole at creation (``posix_fallocate``
  and ``MAP_POPULATE``, ~30 ms for 64 MiB): a write never takes a page fault
  (about half of the one-way latency in the first lap), and a full
  /dev/shm is an error at start rather than a SIGBUS mid-write.
- ``close()`` marks the header closed and unlinks the name.

The hot path (``write_*``) is one ``pack_into`` (or a copy) into the mapping
plus three 8-byte stores; see ``wire/ring.py``.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from market_data.wire.ring import (
    DEFAULT_SLOT_SIZE,
    RingHeader,
    RingWriter,
    ShmLayoutError,
    ShmRingError,
    ShmSegmentBusyError,
    decode_header,
    encode_header,
    slot_count_for,
)
from market_data.wire.ring_index import SHM_DIR, remove_index

_PUBLISH_ATTEMPTS = 10
#: Map every page of the segment at creation: the writer then never takes a page
#: fault on the hot path (one per 4 KiB page of the first lap otherwise).
_MAP_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)


def segment_path(name: str) -> Path:
    """Path of the segment called ``name`` (a plain file name under /dev/shm)."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ShmRingError(f"invalid shared-memory segment name {name!r}")
    return SHM_DIR / name


class ShmRingWriter:
    """Writes book, trade and JSON records into a named shared-memory ring.

    ``write_book``, ``write_trade`` and ``write_json`` are the ring's own
    methods (``wire.ring.RingWriter``, which documents them), bound here with
    no wrapper in between: the service calls them for every publication.
    """

    write_book: Callable[
        [str, int, int, int, int, Sequence[tuple[float, float]], Sequence[tuple[float, float]]],
        int,
    ]
    write_trade: Callable[[str, int, float, float, int, bool, int], int]
    write_json: Callable[..., int]

    def __init__(
        self, path: Path, fd: int, mapping: mmap.mmap, header: RingHeader, temp_path: Path
    ) -> None:
        self.path = path
        self._temp_path = temp_path
        self.header = header
        self._fd = fd
        self._mmap = mapping
        self._ring = RingWriter(memoryview(mapping), header)
        self._closed = False
        self.write_book = self._ring.write_book
        self.write_trade = self._ring.write_trade
        self.write_json = self._ring.write_json

    @classmethod
    def create(
        cls,
        name: str,
        capacity_bytes: int = 64 << 20,
        group_access: bool = False,
        *,
        slot_size: int = DEFAULT_SLOT_SIZE,
    ) -> ShmRingWriter:
        """Create (or take over a stale) segment ``name``; mode 0600, or 0660 with group access.

        Raises ShmSegmentBusyError if a live writer owns the segment.
        """
        path = segment_path(name)
        mode = 0o660 if group_access else 0o600
        slot_count = slot_count_for(capacity_bytes, slot_size)
        try:
            writer = cls._publish(path, mode, slot_size, slot_count)
        except OSError as exc:
            raise ShmRingError(f"cannot create shared-memory segment {path}: {exc}") from exc
        remove_index(name, path.parent)  # one ring under this name now: any index is stale
        return writer

    @classmethod
    def _publish(cls, path: Path, mode: int, slot_size: int, slot_count: int) -> ShmRingWriter:
        for _ in range(_PUBLISH_ATTEMPTS):
            try:
                old_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                writer = cls._build(path, mode, slot_size, slot_count, generation=1)
                if writer._publish_as(path, replace=False):
                    return writer
                continue  # another writer won the race for the name: look again
            try:
                generation = _take_over_generation(path, old_fd)
                if generation is None:  # the name moved under us: look again
                    continue
                writer = cls._build(path, mode, slot_size, slot_count, generation)
                writer._publish_as(path, replace=True)
                return writer
            finally:
                os.close(old_fd)
        raise ShmRingError(f"segment {path} keeps changing; is another writer starting?")

    def _publish_as(self, path: Path, replace: bool) -> bool:
        """Give the finished temporary segment its public name; False if the name got taken."""
        try:
            if replace:
                os.rename(self._temp_path, path)
            else:
                try:
                    os.link(self._temp_path, path)
                except FileExistsError:
                    self._discard()
                    return False
                self._temp_path.unlink()
        except BaseException:
            self._discard()
            raise
        return True

    @classmethod
    def _build(
        cls, path: Path, mode: int, slot_size: int, slot_count: int, generation: int
    ) -> ShmRingWriter:
        header = RingHeader(
            slot_size=slot_size,
            slot_count=slot_count,
            generation=generation,
            writer_pid=os.getpid(),
            created_ns=time.time_ns(),
        )
        temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)  # exact, whatever the umask
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _allocate(fd, header.total_size)
            mapping = mmap.mmap(fd, header.total_size, mmap.MAP_SHARED | _MAP_POPULATE)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        with memoryview(mapping) as view:
            encode_header(view, header)
        writer = cls(path, fd, mapping, header, temp)
        writer.beat()
        return writer

    def _discard(self) -> None:
        self._release()
        self._temp_path.unlink(missing_ok=True)

    def beat(self) -> None:
        """Tell readers this writer is alive (the service does every second): a reader
        whose writer stopped beating knows its last books are no longer current."""
        self._ring.beat(time.monotonic_ns())

    @property
    def records_written(self) -> int:
        """Records published since this writer started."""
        return self._ring.head

    @property
    def generation(self) -> int:
        return self.header.generation

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self, unlink: bool = True) -> None:
        """Mark the ring closed for readers, remove its name (by default), release it."""
        if self._closed:
            return
        self._closed = True
        self._ring.mark_closed()
        if unlink:
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass
        self._release()

    def _release(self) -> None:
        self._closed = True
        self._ring.release()
        self._mmap.close()
        os.close(self._fd)  # drops the flock

    def __enter__(self) -> ShmRingWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"ShmRingWriter({str(self.path)!r}, generation={self.header.generation}, "
            f"slots={self.header.slot_count}x{self.header.slot_size}, "
            f"records_written={self.records_written})"
        )


def _allocate(fd: int, size: int) -> None:
    """Size the segment and back every byte of it with memory now.

    A sparse segment gets its pages on first write (a fault per page in the hot
    path), and on a full /dev/shm that write is a SIGBUS that kills the service;
    allocated up front, a full /dev/shm is an error at start instead.
    """
    os.ftruncate(fd, size)
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)


def _take_over_generation(path: Path, old_fd: int) -> int | None:
    """Lock the existing segment at ``path`` and return the generation to use next.

    Raises ShmSegmentBusyError if a live writer holds it; returns None if the
    name no longer points at ``old_fd``'s file (retry).
    """
    try:
        fcntl.flock(old_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise ShmSegmentBusyError(
            f"segment {path} belongs to a live writer (pid {_owner_pid(old_fd)}); "
            "stop it or pick another shm_name"
        ) from None
    try:
        if os.stat(path).st_ino != os.fstat(old_fd).st_ino:
            return None
    except FileNotFoundError:
        return None
    return _previous_generation(old_fd) + 1


def _owner_pid(fd: int) -> str:
    try:
        return str(_read_header(fd).writer_pid)
    except (ShmLayoutError, OSError, ValueError):
        return "unknown"


def _previous_generation(fd: int) -> int:
    try:
        return _read_header(fd).generation
    except (ShmLayoutError, OSError, ValueError):
        return 0  # not a ring of ours (or truncated): replaced all the same


def _read_header(fd: int) -> RingHeader:
    size = os.fstat(fd).st_size
    with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as mapping:
        with memoryview(mapping) as view:
            return decode_header(view)
