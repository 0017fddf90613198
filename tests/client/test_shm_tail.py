"""``market-data shm-tail`` (shm_tail.py) and the example consumer, against a live ring."""

from __future__ import annotations

import argparse
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

from market_data.client import shm_tail
from market_data.outputs.shm import ShmRingWriter
from market_data.wire.ring import HEADER_SIZE

EXAMPLE = Path(__file__).parents[2] / "examples" / "shm_consumer.py"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    shm_tail.configure_parser(parser)
    return parser.parse_args(list(argv))


def test_plain_tail_prints_records_and_stats(shm_name: str) -> None:
    out = io.StringIO()
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 8 * 2048) as writer:
        writer.write_book("BTCUSDT", 2, 5, 1, 1, [(100.0, 1.5)], [(100.5, 2.0)])
        writer.write_trade("BTCUSDT", 9, 100.25, 0.5, 1, True, 1)
        args = parse("--name", shm_name, "--plain", "--from-oldest", "--count", "2")
        assert shm_tail.run(args, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "book  #1 BTCUSDT live u=5 bid=100@1.5 ask=100.5@2 levels=1/1"
    assert lines[1] == "trade #2 BTCUSDT sell 0.5@100.25 id=9"
    assert "read 2" in lines[2] and "missed 0" in lines[2] and "generation 1" in lines[2]


def test_symbol_shows_only_that_symbol_s_records(shm_name: str) -> None:
    """One ring carries every symbol of a process: --symbol filters, --count counts them."""
    out = io.StringIO()
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 8 * 2048) as writer:
        writer.write_book("BTCUSDT", 2, 5, 1, 1, [(100.0, 1.5)], [(100.5, 2.0)])
        writer.write_book("ETHUSDT", 2, 7, 1, 1, [(3000.0, 1.0)], [(3000.5, 2.0)])
        writer.write_trade("ETHUSDT", 9, 3000.25, 0.5, 1, True, 1)
        writer.write_trade("BTCUSDT", 10, 100.25, 0.5, 1, True, 1)
        args = parse(
            "--name", shm_name, "--plain", "--from-oldest", "--symbol", "ethusdt", "--count", "2"
        )  # fmt: skip
        assert shm_tail.run(args, out=out) == 0
    lines = out.getvalue().splitlines()
    assert [line.split()[2] for line in lines[:2]] == ["ETHUSDT", "ETHUSDT"]
    assert "u=7" in lines[0] and "id=9" in lines[1] and "BTCUSDT" not in out.getvalue()


def test_live_tail_renders_a_table(shm_name: str) -> None:
    out = io.StringIO()
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 8 * 2048) as writer:
        writer.write_book("ETHUSDT", 1, 5, 1, 1, [(3000.0, 1.0)], [(3000.5, 2.0)])
        assert shm_tail.run(parse("--name", shm_name, "--from-oldest", "--count", "1"), out) == 0
    text = out.getvalue()
    assert "ETHUSDT" in text and "syncing" in text and "3000 x 1" in text


def test_a_silent_writer_s_live_books_are_shown_as_not_current(shm_name: str) -> None:
    """A writer killed with SIGKILL leaves its books saying live: its beat tells."""
    out = io.StringIO()
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 8 * 2048) as writer:
        writer.write_book("ETHUSDT", 2, 5, 1, 1, [(3000.0, 1.0)], [(3000.5, 2.0)])
        writer._ring.beat(time.monotonic_ns() - 10_000_000_000)  # its last beat, 10 s ago
        assert shm_tail.run(parse("--name", shm_name, "--from-oldest", "--count", "1"), out) == 0
    text = out.getvalue()
    assert "writer gone" in text and "live" not in text and "writer silent for 10 s" in text


def test_tail_reports_a_missing_segment(shm_name: str) -> None:
    assert shm_tail.run(parse("--name", shm_name, "--plain", "--duration", "0.1")) == 1


def test_example_consumer_prints_books_and_trades_and_a_dead_writer(shm_name: str) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 8 * 2048) as writer:
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), shm_name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().startswith("attached to")
            writer.write_book("BTCUSDT", 2, 5, 1, 1, [(100.0, 1.5)], [(100.5, 2.0)])
            writer.write_trade("BTCUSDT", 9, 100.25, 0.5, 1, False, 1)
            book_line = proc.stdout.readline()
            trade_line = proc.stdout.readline()
            writer._ring.beat(time.monotonic_ns() - 5_000_000_000)  # as a killed writer leaves
            gone_line = proc.stdout.readline()
            proc.send_signal(signal.SIGINT)  # Ctrl+C: a quiet exit, no traceback
            _, errors = proc.communicate(timeout=10)
            assert proc.returncode == 130 and "Traceback" not in errors
        finally:
            proc.kill()
            proc.communicate()
    assert book_line.startswith("BTCUSDT      book  1.5 @ 100 | 100.5 @ 2  (u=5,")
    assert trade_line.strip() == "BTCUSDT      trade BUY  0.5 @ 100.25"
    assert gone_line.strip() == "(the writer is gone: the books above are not current)"


def test_example_consumer_help_is_help() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0 and "segment" in result.stdout
    assert "Traceback" not in result.stderr
