"""examples/shm_reader.c: compiled with the system cc, run against a live ring."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from market_data.outputs.shm import ShmRingWriter
from market_data.wire.ring import HEADER_SIZE
from market_data.wire.ring_index import remove_index, write_index

SOURCE = Path(__file__).parents[2] / "examples" / "shm_reader.c"


@pytest.fixture(scope="module")
def c_reader(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (cc) on PATH")
    binary = tmp_path_factory.mktemp("c_reader") / "shm_reader"
    subprocess.run(
        [cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(binary), str(SOURCE)],
        check=True,
        capture_output=True,
        text=True,
    )
    return binary


def test_c_reader_prints_records_written_before_and_while_it_runs(
    shm_name: str, c_reader: Path
) -> None:
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 16 * 2048) as writer:
        writer.write_book(
            "BTCUSDT", 2, 123456, 1700000000001, 42, [(65000.5, 1.25)], [(65001.0, 2.5)]
        )
        writer.write_trade("ETHUSDT", 987, 3000.25, 0.5, 1700000000002, True, 43)
        proc = subprocess.Popen(
            [str(c_reader), "--name", shm_name, "--from-oldest", "--count", "4", "--timeout", "10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        attached = proc.stdout.readline()
        assert attached.startswith(f"attached /dev/shm/{shm_name} generation=1"), attached
        writer.write_json("SOLUSDT", b'{"p":"1.5"}')  # the reader is live now
        levels = [(float(i), float(i) / 2) for i in range(30)]
        writer.write_book("XRPUSDT", 3, 7, 8, 9, levels, levels)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert out.splitlines() == [
        "book seq=1 symbol=BTCUSDT state=2 u=123456 E=1700000000001 ts=42 bids=1 asks=1"
        " bid=65000.5@1.25 ask=65001@2.5",
        "trade seq=2 symbol=ETHUSDT id=987 price=3000.25 qty=0.5 T=1700000000002 maker=1 ts=43",
        'json seq=3 symbol=SOLUSDT {"p":"1.5"}',
        "book seq=4 symbol=XRPUSDT state=3 u=7 E=8 ts=9 bids=30 asks=30 bid=0@0 ask=0@0",
    ]


def test_c_reader_refuses_a_foreign_file(shm_name: str, c_reader: Path) -> None:
    from market_data.outputs.shm import segment_path

    segment_path(shm_name).write_bytes(b"x" * 4096)
    proc = subprocess.run(
        [str(c_reader), "--name", shm_name], capture_output=True, text=True, timeout=10
    )
    assert proc.returncode == 1 and "not a version 1 ring" in proc.stderr


def test_c_reader_finds_a_symbols_ring_through_the_index(shm_name: str, c_reader: Path) -> None:
    ring = f"{shm_name}-1"
    try:
        with ShmRingWriter.create(ring, capacity_bytes=HEADER_SIZE + 16 * 2048) as writer:
            write_index(shm_name, {"BTCUSDT": f"{shm_name}-0", "ETHUSDT": ring})
            writer.write_trade("ETHUSDT", 5, 3000.5, 1.0, 1, False, 2)
            result = subprocess.run(
                [str(c_reader), "--name", shm_name, "--symbol", "ETHUSDT", "--from-oldest",
                 "--count", "1", "--timeout", "10"],
                capture_output=True, text=True, timeout=15,
            )  # fmt: skip
    finally:
        remove_index(shm_name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"attached /dev/shm/{ring} ")
    assert lines[1].startswith("trade seq=1 symbol=ETHUSDT id=5")


def test_c_reader_says_when_the_writer_stopped_beating(shm_name: str, c_reader: Path) -> None:
    """A writer killed with SIGKILL leaves its name and its books: its beat tells."""
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 16 * 2048) as writer:
        writer.write_book("BTCUSDT", 2, 7, 1, 1, [(100.0, 1.0)], [(101.0, 1.0)])
        writer._ring.beat(time.monotonic_ns() - 5_000_000_000)  # its last beat, 5 s ago
        result = subprocess.run(
            [str(c_reader), "--name", shm_name, "--from-oldest", "--count", "2",
             "--timeout", "0.5"],
            capture_output=True, text=True, timeout=15,
        )  # fmt: skip
    assert result.returncode == 2  # the timeout: nothing more came
    lines = result.stdout.splitlines()
    assert lines[1].startswith("book seq=1 symbol=BTCUSDT")
    assert lines[2] == "writer silent for 5s: its books are not current"
