"""Writer and reader processes for the multi-process ring tests.

Run as a script (``python ring_worker.py ROLE ...``); readers print one JSON
line with what they saw. Every record carries a pattern derived from its own
sequence number, so a reader can tell an intact record from a torn or stale one.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import time
import zlib

from market_data.client.shm import ShmRingReader
from market_data.outputs.shm import ShmRingWriter, segment_path
from market_data.wire.ring import (
    HEAD_WORD,
    HEADER_SIZE,
    SLOT_HEADER_SIZE,
    SLOT_OFF_LENGTH,
    BookRecord,
    JsonRecord,
    Record,
    decode_header,
    decode_slot,
)

PATTERNS = 256
GENERATION_STRIDE = 1 << 32  # books carry generation * stride + seq as event time
FILLERS = [bytes((i + k) & 0xFF for k in range(2000)) for i in range(PATTERNS)]


def json_payload(seq: int, generation: int) -> bytes:
    """A 1000..1900 byte payload that only record ``seq`` of ``generation`` carries."""
    size = 1000 + (seq % 10) * 100
    body = FILLERS[seq % PATTERNS][: size - 16]
    head = seq.to_bytes(8, "little") + generation.to_bytes(4, "little")
    return head + zlib.crc32(head + body).to_bytes(4, "little") + body


def book_levels(seq: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """30 bids and 30 asks (a 1 KB record) whose values all derive from ``seq``."""
    bids = [(seq + k * 0.5, seq * 2.0 + k) for k in range(30)]
    asks = [(seq - k * 0.25, seq * 3.0 + k) for k in range(30)]
    return bids, asks


def write_patterned(writer: ShmRingWriter, seq: int) -> None:
    """Write record ``seq`` (must equal writer.records_written + 1): books and JSON mixed."""
    if seq % 3 == 0:
        bids, asks = book_levels(seq)
        event_time_ms = writer.generation * GENERATION_STRIDE + seq
        writer.write_book("BTCUSDT", 2, seq, event_time_ms, seq * 100, bids, asks)
    else:
        writer.write_json("ETHUSDT", json_payload(seq, writer.generation))


def is_intact(record: Record, generation: int) -> bool:
    """Whether ``record`` carries exactly the pattern its sequence number calls for."""
    seq = record.seq
    if isinstance(record, BookRecord):
        bids, asks = book_levels(seq)
        return (
            record.symbol == "BTCUSDT"
            and record.last_update_id == seq
            and record.event_time_ms == generation * GENERATION_STRIDE + seq
            and record.local_ts_ns == seq * 100
            and list(record.bids) == bids
            and list(record.asks) == asks
        )
    if isinstance(record, JsonRecord):
        return record.symbol == "ETHUSDT" and record.payload == json_payload(seq, generation)
    return False


# --- roles --------------------------------------------------------------------


def run_writer(args: argparse.Namespace) -> int:
    """Create the ring, say "ready", wait for a line on stdin, write, say "done"."""
    writer = ShmRingWriter.create(args.name, capacity_bytes=HEADER_SIZE + args.slots * 2048)
    print("ready", writer.generation, flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + args.seconds if args.seconds else None
    seq = 0
    while True:
        seq += 1
        write_patterned(writer, seq)
        if args.count and seq >= args.count:
            break
        if deadline is not None and seq % 256 == 0 and time.monotonic() >= deadline:
            break
        if args.pause_every and seq % args.pause_every == 0:
            time.sleep(0.001)
    print("done", seq, flush=True)
    if args.then == "hang":  # wait to be killed: a crash, segment left behind
        time.sleep(60)
    writer.close(unlink=args.then == "close")
    return 0


def run_reader(args: argparse.Namespace) -> int:
    """Read until the writer of generation ``--generations`` closed; report as JSON."""
    reader = ShmRingReader.attach(args.name, from_oldest=True)
    print("ready", flush=True)
    stats: dict[int, dict[str, int]] = {}
    last_seq: dict[int, int] = {}
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        generation = reader.generation
        records = reader.poll()
        if not records:
            if reader.generation == generation and generation >= args.generations:
                if reader.writer_closed:
                    break
            time.sleep(0.0002)
            continue
        for record in records:
            gen = _generation_of(record)
            entry = stats.setdefault(gen, {"read": 0, "corrupt": 0, "out_of_order": 0})
            entry["read"] += 1
            if not is_intact(record, gen):
                entry["corrupt"] += 1
            if record.seq <= last_seq.get(gen, 0):
                entry["out_of_order"] += 1
            last_seq[gen] = record.seq
            if args.delay:
                time.sleep(args.delay)
    result = {
        "generations": {str(g): s for g, s in stats.items()},
        "missed": reader.missed,
        "reattaches": reader.reattaches,
        "generation": reader.generation,
        "timed_out": time.monotonic() >= deadline,
    }
    reader.close()
    print(json.dumps(result), flush=True)
    return 0


def _generation_of(record: Record) -> int:
    """Every record carries the generation of the writer that wrote it."""
    if isinstance(record, JsonRecord) and len(record.payload) >= 12:
        return int.from_bytes(record.payload[8:12], "little")
    if isinstance(record, BookRecord):
        return record.event_time_ms // GENERATION_STRIDE
    return -1


def run_unsafe_reader(args: argparse.Namespace) -> int:
    """A deliberately broken reader: copies the newest slot without re-checking its sequence.

    Exists to prove the stress test can fail: it must report torn records.
    """
    path = segment_path(args.name)
    fd = os.open(path, os.O_RDONLY)
    mapping = mmap.mmap(fd, os.fstat(fd).st_size, mmap.MAP_SHARED, mmap.PROT_READ)
    os.close(fd)
    view = memoryview(mapping)
    words = view.cast("Q")
    header = decode_header(view)
    print("ready", flush=True)
    read = corrupt = 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and corrupt < args.stop_after_corrupt:
        # the oldest record: the writer is about to overwrite its slot
        seq = int(words[HEAD_WORD]) - header.slot_count + 1
        if seq < 1:
            continue
        offset = HEADER_SIZE + ((seq - 1) % header.slot_count) * header.slot_size
        if words[offset >> 3] != 2 * seq:
            continue
        length = int.from_bytes(
            view[offset + SLOT_OFF_LENGTH : offset + SLOT_OFF_LENGTH + 4], "little"
        )
        length = min(length, header.max_body_size)
        raw = bytes(view[offset + SLOT_OFF_LENGTH : offset + SLOT_HEADER_SIZE + length])
        # missing on purpose: `if words[offset >> 3] != 2 * seq: discard`
        read += 1
        try:
            intact = is_intact(decode_slot(seq, raw), header.generation)
        except Exception:
            intact = False
        corrupt += not intact
    words.release()
    view.release()
    mapping.close()
    print(json.dumps({"read": read, "corrupt": corrupt}), flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["write", "read", "read-unsafe"])
    parser.add_argument("--name", required=True)
    parser.add_argument("--slots", type=int, default=64)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--pause-every", type=int, default=0)
    parser.add_argument("--then", choices=["close", "keep", "hang"], default="close")
    parser.add_argument("--generations", type=int, default=1)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--stop-after-corrupt", type=int, default=50)
    args = parser.parse_args()
    role = {"write": run_writer, "read": run_reader, "read-unsafe": run_unsafe_reader}
    return role[args.role](args)


if __name__ == "__main__":
    sys.exit(main())
