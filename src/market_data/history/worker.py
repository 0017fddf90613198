"""The history process: the recording and the row stores, away from the service's GIL.

Writing the recording (a few μs of Python a frame, plus gzip) and building rows
(Parquet, QuestDB) would cost the service's event loop its latency if they ran
in its process, even on a thread: they hold its GIL. The service's history
thread (``pipeline.py``) only takes items off its queue and sends them here in
small batches, each one msgpack message (plain tuples of numbers, bytes, str
and level lists), through a byte ring in shared memory (``channel.py``;
:class:`HistoryProcess`); this child
(:func:`child_main`) reads each batch in one C call into typed items
(:func:`decode_items`; a book event's levels stay bytes until the row builder
reads them as arrays), writes the recording, feeds the stores and reports back.

Protocol (msgpack arrays, parent -> child, through the ring): ``(ITEMS, [item,
...])``, ``(SUSPEND, reason)``, ``(RESUME, now_ns, reason, attempt, symbols)``,
``None`` (close). A socket pair carries the configuration first, and the
child's answers: status dicts (every ``STATUS_S``, at once on a
suspension and for every resume attempt): lines recorded, rows written, write
errors, items dropped, the QuestDB output's counts, and ``suspension``, a
number that grows each time the child suspends itself (a recording write
failed). While suspended the child drops (and counts) every batch until a
resume writes a ``recording_gap`` event into each symbol's recording.
"""

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import msgspec

from market_data.history.channel import ByteRing
from market_data.history.recorder import OTHER, RecordingWriter, Retention
from market_data.history.stores import RowFeed
from market_data.ops.affinity import apply_cpu_affinity
from market_data.ops.config import Config

log = logging.getLogger(__name__)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode

#: Item kinds. For the recording: (FRAME, recv_ns, raw, line), (SNAPSHOT, recv_ns,
#: symbol, body), (CONNECTION, recv_ns, fields). For the rows: (APPLIED, local_ns,
#: symbol, E, u, bids, asks), (BLOCK, local_ns, symbol, E, u, bids, asks), (TOP,
#: local_ns, symbol, E, bids, asks), (TRADE, local_ns, symbol, id, price, quantity,
#: T, buyer_maker), (BOOK, recv_ns, symbol, state label, event_ns, last_update_id,
#: best bid, best ask), (MARKET, recv_ns, symbol, payload).
FRAME, SNAPSHOT, CONNECTION, BOOK, MARKET, APPLIED, BLOCK, TOP, TRADE = range(9)
ITEMS, SUSPEND, RESUME = range(3)
#: Every item is encoded where it is made (``pipeline.py``'s hooks): nothing waits in the
#: queue as objects the garbage collector would scan, and the thread only joins bytes.
encode_item = _encode
_ITEMS_HEAD = b"\x92" + _encode(ITEMS) + b"\xdd"  # [ITEMS, <array32 of items>]

#: The history process's niceness with ``history_priority: background``: it is
#: background work with a bounded queue in front of it, so the scheduler serves the
#: service (and Redis) first when cores are short.
NICE = 10
#: The history process's garbage collector thresholds (see :func:`child_main`).
GC_THRESHOLDS = (100_000, 50, 100)
#: Seconds between two hand-overs of the built rows to the stores.
ROWS_S = 0.25
#: Seconds between the child's status reports.
STATUS_S = 0.25
_JOIN_S = 30.0
#: Bytes of the ring the service's messages to the history process go through
#: (``channel.py``): seconds of history at 10,000 frames/s.
RING_BYTES = 16 << 20
#: How long the sender waits before it looks again at a full ring.
_FULL_WAIT_S = 0.002
#: The history process looks at an empty ring again after this, doubling up to _IDLE_S.
_POLL_S = 0.002
_IDLE_S = 0.05


def encode_items(items: list[bytes]) -> bytes:
    """The msgpack of ``(ITEMS, items)``, from items already encoded (:func:`encode_item`)."""
    return _ITEMS_HEAD + len(items).to_bytes(4, "big") + b"".join(items)


# The items as the history process reads them: the same msgpack arrays, decoded into
# these structs (their first element, the kind, is the tag). A book event's levels
# stay msgpack (``msgspec.Raw``, no copy): the row builder reads their floats in one
# pass (``rows._level_columns``) instead of making a list and two floats per level.
class _Item(msgspec.Struct, array_like=True):
    pass


class Frame(_Item, tag=FRAME):
    recv_ns: int
    raw: msgspec.Raw  # str or bytes, as received
    line: int


class _SymbolBytes(_Item):
    """A symbol's JSON as bytes: a REST snapshot's body, a published 24h update."""

    recv_ns: int
    symbol: str
    data: bytes


class Snapshot(_SymbolBytes, tag=SNAPSHOT):
    pass


class ConnectionEvent(_Item, tag=CONNECTION):
    recv_ns: int
    fields: dict[str, Any]


class Book(_Item, tag=BOOK):
    recv_ns: int
    symbol: str
    label: str
    event_ns: int  # the exchange's time of the book's last event
    last_update_id: int
    best_bid: float | None
    best_ask: float | None


class Market(_SymbolBytes, tag=MARKET):
    pass


class Applied(_Item, tag=APPLIED):
    local_ns: int
    symbol: str
    event_ms: int
    u: int
    bids: msgspec.Raw
    asks: msgspec.Raw


class Block(Applied, tag=BLOCK):
    pass


class Top(_Item, tag=TOP):
    local_ns: int
    symbol: str
    event_ms: int
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]


class Trade(_Item, tag=TRADE):
    local_ns: int
    symbol: str
    id: int
    price: float
    quantity: float
    time_ms: int
    buyer_maker: bool


Item = Frame | Snapshot | ConnectionEvent | Book | Market | Applied | Block | Top | Trade
_decode_items = msgspec.msgpack.Decoder(tuple[int, list[Item]]).decode
_decode_item = msgspec.msgpack.Decoder(Item).decode


def decode_items(data: bytes) -> tuple[list[Item], int]:
    """The items of an ``(ITEMS, items)`` message, and how many could not be read.

    One C call for the whole batch. Should an item not have the types above (a
    bug), the batch is read again item by item: every good item is kept and the
    others are counted, never the whole batch lost.
    """
    try:
        return _decode_items(data)[1], 0
    except msgspec.ValidationError:
        pass
    items: list[Item] = []
    bad = 0
    for value in _decode(data)[1]:
        try:
            items.append(_decode_item(_encode(value)))
        except msgspec.ValidationError:
            bad += 1
    return items, bad


class HistoryProcess:
    """Parent side: the child process, its socket and the ring its messages go through."""

    def __init__(self, config: Config) -> None:
        # A plain child process (not multiprocessing's): a daemonic service process (a
        # benchmark's) may not have multiprocessing children. The socket carries the
        # configuration there and the status reports back (and tells each side when the
        # other is gone); every message to the child goes through the ring.
        ours, theirs = socket.socketpair()
        self.ring, ring_fd = ByteRing.create(RING_BYTES)
        try:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from {__name__} import child_main; child_main({theirs.fileno()}, {ring_fd})",
                ],
                pass_fds=[theirs.fileno(), ring_fd],
            )
        finally:
            os.close(ring_fd)
            theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(config)

    def send(self, message: tuple[Any, ...] | None) -> None:
        """Copy ``message`` into the ring, waiting while the history process is behind (as
        a full socket would). ``(ITEMS, items)``'s items are encoded already and only
        joined (a batch too big for the ring goes in halves); other messages are encoded
        here. Raises ``OSError`` when the history process is gone, or for a message that
        can never fit (one item larger than the ring)."""
        if message is not None and message[0] == ITEMS:
            items = message[1]
            data = encode_items(items)
            if not self.ring.fits(len(data)) and len(items) > 1:
                half = len(items) // 2
                self.send((ITEMS, items[:half]))
                self.send((ITEMS, items[half:]))
                return
        else:
            data = _encode(message)
        if not self.ring.fits(len(data)):
            raise OSError(f"a message of {len(data)} bytes exceeds the history ring")
        while True:
            if not self.alive:  # a ring with room would take what nobody reads any more
                raise OSError("the history process ended")
            if self.ring.write(data):
                return
            time.sleep(_FULL_WAIT_S)

    def status(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        """The child's next status report, if one comes within ``timeout_s``."""
        if not self.conn.poll(timeout_s):
            return None
        status: dict[str, Any] = self.conn.recv()
        return status

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        try:
            self.process.wait(_JOIN_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.conn.close()
        self.ring.close()


def child_main(fd: int, ring_fd: int) -> None:
    """Entry point of the child process: the first message is the configuration.

    A Ctrl-C or a SIGTERM sent to the whole process group (systemd's
    ``KillMode=control-group``) must not end this process before the parent's
    orderly close, which flushes the recording and writes the Parquet footers:
    it ignores both, and the parent kills it if it does not end within ``_JOIN_S``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(fd)
    ring = ByteRing.attach(ring_fd)
    config = conn.recv()
    assert isinstance(config, Config)
    from market_data.ops.logs import setup_logging

    setup_logging(json_lines=config.log_json or None)
    lower_priority(config.history_priority)
    apply_cpu_affinity(history_cores(config), setting="history_cpu_affinity")
    child = _Child(config, conn, ring)
    # Every batch decodes thousands of small objects (items, trades' and top levels'
    # lists) that live until their rows are taken: with the default thresholds they
    # outlive young collections, reach the oldest
    # generation and make full collections of the whole heap (pyarrow's included)
    # frequent; that was a third of this process's time. Nothing here makes reference
    # cycles worth collecting often, and nobody waits on this process's latency.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    child.run()


def lower_priority(priority: str) -> None:
    """Make this process background work: ``idle`` (SCHED_IDLE, Linux) runs it only on
    CPU time no other process wants, so its bursts (a Parquet file is ms of CPU) rarely
    make the service wait for a core; ``background`` (or where SCHED_IDLE is refused)
    lowers it to niceness :data:`NICE`, which keeps it a small share when cores are full."""
    if priority == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError) as exc:
            log.warning("history_priority: idle refused (%s); niceness %d instead", exc, NICE)
    os.nice(NICE)


def history_cores(config: Config) -> tuple[int, ...]:
    """The cores the history process runs on: ``history_cpu_affinity``; else, when the
    service is pinned (``cpu_affinity``), every other core of the machine, so that its
    compression and file writes never take the service's own cores; else () (the OS
    decides). When the service has every core, () too: it cannot keep off them."""
    if config.history_cpu_affinity:
        return config.history_cpu_affinity
    pinned = set(config.cpu_affinity)
    if not pinned:
        return ()
    return tuple(core for core in range(os.cpu_count() or 1) if core not in pinned)


#: How every combined-stream frame begins; its stream name follows, up to an ``@``
#: within ``_NAME_MAX`` bytes.
_STREAM_PREFIX = b'{"stream":"'
_NAME_AT = len(_STREAM_PREFIX)
_NAME_MAX = 40


def _symbol_of(frame: bytes) -> str:
    """``{"stream":"btcusdt@depth...`` -> ``BTCUSDT`` (``_other`` when it names none)."""
    start = frame.find(_STREAM_PREFIX[1:], 0, 40)
    if start < 0:
        return OTHER
    start += len(_STREAM_PREFIX) - 1
    end = frame.find(b"@", start, start + _NAME_MAX)
    name = frame[start:end] if end > 0 else b""
    symbol = _SYMBOLS.get(name)
    if symbol is None:
        symbol = name.decode("ascii", "replace").upper() if name.isalnum() else OTHER
        if len(_SYMBOLS) < _SYMBOLS_MAX:
            _SYMBOLS[name] = symbol
    return symbol


#: Stream names seen -> their symbol (bounded: a hostile stream could name anything).
_SYMBOLS: dict[bytes, str] = {}
_SYMBOLS_MAX = 10_000
#: Bytes before the data of a msgpack str (fixstr aside) or bin, by its first byte.
_HEADER_SIZES = {0xD9: 2, 0xDA: 3, 0xDB: 5, 0xC4: 2, 0xC5: 3, 0xC6: 5}


def _frame_bytes(raw: msgspec.Raw) -> bytes:
    """A frame's bytes from its msgpack str or bin, without decoding the text (a str's
    msgpack data is its UTF-8: the bytes the recording writes)."""
    view = memoryview(raw)
    tag = view[0]
    skip = 1 if 0xA0 <= tag <= 0xBF else _HEADER_SIZES.get(tag)
    if skip is None:  # not a str or bin: what it is, as text
        value = _decode(raw)
        return value if type(value) is bytes else str(value).encode()
    return bytes(view[skip:])


def feed_rows(feed: RowFeed, items: list[Item]) -> None:
    """Hand the items the row stores need to ``feed``'s row builder."""
    builder = feed.builder
    on_applied, on_block, on_top = builder.on_applied, builder.on_block, builder.on_top
    for item in items:
        try:
            if type(item) is Applied:
                on_applied(item.local_ns, item.symbol, item.event_ms, item.u, item.bids, item.asks)
            elif type(item) is Block:
                on_block(item.local_ns, item.symbol, item.event_ms, item.u, item.bids, item.asks)
            elif type(item) is Top:
                on_top(item.local_ns, item.symbol, item.event_ms, item.bids, item.asks)
            elif type(item) is Trade:
                builder.on_trade(*msgspec.structs.astuple(item))
            elif type(item) is Book:
                builder.on_book(*msgspec.structs.astuple(item))
            elif type(item) is Market:
                builder.on_market(item.recv_ns, item.symbol, item.data)
        except Exception as exc:  # a bug must cost rows, never the process
            feed.errors += 1
            log.error("history store: an item failed (%s); its rows are lost", exc)


def _json(fields: dict[str, Any]) -> bytes:
    """Compact JSON, as the reader expects (``{"connection":...``)."""
    return json.dumps(fields, separators=(",", ":")).encode()


class _Child:
    def __init__(self, config: Config, conn: Connection, ring: ByteRing | None = None) -> None:
        self.conn = conn
        self.ring = ring
        self.writer: RecordingWriter | None = None
        if config.recording_dir:
            self.writer = RecordingWriter(
                config.recording_dir,
                rotate=config.recording_rotate,
                retention=Retention(
                    config.recording_max_age_days * 86_400, config.recording_max_bytes
                ),
            )
            self.writer.apply_retention()
        self.feed: RowFeed | None = None
        if config.parquet_dir or config.questdb_url:
            self.feed = RowFeed.from_config(config)
        self.suspended = ""  # the reason, while suspended
        self.suspension = 0
        self.write_errors = 0
        self.dropped = 0
        self.unreadable = 0  # items of a batch that could not be read (a bug)
        self._status_at = 0.0
        self._rows_at = 0.0

    def run(self) -> None:
        """Take the ring's messages in order until the parent's ``None`` (or its end of
        the socket closes: it is gone); between them, flush and report (``_tick``)."""
        conn, ring = self.conn, self.ring
        assert ring is not None
        wait = _POLL_S
        while True:
            data = ring.read()
            if data is None:
                if conn.poll(wait):  # the parent sends nothing here: its end closed
                    try:
                        conn.recv_bytes()
                    except (EOFError, OSError):
                        break
                wait = min(2 * wait, _IDLE_S)
            else:
                wait = _POLL_S
                if not self._message(data):
                    break
            self._tick()
        self._close()

    def _message(self, data: bytes) -> bool:
        """Handle one message from the parent; False for its last (``None``)."""
        if data.startswith(_ITEMS_HEAD):
            self._batch(data)
            return True
        message = _decode(data)
        if message is None:
            return False
        if message[0] == SUSPEND:
            self._suspend(message[1])
        elif message[0] == RESUME:
            self._resume(*message[1:])
        return True

    # -------------------------------------------------------------------- items

    def _batch(self, data: bytes) -> None:
        if self.suspended:
            self.dropped += int.from_bytes(data[len(_ITEMS_HEAD) : len(_ITEMS_HEAD) + 4], "big")
            return
        items, bad = decode_items(data)
        if bad:
            self.dropped += bad
            self.unreadable += bad  # reported as rows lost: the books start again with a block
            log.error("history: %d items of a batch could not be read; they are lost", bad)
        self._items(items)

    def _items(self, items: list[Item]) -> None:
        writer = self.writer
        if writer is not None:
            try:
                self._record(writer, items)
            except OSError as exc:
                self._fail(f"a write failed: {exc}")
                return
        if self.feed is not None:
            feed_rows(self.feed, items)

    @staticmethod
    def _record(writer: RecordingWriter, items: list[Item]) -> None:
        write_frame, write_line, symbols = writer.write_frame, writer.write_line, _SYMBOLS
        for item in items:
            if type(item) is Frame:
                frame = _frame_bytes(item.raw)
                # Inline, the usual frame: a combined-stream frame of a stream seen before,
                # on one line (``_symbol_of`` and ``write_frame``'s checks, without the calls).
                if (
                    frame.startswith(_STREAM_PREFIX)
                    and (end := frame.find(b"@", _NAME_AT, _NAME_AT + _NAME_MAX)) > 0
                    and (symbol := symbols.get(frame[_NAME_AT:end])) is not None
                    and b"\n" not in frame
                    and b"\r" not in frame
                ):
                    recv_ns, line = item.recv_ns, item.line
                    if line:
                        write_line(symbol, recv_ns, b"%d/%d %s\n" % (recv_ns, line, frame))
                    else:
                        write_line(symbol, recv_ns, b"%d %s\n" % (recv_ns, frame))
                else:
                    write_frame(_symbol_of(frame), item.recv_ns, item.line, frame)
            elif type(item) is Snapshot:
                writer.write_snapshot(item.symbol, item.recv_ns, item.data)
            elif type(item) is ConnectionEvent:
                fields = item.fields
                for symbol in fields["symbols"]:  # each symbol's file is whole on its own
                    writer.write_event(symbol, item.recv_ns, _json(dict(fields, symbols=[symbol])))

    def _tick(self) -> None:
        if self.writer is not None and not self.suspended:
            try:
                self.writer.flush()
            except OSError as exc:
                self._fail(f"a write failed: {exc}")
        now = time.monotonic()
        if self.feed is not None and not self.suspended and now - self._rows_at >= ROWS_S:
            self._rows_at = now  # rows of many batches at once: one chunk per symbol, not
            self.feed.flush(time.time_ns())  # one per symbol per batch
        if now - self._status_at >= STATUS_S:
            self._report()

    # ---------------------------------------------------------- suspend, resume

    def _fail(self, reason: str) -> None:
        self.write_errors += 1
        self._suspend(reason)
        self.suspension += 1
        self._report()

    def _suspend(self, reason: str) -> None:
        if self.suspended:
            return
        self.suspended = reason
        if self.writer is not None:
            self.writer.abandon()

    def _resume(self, now_ns: int, reason: str, attempt: int, symbols: list[str]) -> None:
        """Try the disk again, marking the hole with a ``recording_gap`` per symbol.

        ``symbols`` are those the parent saw: a process started after the previous
        one died has recorded none yet, but its files must begin with the gap too.
        """
        writer = self.writer
        try:
            if writer is not None:
                gap = {"connection": "recording_gap", "reason": reason}
                for symbol in sorted((writer.symbols | set(symbols)) - {OTHER}):
                    event = dict(gap, symbols=[symbol], depth=True, line=0)
                    writer.write_event(symbol, now_ns, _json(event))
                writer.flush(force=True)
        except OSError as exc:
            self.write_errors += 1
            if writer is not None:
                writer.abandon()
            self._report(resume=attempt, error=str(exc))
            return
        self.suspended = ""
        self._report(resume=attempt)

    def _report(self, *, closed: bool = False, **extra: Any) -> None:
        self._status_at = time.monotonic()
        writer, feed = self.writer, self.feed
        status: dict[str, Any] = feed.status() if feed is not None else {}
        status["rows_lost"] = status.get("rows_lost", 0) + self.unreadable
        status.update(
            recorded_lines=writer.lines if writer is not None else 0,
            write_errors=self.write_errors,
            dropped=self.dropped,
            suspension=self.suspension,
            suspended=self.suspended,
            closed=closed,
            **extra,
        )
        try:
            self.conn.send(status)
        except OSError:
            pass

    def _close(self) -> None:
        if self.feed is not None:
            self.feed.close()
        writer = self.writer
        if writer is not None:
            try:
                if not self.suspended:
                    writer.flush(force=True)
                writer.close()
            except OSError as exc:
                self.write_errors += 1
                log.error("recording: closing failed: %s", exc)
                writer.abandon()
        self._report(closed=True)
