"""Shared-memory broadcast ring: the byte layout and the seqlock protocol.

Pure: everything here works on a buffer passed in (an ``mmap`` in production, a
``bytearray`` in the tests); opening, locking and mapping files is
``outputs/shm.py`` and ``client/shm.py``. ``docs/SHM.md`` documents the same
layout byte by byte for C, C++ and Rust consumers; keep the two in step.

Layout: a 128-byte header, then ``slot_count`` fixed-size slots. Record number
``s`` (1, 2, 3, ...) lives in slot ``(s - 1) % slot_count``. Every slot starts
with a sequence word: ``2*s - 1`` while the writer fills it, ``2*s`` once it is
complete. The header's ``head`` word holds the last completed record number.

Sequence words are 8-byte aligned and accessed through ``memoryview.cast("Q")``,
one native 8-byte load/store each. ``struct.pack_into("<Q")`` writes byte by
byte and was seen torn by readers in another process: never use it for them.
The Python side relies on x86-64 store/load ordering (TSO); the C reader in
``examples/shm_reader.c`` uses acquire loads and works on any CPU.
"""

from __future__ import annotations

import enum
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from typing import Final

import msgspec

from market_data.errors import MarketDataError

if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
    raise ImportError("the shared-memory ring layout is little-endian only")

# --- header -------------------------------------------------------------------

MAGIC: Final = b"MDSHRING"
LAYOUT_VERSION: Final = 1
HEADER_SIZE: Final = 128

# byte offsets in the header
OFF_MAGIC: Final = 0  # u8[8]  "MDSHRING"
OFF_VERSION: Final = 8  # u32    layout version
OFF_HEADER_SIZE: Final = 12  # u32    offset of slot 0
OFF_SLOT_SIZE: Final = 16  # u32    bytes per slot (multiple of 64)
OFF_SLOT_COUNT: Final = 20  # u32    number of slots
OFF_GENERATION: Final = 24  # u64    bumped each time a writer replaces the segment
OFF_WRITER_PID: Final = 32  # u64    pid of the writer (informational)
OFF_CREATED_NS: Final = 40  # u64    wall-clock creation time, ns since the epoch
OFF_CLOSED: Final = 48  # u64    1 once the writer closed cleanly
OFF_BEAT: Final = 56  # u64    writer's CLOCK_MONOTONIC ns at its last beat (~1 s; 0: none)
OFF_HEAD: Final = 64  # u64    last completed record number (own cache line)

_STATIC_HEADER = struct.Struct("<8sIIIIQQQ")  # magic .. created_ns
HEAD_WORD: Final = OFF_HEAD // 8
CLOSED_WORD: Final = OFF_CLOSED // 8
BEAT_WORD: Final = OFF_BEAT // 8
#: A writer that has not beaten for this long is dead or hung (it beats every second,
#: as the service's Redis heartbeat does): its last books are not current any more.
WRITER_SILENT_AFTER_S: Final = 3.0

# --- slots --------------------------------------------------------------------

SLOT_ALIGN: Final = 64
DEFAULT_SLOT_SIZE: Final = 2048
MIN_SLOT_COUNT: Final = 2
SYMBOL_SIZE: Final = 24

# byte offsets inside a slot
SLOT_OFF_SEQ: Final = 0  # u64    2*s-1 while writing, 2*s when complete
SLOT_OFF_LENGTH: Final = 8  # u32    body length in bytes
SLOT_OFF_KIND: Final = 12  # u16    RecordKind
SLOT_OFF_SYMBOL_LEN: Final = 14  # u8     bytes used in symbol
SLOT_OFF_SYMBOL: Final = 16  # u8[24] ASCII symbol, NUL padded
SLOT_OFF_LOCAL_TS: Final = 40  # i64    writer's CLOCK_MONOTONIC ns (0 for JSON)
SLOT_HEADER_SIZE: Final = 48  # the body starts here

_SLOT_HEADER = struct.Struct("<IHBx24sq")  # length .. local_ts, packed at offset 8
_LENGTH_MASK: Final = 0xFFFF_FFFF  # length is the low half of the slot's second word

# record bodies
BOOK_FIXED = struct.Struct("<QqHHB3x")  # last_update_id, event_time_ms, n_bids, n_asks, state
TRADE_BODY = struct.Struct("<QddqB7x")  # trade_id, price, qty, trade_time_ms, is_buyer_maker
LEVEL_SIZE: Final = 16  # float64 price, float64 qty
_LEVEL = struct.Struct("<dd")


class RecordKind(enum.IntEnum):
    """Kind tag of a slot (u16 at slot offset 12)."""

    BOOK = 1
    TRADE = 2
    JSON = 3


# --- errors -------------------------------------------------------------------


class ShmRingError(MarketDataError):
    """Base class of shared-memory ring errors."""


class ShmLayoutError(ShmRingError):
    """A segment is not a ring of this layout (wrong magic, version or sizes)."""


class ShmSegmentMissingError(ShmRingError):
    """No segment of that name exists (no writer started yet, or it closed)."""


class ShmSegmentBusyError(ShmRingError):
    """Another live writer owns the segment; it is never taken over."""


class ShmRecordTooLargeError(ShmRingError):
    """A record does not fit in one slot."""


# --- records ------------------------------------------------------------------
# msgspec Structs rather than frozen dataclasses: built ~9x faster (0.1 vs 0.9 μs),
# which matters on the read path.


class BookRecord(msgspec.Struct, frozen=True):
    """Top-N of one order book, as published by the writer."""

    seq: int
    symbol: str
    state: int  # core.state.BookState value
    last_update_id: int
    event_time_ms: int
    local_ts_ns: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]


class TradeRecord(msgspec.Struct, frozen=True):
    """One trade."""

    seq: int
    symbol: str
    trade_id: int
    price: float
    qty: float
    trade_time_ms: int
    is_buyer_maker: bool
    local_ts_ns: int


class JsonRecord(msgspec.Struct, frozen=True):
    """Opaque JSON bytes for simple consumers."""

    seq: int
    symbol: str
    payload: bytes


Record = BookRecord | TradeRecord | JsonRecord


# --- header -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RingHeader:
    """The static part of the header, fixed when the writer creates the segment."""

    slot_size: int
    slot_count: int
    generation: int
    writer_pid: int
    created_ns: int
    version: int = LAYOUT_VERSION
    header_size: int = HEADER_SIZE

    @property
    def total_size(self) -> int:
        return self.header_size + self.slot_size * self.slot_count

    @property
    def max_body_size(self) -> int:
        return self.slot_size - SLOT_HEADER_SIZE


def slot_count_for(capacity_bytes: int, slot_size: int = DEFAULT_SLOT_SIZE) -> int:
    """How many slots of ``slot_size`` fit in ``capacity_bytes`` (header included)."""
    check_slot_size(slot_size)
    count = (capacity_bytes - HEADER_SIZE) // slot_size
    if count < MIN_SLOT_COUNT:
        raise ShmLayoutError(
            f"capacity {capacity_bytes} B holds {max(count, 0)} slots of {slot_size} B; "
            f"at least {MIN_SLOT_COUNT} are needed"
        )
    return count


def check_slot_size(slot_size: int) -> None:
    if slot_size < 2 * SLOT_ALIGN or slot_size % SLOT_ALIGN:
        raise ShmLayoutError(
            f"slot size {slot_size} must be a multiple of {SLOT_ALIGN} and >= {2 * SLOT_ALIGN}"
        )


def encode_header(buf: memoryview | bytearray, header: RingHeader) -> None:
    """Write a fresh header (head = 0, not closed) into ``buf``."""
    _STATIC_HEADER.pack_into(
        buf,
        0,
        MAGIC,
        header.version,
        header.header_size,
        header.slot_size,
        header.slot_count,
        header.generation,
        header.writer_pid,
        header.created_ns,
    )
    buf[OFF_CLOSED:HEADER_SIZE] = bytes(HEADER_SIZE - OFF_CLOSED)


def decode_header(buf: memoryview | bytes | bytearray) -> RingHeader:
    """Read and validate the static header; raise ShmLayoutError if it is not ours."""
    if len(buf) < HEADER_SIZE:
        raise ShmLayoutError(f"segment is {len(buf)} B, smaller than the {HEADER_SIZE} B header")
    magic, version, header_size, slot_size, slot_count, generation, pid, created = (
        _STATIC_HEADER.unpack_from(buf, 0)
    )
    if magic != MAGIC:
        raise ShmLayoutError(f"bad magic {magic!r}, expected {MAGIC!r}")
    if version != LAYOUT_VERSION:
        raise ShmLayoutError(f"layout version {version}, this code reads {LAYOUT_VERSION}")
    header = RingHeader(slot_size, slot_count, generation, pid, created, version, header_size)
    if header_size != HEADER_SIZE or slot_count < MIN_SLOT_COUNT:
        raise ShmLayoutError(f"inconsistent header {header}")
    check_slot_size(slot_size)
    if len(buf) < header.total_size:
        raise ShmLayoutError(f"segment is {len(buf)} B, header says {header.total_size} B")
    return header


def encode_symbol(symbol: str) -> bytes:
    raw = symbol.encode("ascii")
    if len(raw) > SYMBOL_SIZE:
        raise ShmRecordTooLargeError(f"symbol {symbol!r} is longer than {SYMBOL_SIZE} bytes")
    return raw


def book_body_size(n_bids: int, n_asks: int) -> int:
    return BOOK_FIXED.size + LEVEL_SIZE * (n_bids + n_asks)


def slot_size_for_depth(depth: int) -> int:
    """The smallest valid slot that holds a book of ``depth`` levels per side.

    Never below :data:`DEFAULT_SLOT_SIZE`, so 1 KB JSON records always fit.
    """
    needed = SLOT_HEADER_SIZE + book_body_size(depth, depth)
    aligned = -(-needed // SLOT_ALIGN) * SLOT_ALIGN
    return max(DEFAULT_SLOT_SIZE, aligned)


# --- writer -------------------------------------------------------------------
# Each record is filled by a single precompiled ``Struct.pack_into`` covering the
# slot from its length field to the end of the body: one C call per record. A
# book's levels come as (price, qty) pairs; flattening 40 of them into 80
# arguments with ``chain`` cost more than packing them (~1.6 of 3.4 μs for a
# 20 + 20 book), so each book shape gets a small generated function that
# unpacks the pairs into locals and passes them straight to ``pack_into``.

_SLOT_FIELDS: Final = "IHBx24sq"  # length .. local_ts, from slot offset 8
_KIND_BOOK: Final = int(RecordKind.BOOK)
_KIND_TRADE: Final = int(RecordKind.TRADE)
_KIND_JSON: Final = int(RecordKind.JSON)


def _record_struct(fields: str) -> struct.Struct:
    """A codec for ``fields`` in native order and sizes where that is the same layout.

    Native ("@") packing of doubles skips the per-value byte-order handling of
    "<"; on the little-endian platforms this module accepts, a format with no
    alignment padding packs to identical bytes, which equal sizes confirm.
    """
    native = "@" + fields
    return struct.Struct(
        native if struct.calcsize(native) == struct.calcsize("<" + fields) else "<" + fields
    )


_TRADE_RECORD = _record_struct(_SLOT_FIELDS + "QddqB7x")
_JSON_HEADER = _record_struct(_SLOT_FIELDS)

#: Book shapes given a generated packer; others (a partial book whose sides keep
#: changing length) are packed through ``chain`` instead, equally exact.
MAX_BOOK_PACKERS: Final = 64
#: Larger books are packed through ``chain``: a generated function for thousands
#: of levels takes longer to compile than it saves.
MAX_PACKED_LEVELS: Final = 256
_MAX_SYMBOLS: Final = 4096  # encoded symbols a writer keeps

Level = tuple[float, float]
BookPacker = Callable[
    [memoryview, int, int, bytes, int, int, int, int, Sequence[Level], Sequence[Level]], None
]
_BOOK_PACKERS: dict[tuple[int, int], BookPacker] = {}  # by (n_bids, n_asks), shared by writers
_BOOK_RECORDS: dict[int, struct.Struct] = {}  # whole book records by level count


def _book_record(levels: int) -> struct.Struct:
    codec = _BOOK_RECORDS.get(levels)
    if codec is None:
        codec = _BOOK_RECORDS[levels] = _record_struct(f"{_SLOT_FIELDS}QqHHB3x{2 * levels}d")
    return codec


def book_packer(n_bids: int, n_asks: int) -> BookPacker:
    """The function that fills a slot with a book of exactly this shape.

    Called as ``pack(buf, offset_of_length_field, sym_len, sym, local_ts_ns,
    last_update_id, event_time_ms, state, bids, asks)``.
    """
    key = (n_bids, n_asks)
    packer = _BOOK_PACKERS.get(key)
    if packer is None:
        if n_bids + n_asks > MAX_PACKED_LEVELS or len(_BOOK_PACKERS) >= MAX_BOOK_PACKERS:
            return partial(_pack_book_chained, n_bids, n_asks)
        packer = _BOOK_PACKERS[key] = _generate_book_packer(n_bids, n_asks)
    return packer


def _pack_book_chained(
    n_bids: int,
    n_asks: int,
    buf: memoryview,
    offset: int,
    sym_len: int,
    sym: bytes,
    local_ts_ns: int,
    last_update_id: int,
    event_time_ms: int,
    state: int,
    bids: Sequence[Level],
    asks: Sequence[Level],
) -> None:
    # chain() takes levels of any length: a level of three values beside one of
    # one would shift every value after it into the wrong field, without an error.
    if any(len(level) != 2 for level in chain(bids, asks)):
        raise ValueError("a level is not a (price, qty) pair")
    _book_record(n_bids + n_asks).pack_into(
        buf,
        offset,
        book_body_size(n_bids, n_asks),
        _KIND_BOOK,
        sym_len,
        sym,
        local_ts_ns,
        last_update_id,
        event_time_ms,
        n_bids,
        n_asks,
        state,
        *chain.from_iterable(bids),
        *chain.from_iterable(asks),
    )


def _generate_book_packer(n_bids: int, n_asks: int) -> BookPacker:
    """``_pack_book_chained`` for one shape, with the pairs unpacked into locals.

    Unpacking each level as a pair is also the check that it is one: a level
    of three values beside one of one would otherwise shift every value after
    it (star-expanding each level into the call was 0.1 μs faster for a 20 +
    20 book, and wrote such books without an error). The source is built from
    integers only: no caller's data reaches ``exec``.
    """
    bid_names = [(f"b{i}", f"B{i}") for i in range(n_bids)]
    ask_names = [(f"a{i}", f"A{i}") for i in range(n_asks)]
    lines = ["def packer(buf, offset, sym_len, sym, ts, update_id, event_ms, state, bids, asks):"]
    for side, names in (("bids", bid_names), ("asks", ask_names)):
        if names:
            lines.append(f"    {', '.join(f'({p}, {q})' for p, q in names)}, = {side}")
    fixed = [
        str(book_body_size(n_bids, n_asks)),
        str(_KIND_BOOK),
        "sym_len, sym, ts, update_id, event_ms",
        str(n_bids),
        str(n_asks),
        "state",
    ]
    flat = [name for pair in bid_names + ask_names for name in pair]
    lines.append(f"    pack(buf, offset, {', '.join(fixed + flat)})")
    namespace: dict[str, object] = {"pack": _book_record(n_bids + n_asks).pack_into}
    exec("\n".join(lines), namespace)  # noqa: S102 - integers only, see above
    packer: BookPacker = namespace["packer"]  # type: ignore[assignment]
    return packer


class RingWriter:
    """Publishes records into a ring buffer, seqlock style.

    For each record: mark the slot odd (being written), fill it, mark it even
    (complete), then advance ``head``. A reader that sees the same even word
    before and after copying a slot knows its copy is intact.
    """

    __slots__ = (
        "_buf",
        "_words",
        "_slot_size",
        "_slot_count",
        "_max_body",
        "_symbols",
        "_packers",
        "head",
    )

    def __init__(self, buf: memoryview, header: RingHeader) -> None:
        self._buf = buf
        self._words = buf.cast("Q")
        self._slot_size = header.slot_size
        self._slot_count = header.slot_count
        self._max_body = header.max_body_size
        self._symbols: dict[str, bytes] = {}
        # Shapes known to fit a slot, keyed n_bids << 32 | n_asks (an int hashes faster
        # than a tuple; no book has 2**32 levels a side).
        self._packers: dict[int, BookPacker] = {}
        self.head = int(self._words[HEAD_WORD])

    def release(self) -> None:
        """Drop the views on the buffer so an mmap under it can be closed."""
        self._words.release()
        self._buf.release()

    def mark_closed(self) -> None:
        self._words[CLOSED_WORD] = 1

    def beat(self, monotonic_ns: int) -> None:
        """Say the writer is alive: a crash or a hung writer leaves this word old."""
        self._words[BEAT_WORD] = monotonic_ns

    def _claim(self) -> tuple[int, int]:
        """Number the next record and mark its slot odd; return (seq, slot offset)."""
        seq = self.head + 1
        offset = HEADER_SIZE + ((seq - 1) % self._slot_count) * self._slot_size
        self._words[offset >> 3] = 2 * seq - 1
        return seq, offset

    def _complete(self, seq: int, offset: int) -> int:
        """Mark the slot even (complete), then publish it as the head."""
        words = self._words
        words[offset >> 3] = 2 * seq
        words[HEAD_WORD] = seq
        self.head = seq
        return seq

    def _symbol(self, symbol: str) -> bytes:
        sym = self._symbols.get(symbol)
        if sym is None:
            sym = encode_symbol(symbol)
            if len(self._symbols) >= _MAX_SYMBOLS:
                self._symbols.clear()
            self._symbols[symbol] = sym
        return sym

    def _check_size(self, body_len: int) -> None:
        if body_len > self._max_body:
            raise ShmRecordTooLargeError(
                f"record body of {body_len} B exceeds the {self._max_body} B a slot holds"
            )

    def _book_packer(self, n_bids: int, n_asks: int) -> BookPacker:
        self._check_size(book_body_size(n_bids, n_asks))
        packer = book_packer(n_bids, n_asks)
        if len(self._packers) < MAX_BOOK_PACKERS:
            self._packers[n_bids << 32 | n_asks] = packer
        return packer

    def write_book(
        self,
        symbol: str,
        state: int,
        last_update_id: int,
        event_time_ms: int,
        local_ts_ns: int,
        bids: Sequence[tuple[float, float]],
        asks: Sequence[tuple[float, float]],
    ) -> int:
        pack = self._packers.get(len(bids) << 32 | len(asks))
        if pack is None:
            pack = self._book_packer(len(bids), len(asks))
        sym = self._symbols.get(symbol) or self._symbol(symbol)
        # _claim() and _complete() inlined: the two calls were about a tenth of this write.
        words = self._words
        seq = self.head + 1
        offset = HEADER_SIZE + ((seq - 1) % self._slot_count) * self._slot_size
        word = offset >> 3
        words[word] = 2 * seq - 1
        try:
            pack(
                self._buf,
                offset + SLOT_OFF_LENGTH,
                len(sym),
                sym,
                local_ts_ns,
                last_update_id,
                event_time_ms,
                state,
                bids,
                asks,
            )
        except (ValueError, TypeError, OverflowError, struct.error) as exc:
            # The slot stays odd: a reader counts whatever it held as lost, never reads it.
            raise ShmRingError(
                f"book of {symbol!r} not written: levels must be (price, qty) pairs "
                f"of numbers ({exc})"
            ) from exc
        words[word] = 2 * seq
        words[HEAD_WORD] = seq
        self.head = seq
        return seq

    def write_trade(
        self,
        symbol: str,
        trade_id: int,
        price: float,
        qty: float,
        trade_time_ms: int,
        is_buyer_maker: bool,
        local_ts_ns: int,
    ) -> int:
        sym = self._symbols.get(symbol) or self._symbol(symbol)
        seq, offset = self._claim()
        _TRADE_RECORD.pack_into(
            self._buf,
            offset + SLOT_OFF_LENGTH,
            TRADE_BODY.size,
            _KIND_TRADE,
            len(sym),
            sym,
            local_ts_ns,
            trade_id,
            price,
            qty,
            trade_time_ms,
            is_buyer_maker,
        )
        return self._complete(seq, offset)

    def write_json(self, symbol: str, payload: bytes, local_ts_ns: int = 0) -> int:
        size = len(payload)
        if size > self._max_body:
            self._check_size(size)
        sym = self._symbols.get(symbol) or self._symbol(symbol)
        seq, offset = self._claim()
        buf = self._buf
        _JSON_HEADER.pack_into(
            buf, offset + SLOT_OFF_LENGTH, size, _KIND_JSON, len(sym), sym, local_ts_ns
        )
        body = offset + SLOT_HEADER_SIZE
        buf[body : body + size] = payload
        return self._complete(seq, offset)


# --- reader -------------------------------------------------------------------


def decode_slot(seq: int, raw: bytes) -> Record:
    """Decode a slot copied out of the ring (``raw`` starts at the length field)."""
    length, kind, sym_len, sym, local_ts = _SLOT_HEADER.unpack_from(raw, 0)
    symbol = sym[:sym_len].decode("ascii")
    body = SLOT_HEADER_SIZE - SLOT_OFF_LENGTH
    if kind == RecordKind.BOOK:
        update_id, event_ms, n_bids, n_asks, state = BOOK_FIXED.unpack_from(raw, body)
        start = body + BOOK_FIXED.size
        split = start + LEVEL_SIZE * n_bids
        end = split + LEVEL_SIZE * n_asks
        view = memoryview(raw)
        bids = tuple(_LEVEL.iter_unpack(view[start:split]))
        asks = tuple(_LEVEL.iter_unpack(view[split:end]))
        return BookRecord(seq, symbol, state, update_id, event_ms, local_ts, bids, asks)
    if kind == RecordKind.TRADE:
        trade_id, price, qty, trade_ms, maker = TRADE_BODY.unpack_from(raw, body)
        return TradeRecord(seq, symbol, trade_id, price, qty, trade_ms, bool(maker), local_ts)
    if kind == RecordKind.JSON:
        return JsonRecord(seq, symbol, raw[body : body + length])
    raise ShmLayoutError(f"record {seq} has unknown kind {kind}")


class RingCursor:
    """One reader's position in a ring, with exact accounting of lost records.

    ``next_seq`` is the next record number wanted. A record is lost when the
    writer overwrote its slot before the reader copied it out (a lap); each one
    lost adds 1 to ``missed``, so ``records returned + missed`` always equals
    the number of records published since the cursor started.
    """

    __slots__ = ("_buf", "_words", "_slot_size", "_slot_count", "_max_len", "next_seq", "missed")

    def __init__(
        self,
        buf: memoryview,
        header: RingHeader,
        *,
        from_oldest: bool = False,
        from_first: bool = False,
    ) -> None:
        """Start after the newest record, at the oldest still held, or at record 1.

        ``from_first`` is for a reader that follows a writer restart: records
        of the new generation already overwritten count as missed.
        """
        self._buf = buf
        self._words = buf.cast("Q")
        self._slot_size = header.slot_size
        self._slot_count = header.slot_count
        self._max_len = header.max_body_size
        head = int(self._words[HEAD_WORD])
        if from_first:
            self.next_seq = 1
        elif from_oldest:
            self.next_seq = max(1, head - self._slot_count + 1)
        else:
            self.next_seq = head + 1
        self.missed = 0

    def release(self) -> None:
        self._words.release()
        self._buf.release()

    @property
    def head(self) -> int:
        """Last record number the writer completed."""
        return int(self._words[HEAD_WORD])

    @property
    def writer_closed(self) -> bool:
        return bool(self._words[CLOSED_WORD])

    @property
    def writer_beat_ns(self) -> int:
        """The writer's CLOCK_MONOTONIC ns at its last beat (0: a writer that never beats)."""
        return int(self._words[BEAT_WORD])

    def poll_raw(self, limit: int | None = None) -> list[tuple[int, bytes]]:
        """Copy out up to ``limit`` (default: one ring's worth) new intact records.

        Each comes as (seq, slot bytes from offset 8), ready for ``decode_slot``.
        """
        words = self._words
        seq = self.next_seq
        head = words[HEAD_WORD]
        if seq > head:  # the common case of a busy-polling reader: nothing new
            return []
        if limit is None:
            limit = self._slot_count
        buf = self._buf
        count = self._slot_count
        out: list[tuple[int, bytes]] = []
        while seq <= head and len(out) < limit:
            oldest = head - count + 1
            if seq < oldest:  # lapped: those records are gone
                self.missed += oldest - seq
                seq = oldest
            offset = HEADER_SIZE + ((seq - 1) % count) * self._slot_size
            word = offset >> 3
            before = words[word]
            if before != 2 * seq:
                if before > 2 * seq:  # overwritten by a later lap: record seq is lost
                    self.missed += 1
                    seq += 1
                    head = words[HEAD_WORD]
                    continue
                break  # pragma: no cover - head is only advanced after the slot completes
            length = words[word + 1] & _LENGTH_MASK  # the u32 at offset 8: no struct call
            if length > self._max_len:  # garbage from a concurrent overwrite
                length = self._max_len
            raw = bytes(buf[offset + SLOT_OFF_LENGTH : offset + SLOT_HEADER_SIZE + length])
            if words[word] != before:  # overwritten while copying: discard the copy
                self.missed += 1
                seq += 1
                head = words[HEAD_WORD]
                continue
            out.append((seq, raw))
            seq += 1
        self.next_seq = seq
        return out

    def poll(self, limit: int | None = None) -> list[Record]:
        """New intact records, decoded, oldest first."""
        return [decode_slot(seq, raw) for seq, raw in self.poll_raw(limit)]
