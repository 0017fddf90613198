"""The ring layout and seqlock protocol, in-process on a bytearray (wire/ring.py)."""

from __future__ import annotations

import struct
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.core.state import BookState
from market_data.wire import ring
from market_data.wire.ring import (
    HEAD_WORD,
    HEADER_SIZE,
    MAGIC,
    SLOT_HEADER_SIZE,
    BookRecord,
    JsonRecord,
    Level,
    RingCursor,
    RingHeader,
    RingWriter,
    ShmLayoutError,
    ShmRecordTooLargeError,
    ShmRingError,
    TradeRecord,
    decode_header,
    encode_header,
    slot_count_for,
    slot_size_for_depth,
)


def make_ring(slot_count: int = 8, slot_size: int = 2048) -> tuple[bytearray, RingHeader]:
    header = RingHeader(slot_size, slot_count, generation=3, writer_pid=42, created_ns=7)
    buf = bytearray(header.total_size)
    encode_header(buf, header)
    return buf, header


def test_header_round_trips_and_sits_at_the_documented_offsets() -> None:
    buf, header = make_ring(slot_count=5, slot_size=1024)
    assert decode_header(buf) == header
    assert bytes(buf[0:8]) == MAGIC
    assert struct.unpack_from("<IIIIQQ", buf, 8) == (1, HEADER_SIZE, 1024, 5, 3, 42)
    assert header.total_size == HEADER_SIZE + 5 * 1024


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(0, b"NOTARING", "magic"), (8, struct.pack("<I", 99), "version")],
)
def test_foreign_or_newer_segments_are_rejected(offset: int, value: bytes, message: str) -> None:
    buf, _ = make_ring()
    buf[offset : offset + len(value)] = value
    with pytest.raises(ShmLayoutError, match=message):
        decode_header(buf)


def test_truncated_segment_is_rejected() -> None:
    buf, _ = make_ring()
    with pytest.raises(ShmLayoutError):
        decode_header(buf[:-1])


def test_slot_count_follows_capacity() -> None:
    assert slot_count_for(HEADER_SIZE + 10 * 2048) == 10
    assert slot_count_for(64 << 20) == ((64 << 20) - HEADER_SIZE) // 2048
    with pytest.raises(ShmLayoutError):
        slot_count_for(HEADER_SIZE + 2048)
    with pytest.raises(ShmLayoutError):
        slot_count_for(1 << 20, slot_size=1000)  # not a multiple of 64


def test_records_round_trip_through_the_ring() -> None:
    buf, header = make_ring()
    writer = RingWriter(memoryview(buf), header)
    cursor = RingCursor(memoryview(buf), header)
    bids = [(100.5, 1.25), (100.0, 3.0)]
    asks = [(101.0, 0.5)]
    writer.write_book("BTCUSDT", BookState.LIVE, 123456789012, 1700000000123, 987654321, bids, asks)
    writer.write_trade("ETHUSDT", 2**40, 3000.25, 0.001, 1700000000456, True, 55)
    writer.write_json("SOLUSDT", b'{"x":1}')
    assert cursor.poll() == [
        BookRecord(
            1, "BTCUSDT", 2, 123456789012, 1700000000123, 987654321, tuple(bids), tuple(asks)
        ),
        TradeRecord(2, "ETHUSDT", 2**40, 3000.25, 0.001, 1700000000456, True, 55),
        JsonRecord(3, "SOLUSDT", b'{"x":1}'),
    ]
    assert cursor.poll() == []
    assert cursor.missed == 0


def test_slot_words_follow_the_seqlock_protocol() -> None:
    buf, header = make_ring(slot_count=2)
    writer = RingWriter(memoryview(buf), header)
    words = memoryview(buf).cast("Q")
    for seq in range(1, 4):
        writer.write_trade("X", seq, 1.0, 1.0, 0, False, 0)
        slot_word = (HEADER_SIZE + ((seq - 1) % 2) * header.slot_size) // 8
        assert words[slot_word] == 2 * seq  # even: complete
        assert words[HEAD_WORD] == seq
    words.release()


def test_a_1kb_book_fits_and_an_oversized_record_is_refused() -> None:
    buf, header = make_ring()
    writer = RingWriter(memoryview(buf), header)
    levels = [(float(i), float(i)) for i in range(30)]
    writer.write_book("BTCUSDT", 2, 1, 1, 1, levels, levels)  # 1032 B record
    writer.write_json("BTCUSDT", b"x" * header.max_body_size)
    with pytest.raises(ShmRecordTooLargeError):
        writer.write_json("BTCUSDT", b"x" * (header.max_body_size + 1))
    with pytest.raises(ShmRecordTooLargeError):
        writer.write_trade("A" * 25, 1, 1.0, 1.0, 1, False, 1)
    assert writer.head == 2


def test_a_lapped_cursor_counts_exactly_what_was_overwritten() -> None:
    buf, header = make_ring(slot_count=4)
    writer = RingWriter(memoryview(buf), header)
    cursor = RingCursor(memoryview(buf), header)
    for i in range(10):
        writer.write_json("X", str(i).encode())
    records = cursor.poll()
    assert [r.seq for r in records] == [7, 8, 9, 10]
    assert cursor.missed == 6


def test_a_slot_overwritten_during_the_copy_is_discarded_and_counted() -> None:
    buf, header = make_ring(slot_count=4)
    writer = RingWriter(memoryview(buf), header)
    cursor = RingCursor(memoryview(buf), header)
    writer.write_json("X", b"1")
    writer.write_json("X", b"2")
    # the writer has started record 5 in slot 0 (odd word) but not advanced head
    words = memoryview(buf).cast("Q")
    words[HEADER_SIZE // 8] = 2 * 5 - 1
    words.release()
    records = cursor.poll()
    assert [r.seq for r in records] == [2]
    assert cursor.missed == 1


def test_cursor_start_positions() -> None:
    buf, header = make_ring(slot_count=4)
    writer = RingWriter(memoryview(buf), header)
    for i in range(6):
        writer.write_json("X", bytes([i]))
    assert RingCursor(memoryview(buf), header).next_seq == 7
    assert RingCursor(memoryview(buf), header, from_oldest=True).next_seq == 3
    first = RingCursor(memoryview(buf), header, from_first=True)
    assert [r.seq for r in first.poll()] == [3, 4, 5, 6]
    assert first.missed == 2


@settings(max_examples=60, deadline=None)
@given(
    slot_count=st.integers(min_value=2, max_value=6),
    steps=st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=40),
)
def test_returned_plus_missed_always_equals_written(slot_count: int, steps: list[int]) -> None:
    """Any interleaving of write bursts and polls: nothing returned twice, nothing unaccounted."""
    buf, header = make_ring(slot_count=slot_count, slot_size=128)
    writer = RingWriter(memoryview(buf), header)
    cursor = RingCursor(memoryview(buf), header)
    seen: list[int] = []
    for burst in steps:
        for _ in range(burst):
            writer.write_json("X", (writer.head + 1).to_bytes(8, "little") * 4)
        for record in cursor.poll():
            assert isinstance(record, JsonRecord)
            assert record.payload == record.seq.to_bytes(8, "little") * 4
            seen.append(record.seq)
    assert seen == sorted(set(seen))
    assert len(seen) + cursor.missed == writer.head
    assert len(buf) == HEADER_SIZE + slot_count * 128 and SLOT_HEADER_SIZE == 48


# --- byte layout of the writer, against an encoder written from docs/SHM.md ------------


def reference_slot(
    seq: int, kind: int, symbol: str, local_ts: int, body: bytes, slot_size: int
) -> bytes:
    """A slot as docs/SHM.md describes it, built field by field with "<" codecs."""
    sym = symbol.encode("ascii")
    head = struct.pack("<QIHB", 2 * seq, len(body), kind, len(sym)) + b"\0"
    head += sym.ljust(24, b"\0") + struct.pack("<q", local_ts)
    return (head + body).ljust(slot_size, b"\0")


def reference_book_body(
    update_id: int, event_ms: int, state: int, bids: list[Level], asks: list[Level]
) -> bytes:
    body = struct.pack("<QqHHB3x", update_id, event_ms, len(bids), len(asks), state)
    return body + b"".join(struct.pack("<dd", p, q) for p, q in [*bids, *asks])


def slot_bytes(buf: bytearray, header: RingHeader, seq: int) -> bytes:
    offset = HEADER_SIZE + ((seq - 1) % header.slot_count) * header.slot_size
    return bytes(buf[offset : offset + header.slot_size])


levels = st.lists(
    st.tuples(st.floats(allow_nan=False), st.floats(allow_nan=False)), min_size=0, max_size=40
)


@settings(max_examples=80, deadline=None)
@given(
    bids=levels,
    asks=levels,
    update_id=st.integers(0, 2**64 - 1),
    ts=st.integers(-(2**63), 2**63 - 1),
)
def test_book_records_are_byte_exact(
    bids: list[Level], asks: list[Level], update_id: int, ts: int
) -> None:
    buf, header = make_ring(slot_count=2)
    writer = RingWriter(memoryview(buf), header)
    seq = writer.write_book("ETHUSDT", 3, update_id, -5, ts, bids, asks)
    body = reference_book_body(update_id, -5, 3, bids, asks)
    assert slot_bytes(buf, header, seq) == reference_slot(seq, 1, "ETHUSDT", ts, body, 2048)


def test_trade_and_json_records_are_byte_exact() -> None:
    buf, header = make_ring(slot_count=2)
    writer = RingWriter(memoryview(buf), header)
    writer.write_trade("BTCUSDT", 2**63, 65000.5, 0.25, 1700000000456, True, -7)
    body = struct.pack("<QddqB7x", 2**63, 65000.5, 0.25, 1700000000456, 1)
    assert slot_bytes(buf, header, 1) == reference_slot(1, 2, "BTCUSDT", -7, body, 2048)
    writer.write_json("X", b'{"a":1}', 9)
    assert slot_bytes(buf, header, 2) == reference_slot(2, 3, "X", 9, b'{"a":1}', 2048)


def test_large_and_uncached_book_shapes_take_the_chained_path_byte_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past MAX_PACKED_LEVELS, or once the shape cache is full, books are still exact."""
    buf, header = make_ring(slot_count=2, slot_size=slot_size_for_depth(200))
    big = [(float(i), float(-i)) for i in range(200)]
    assert len(big) * 2 > ring.MAX_PACKED_LEVELS
    writer = RingWriter(memoryview(buf), header)
    writer.write_book("X", 2, 1, 2, 3, big, big[:150])
    body = reference_book_body(1, 2, 2, big, big[:150])
    assert slot_bytes(buf, header, 1) == reference_slot(1, 1, "X", 3, body, header.slot_size)
    monkeypatch.setattr(ring, "MAX_BOOK_PACKERS", 0)
    monkeypatch.setattr(ring, "_BOOK_PACKERS", {})
    writer = RingWriter(memoryview(buf), header)
    writer.write_book("X", 2, 1, 2, 3, big[:3], big[:2])
    body = reference_book_body(1, 2, 2, big[:3], big[:2])
    assert slot_bytes(buf, header, 2) == reference_slot(2, 1, "X", 3, body, header.slot_size)
    assert ring._BOOK_PACKERS == {}


def test_bad_records_are_refused_every_time_and_publish_nothing() -> None:
    buf, header = make_ring()
    writer = RingWriter(memoryview(buf), header)
    for _ in range(2):  # a refused symbol or shape is not cached as good
        with pytest.raises(ShmRecordTooLargeError, match="longer than 24"):
            writer.write_book("A" * 25, 2, 1, 1, 1, [], [])
        with pytest.raises(ShmRecordTooLargeError, match="exceeds"):
            writer.write_book("X", 2, 1, 1, 1, [(1.0, 1.0)] * 100, [(1.0, 1.0)] * 100)
        with pytest.raises(ShmRingError, match=r"\(price, qty\) pairs"):
            writer.write_book("X", 2, 1, 1, 1, [(1.0, 1.0, 1.0)], [])  # type: ignore[list-item]
        with pytest.raises(ShmRingError, match=r"\(price, qty\) pairs"):
            writer.write_book("X", 2, 1, 1, 1, [("1", 1.0)], [])  # type: ignore[list-item]
        with pytest.raises(ShmRingError, match=r"\(price, qty\) pairs"):
            writer.write_book("X", 2, 1, 1, 1, [(1.0, 1.0)], [(10**400, 1.0)])  # type: ignore[list-item]
    assert writer.head == 0
    assert RingCursor(memoryview(buf), header, from_first=True).poll() == []
    writer.write_book("X", 2, 1, 1, 1, [(1.0, 2.0)], [])
    assert writer.head == 1


@pytest.mark.parametrize(
    ("bids", "asks"),
    [
        ([(1.0, 2.0, 3.0), (4.0,)], []),  # the right count of values, wrong levels
        ([(1.0, 2.0, 3.0)], [(4.0,)]),  # a value would cross from one side to the other
        ([(), (1.0, 2.0, 3.0, 4.0)], []),
    ],
)
@pytest.mark.parametrize("path", ["generated", "chained"])
def test_levels_that_are_not_pairs_are_refused_even_when_the_values_add_up(
    bids: list[tuple[float, ...]], asks: list[tuple[float, ...]], path: str
) -> None:
    """Each level must be a pair, on the generated packers and on the ``chain`` fallback
    (shapes beyond ``MAX_BOOK_PACKERS`` or ``MAX_PACKED_LEVELS``)."""
    buf, header = make_ring()
    writer = RingWriter(memoryview(buf), header)
    if path == "chained":
        with patch.object(ring, "MAX_PACKED_LEVELS", 0), patch.dict(ring._BOOK_PACKERS, clear=True):
            with pytest.raises(ShmRingError, match=r"\(price, qty\) pairs"):
                writer.write_book("X", 2, 1, 1, 1, bids, asks)  # type: ignore[arg-type]
    else:
        with pytest.raises(ShmRingError, match=r"\(price, qty\) pairs"):
            writer.write_book("X", 2, 1, 1, 1, bids, asks)  # type: ignore[arg-type]
    assert writer.head == 0
    assert RingCursor(memoryview(buf), header, from_first=True).poll() == []
