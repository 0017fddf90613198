"""Segment lifecycle of the writer (outputs/shm.py): permissions, cleanup, takeover."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from market_data.client.shm import ShmRingReader
from market_data.outputs.shm import ShmRingWriter, segment_path
from market_data.wire.ring import HEADER_SIZE, ShmRingError, ShmSegmentBusyError
from market_data.wire.ring_index import index_path, ring_for, write_index

SMALL = HEADER_SIZE + 8 * 2048


def mode_of(name: str) -> int:
    return stat.S_IMODE(os.stat(segment_path(name)).st_mode)


def test_segment_is_private_by_default_whatever_the_umask(shm_name: str) -> None:
    old_umask = os.umask(0)
    try:
        with ShmRingWriter.create(shm_name, capacity_bytes=SMALL):
            assert mode_of(shm_name) == 0o600
    finally:
        os.umask(old_umask)


def test_group_access_gives_0660(shm_name: str) -> None:
    old_umask = os.umask(0o077)
    try:
        with ShmRingWriter.create(shm_name, capacity_bytes=SMALL, group_access=True):
            assert mode_of(shm_name) == 0o660
    finally:
        os.umask(old_umask)


def test_close_unlinks_the_segment_and_leaves_no_temporary_file(shm_name: str) -> None:
    writer = ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    writer.write_trade("BTCUSDT", 1, 1.0, 1.0, 1, False, 1)
    assert writer.records_written == 1
    assert segment_path(shm_name).exists()
    writer.close()
    writer.close()  # idempotent
    assert not segment_path(shm_name).exists()
    assert not [p for p in os.listdir(segment_path(shm_name).parent) if shm_name in p]


def resident_kib(path: Path) -> int:
    """Resident size of this process's mapping of ``path``, from /proc/self/smaps.

    Found by inode: the file was mapped under its temporary name.
    """
    inode = str(os.stat(path).st_ino)
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and fields[4] == inode:
            for field in lines[i + 1 :]:
                if field.startswith("Rss:"):
                    return int(field.split()[1])
    raise AssertionError(f"{path} is not mapped")


def test_the_whole_segment_is_allocated_and_mapped_before_the_first_write(shm_name: str) -> None:
    """No page fault on the hot path, and a full /dev/shm fails at create, not as a SIGBUS."""
    capacity = HEADER_SIZE + 256 * 2048  # 128 pages
    with ShmRingWriter.create(shm_name, capacity_bytes=capacity) as writer:
        size = writer.header.total_size
        assert os.stat(writer.path).st_blocks * 512 >= size
        assert resident_kib(writer.path) * 1024 >= size - 4096


def test_a_single_ring_removes_a_stale_index_of_its_name(shm_name: str) -> None:
    """An index left by a killed ``--workers N`` run must not misroute this ring's readers."""
    write_index(shm_name, {"BTCUSDT": f"{shm_name}-0"})
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL):
        assert not index_path(shm_name).exists()
        assert ring_for(shm_name, "BTCUSDT") == shm_name


def test_close_without_unlink_keeps_the_segment_for_readers(shm_name: str) -> None:
    writer = ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    writer.write_json("X", b"{}")
    writer.close(unlink=False)
    with ShmRingReader.attach(shm_name, from_oldest=True) as reader:
        assert reader.writer_closed
        assert [r.seq for r in reader.poll()] == [1]


def test_live_writer_segment_is_not_taken(shm_name: str, spawn: Callable[..., Any]) -> None:
    other = spawn("write", "--name", shm_name, "--slots", "8", "--count", "1")
    other.expect("ready 1")
    with pytest.raises(ShmSegmentBusyError, match=f"pid {other.proc.pid}"):
        ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    other.send()
    other.expect("done")
    assert other.proc.wait(timeout=10) == 0
    assert not segment_path(shm_name).exists()  # its own close() removed it


def test_same_process_second_writer_is_refused_too(shm_name: str) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL):
        with pytest.raises(ShmSegmentBusyError):
            ShmRingWriter.create(shm_name, capacity_bytes=SMALL)


def test_segment_of_a_crashed_writer_is_replaced(shm_name: str, spawn: Callable[..., Any]) -> None:
    crashed = spawn("write", "--name", shm_name, "--slots", "8", "--count", "5", "--then", "hang")
    crashed.expect("ready 1")
    crashed.send()
    crashed.expect("done")
    crashed.kill()
    old_inode = os.stat(segment_path(shm_name)).st_ino
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as writer:
        assert writer.generation == 2
        assert writer.header.writer_pid == os.getpid()
        assert os.stat(segment_path(shm_name)).st_ino != old_inode
        assert mode_of(shm_name) == 0o600


@pytest.mark.parametrize("content", [b"", b"not a ring at all" * 100])
def test_foreign_file_under_the_name_is_replaced(shm_name: str, content: bytes) -> None:
    path = segment_path(shm_name)
    path.write_bytes(content)
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as writer:
        assert writer.generation == 1
        with ShmRingReader.attach(shm_name) as reader:
            assert reader.generation == 1


def test_invalid_names_are_refused() -> None:
    for name in ("", "a/b", "..", "."):
        with pytest.raises(ShmRingError):
            ShmRingWriter.create(name, capacity_bytes=SMALL)
