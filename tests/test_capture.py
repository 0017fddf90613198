"""Reading a directory of recordings: one merged stream in receive-time order."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from market_data.capture import CaptureError, read_capture

HOURS = 12
SYMBOLS = 25  # 300 files: more than the lowered open-file limit below
LINES = 4


def _frame(symbol: str, n: int) -> bytes:
    return b'{"stream":"%s@depth@100ms","data":{"n":%d}}' % (symbol.lower().encode(), n)


def write_day(directory: Path) -> list[tuple[int, bytes]]:
    """Hourly files per symbol, as the recorder rotates them; every (recv_ns, body)."""
    written: list[tuple[int, bytes]] = []
    for hour in range(HOURS):
        for s in range(SYMBOLS):
            symbol = f"S{s:02d}USDT"
            folder = directory / symbol
            folder.mkdir(exist_ok=True)
            lines = []
            for n in range(LINES):
                recv_ns = (hour * 3600 + n * 60 + s) * 1_000_000_000
                body = _frame(symbol, hour * LINES + n)
                lines.append(b"%d %s\n" % (recv_ns, body))
                written.append((recv_ns, body))
            (folder / f"{symbol}-20260101T{hour:02d}-{hour * 3_600_000}.gz").write_bytes(
                gzip.compress(b"".join(lines))
            )
    return written


def test_a_directory_is_merged_by_receive_time(tmp_path: Path) -> None:
    written = write_day(tmp_path)
    items = list(read_capture(tmp_path))
    assert [(i.recv_ns, i.body) for i in items] == sorted(written)


def test_equal_receive_times_keep_path_order(tmp_path: Path) -> None:
    for name in ("b", "a", "c"):
        folder = tmp_path / name
        folder.mkdir()
        body = _frame("BTCUSDT", ord(name))
        (folder / "r.gz").write_bytes(gzip.compress(b"5 %s\n6 %s\n" % (body, body)))
    items = list(read_capture(tmp_path))
    assert [i.body[-4:-2] for i in items] == [b"97", b"98", b"99"] * 2  # a, b, c at each time


MERGE_UNDER_A_LOW_LIMIT = """
import resource, sys
from market_data.capture import read_capture
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
print(sum(1 for _ in read_capture(sys.argv[1])))
"""


def test_a_day_of_files_merges_under_a_low_open_file_limit(tmp_path: Path) -> None:
    """Only the files whose time has come are open: 300 files under a limit of 64."""
    written = write_day(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", MERGE_UNDER_A_LOW_LIMIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout) == len(written)


def test_a_file_emptied_after_the_peek_ends_the_merge_cleanly(tmp_path: Path) -> None:
    """The recorder's retention may remove or truncate a file while a replay reads."""
    write_day(tmp_path)
    items = read_capture(tmp_path)
    first = next(items)
    for file in tmp_path.rglob("*.gz"):  # every file not yet opened is now empty
        file.write_bytes(gzip.compress(b""))
    rest = list(items)
    assert first.recv_ns == 0
    assert all(item.recv_ns < 3600 * 1_000_000_000 for item in rest)  # the first hour's


def test_a_pipe_is_refused_with_what_to_do_instead(tmp_path: Path) -> None:
    """Its first bytes, read to tell gzip from text, would be gone when it is read."""
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    with pytest.raises(CaptureError, match="not a regular file .*save the stream to a file"):
        list(read_capture(fifo))
