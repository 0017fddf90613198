"""The public reader (shm_reader.py), in-process against a real segment."""

from __future__ import annotations

import time

import pytest

from market_data.client.shm import (
    BookRecord,
    ShmLayoutError,
    ShmRingReader,
    ShmSegmentMissingError,
    TradeRecord,
)
from market_data.outputs.shm import ShmRingWriter, segment_path
from market_data.outputs.sinks import HeartbeatUpdate, ShmOutput
from market_data.wire.ring import HEADER_SIZE
from market_data.wire.ring_index import remove_index, write_index

SMALL = HEADER_SIZE + 8 * 2048


def test_attach_to_a_missing_segment_says_so(shm_name: str) -> None:
    with pytest.raises(ShmSegmentMissingError, match="is the writer running"):
        ShmRingReader.attach(shm_name)


def test_attach_to_a_foreign_file_says_so(shm_name: str) -> None:
    segment_path(shm_name).write_bytes(b"\0" * 4096)
    with pytest.raises(ShmLayoutError, match="magic"):
        ShmRingReader.attach(shm_name)


def test_poll_read_and_latest_book(shm_name: str) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as writer:
        writer.write_trade("ETHUSDT", 1, 1.0, 1.0, 1, False, 1)  # before attach: not seen
        with ShmRingReader.attach(shm_name) as reader:
            assert reader.poll() == []
            assert reader.read(timeout=0.01) is None
            writer.write_book("BTCUSDT", 2, 10, 100, 5, [(1.0, 2.0)], [(3.0, 4.0)])
            writer.write_book("BTCUSDT", 2, 11, 101, 6, [(1.5, 2.0)], [(3.0, 4.0)])
            writer.write_trade("BTCUSDT", 7, 1.5, 0.5, 102, True, 7)
            first = reader.read(timeout=1.0)
            assert isinstance(first, BookRecord) and first.last_update_id == 10
            rest = [reader.read(timeout=1.0, busy_poll=True) for _ in range(2)]
            assert isinstance(rest[1], TradeRecord) and rest[1].trade_id == 7
            latest = reader.latest_book("BTCUSDT")
            assert latest is not None and latest.last_update_id == 11
            assert reader.latest_book("ETHUSDT") is None
            assert reader.records_read == 3 and reader.missed == 0 and reader.lag == 0


def test_iteration_yields_records_as_they_come(shm_name: str) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as writer:
        with ShmRingReader.attach(shm_name) as reader:
            for i in range(3):
                writer.write_json("X", str(i).encode())
            got = []
            for record in reader:
                got.append(record.seq)
                if len(got) == 3:
                    break
            assert got == [1, 2, 3]


def test_reader_follows_a_restarted_writer_and_counts_lost_records(shm_name: str) -> None:
    first = ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    reader = ShmRingReader.attach(shm_name)
    try:
        first.write_json("X", b"a")
        first.write_json("X", b"b")
        first.close(unlink=False)  # records still unread when the writer goes
        with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as second:
            for i in range(10):  # 10 records in 8 slots: 2 lost before the reader looks
                second.write_json("Y", str(i).encode())
            got = []
            deadline = time.monotonic() + 2.0
            while len(got) < 10 and time.monotonic() < deadline:
                got.extend(reader.poll())
            assert [r.payload for r in got] == [b"a", b"b"] + [
                str(i).encode() for i in range(2, 10)
            ]
            assert reader.reattaches == 1 and reader.generation == 2
            assert reader.missed == 2
    finally:
        reader.close()


def test_a_restarted_writer_forgets_the_old_generations_books(shm_name: str) -> None:
    """Until the new writer publishes a symbol, the reader has no book of it: the old
    generation's live book is not current (the new writer may never serve it)."""
    first = ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    reader = ShmRingReader.attach(shm_name)
    try:
        first.write_book("BTCUSDT", 2, 10, 100, 5, [(1.0, 2.0)], [(3.0, 4.0)])
        first.close(unlink=False)  # a crash: nothing retired the book
        with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as second:
            second.write_book("ETHUSDT", 2, 20, 100, 5, [(1.0, 2.0)], [(3.0, 4.0)])
            deadline = time.monotonic() + 2.0
            seen: list[str] = []
            while reader.generation != 2 and time.monotonic() < deadline:
                seen.extend(r.symbol for r in reader.poll())
            assert seen == ["BTCUSDT", "ETHUSDT"]  # the old record is still delivered
            assert reader.latest_book("BTCUSDT") is None
            eth = reader.latest_book("ETHUSDT")
            assert eth is not None and eth.last_update_id == 20
    finally:
        reader.close()


def test_the_writers_heartbeat_tells_a_dead_writer_from_a_quiet_one(shm_name: str) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=SMALL) as writer:
        with ShmRingReader.attach(shm_name) as reader:
            silent = reader.writer_silent_s
            assert silent is not None and silent < 1.0  # it beat when it made the segment
            assert reader.writer_alive
            # What a writer killed (or hung) 4 s ago leaves: an old beat, not closed.
            writer._ring.beat(time.monotonic_ns() - 4_000_000_000)
            silent = reader.writer_silent_s
            assert silent is not None and silent >= 4.0
            assert not reader.writer_alive
            ShmOutput(writer).publish(HeartbeatUpdate(b"{}"))  # the service's beat
            assert reader.writer_alive
            writer.close(unlink=False)
            assert not reader.writer_alive  # closed: alive no more, however recent the beat


def test_a_reader_on_an_old_single_ring_moves_to_the_workers_ring(shm_name: str) -> None:
    """A single process killed with SIGKILL leaves ``name``; ``run --workers 2`` then
    publishes the index before its workers' rings exist, so ``attach_symbol`` finds the
    old ring first. It must move to the worker's ring once the index names one."""
    old = ShmRingWriter.create(shm_name, capacity_bytes=SMALL)
    old.write_book("BTCUSDT", 2, 100, 1, 1, [(1.0, 1.0)], [(2.0, 1.0)])
    old.close(unlink=False)  # the crash: the name stays
    worker_ring = f"{shm_name}-0"
    write_index(shm_name, {"BTCUSDT": worker_ring})
    try:
        reader = ShmRingReader.attach_symbol(shm_name, "BTCUSDT", from_oldest=True)
        assert reader.path == segment_path(shm_name)
        with reader, ShmRingWriter.create(worker_ring, capacity_bytes=SMALL) as worker:
            worker.write_book("BTCUSDT", 2, 900, 1, 1, [(1.5, 1.0)], [(2.0, 1.0)])
            deadline = time.monotonic() + 2.0
            ids: list[int] = []
            while 900 not in ids and time.monotonic() < deadline:
                ids.extend(r.last_update_id for r in reader.poll() if isinstance(r, BookRecord))
            assert ids == [100, 900]
            assert reader.path == segment_path(worker_ring)
            latest = reader.latest_book("BTCUSDT")
            assert latest is not None and latest.last_update_id == 900
    finally:
        remove_index(shm_name)
        segment_path(worker_ring).unlink(missing_ok=True)
