"""Minimal shared-memory consumer: print books and trades as the service publishes them.

    .venv/bin/python examples/shm_consumer.py [SEGMENT]   # default: market_data

Needs a running writer (the service with shared memory enabled). Reading takes
no lock and no system call per record; see docs/SHM.md. A writer that died
(``kill -9``) or hangs leaves its last books saying live: while nothing comes,
this asks ``reader.writer_alive`` and says so.
"""

from __future__ import annotations

import argparse
import sys
import time

from market_data.client.shm import BookRecord, ShmRingReader, TradeRecord


def main(name: str) -> int:
    with ShmRingReader.attach(name) as reader:
        print(f"attached to {reader.path}, generation {reader.generation}")
        told = False
        while True:
            record = reader.read(timeout=1.0)  # reader.poll() never blocks
            if record is None:  # a quiet second: a quiet market, or a writer gone?
                if not reader.writer_alive and not told:
                    print("(the writer is gone: the books above are not current)", flush=True)
                told = not reader.writer_alive
                continue
            told = False
            lag_us = (time.monotonic_ns() - getattr(record, "local_ts_ns", 0)) / 1e3
            if isinstance(record, BookRecord) and record.bids and record.asks:
                bid, ask = record.bids[0], record.asks[0]
                print(
                    f"{record.symbol:<12} book  {bid[1]:g} @ {bid[0]:g} | {ask[0]:g} @ {ask[1]:g}"
                    f"  (u={record.last_update_id}, {lag_us:.0f} μs old)"
                )
            elif isinstance(record, TradeRecord):
                side = "SELL" if record.is_buyer_maker else "BUY "
                print(f"{record.symbol:<12} trade {side} {record.qty:g} @ {record.price:g}")
            if reader.missed:
                print(f"(missed {reader.missed} records so far: this consumer is too slow)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "segment", nargs="?", default="market_data", help="the ring's shm_name (market_data)"
    )
    args = parser.parse_args()
    try:
        sys.exit(main(args.segment))
    except KeyboardInterrupt:  # Ctrl+C: a normal way to stop
        sys.exit(130)
