"""Recording files: rotation, retention, crash safety, what reads them back."""

import gzip
import os
import time
from pathlib import Path

import pytest

from market_data.capture import read_capture
from market_data.history.recorder import RecordingWriter, Retention

HOUR_NS = 3600 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def frame(symbol: str, u: int) -> bytes:
    return (
        b'{"stream":"%s@depth@100ms","data":{"e":"depthUpdate","E":1,"T":1,"s":"%s",'
        b'"U":%d,"u":%d,"pu":%d,"b":[],"a":[]}}'
        % (symbol.lower().encode(), symbol.encode(), u, u, u - 1)
    )


def test_every_item_reads_back_in_order_with_line_and_kind(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    writer.write_event("BTCUSDT", T0, b'{"connection":"connected","symbols":["BTCUSDT"]}')
    writer.write_snapshot("BTCUSDT", T0 + 1, b'{"lastUpdateId":5,"bids":[],"asks":[]}')
    writer.write_frame("BTCUSDT", T0 + 2, 0, frame("BTCUSDT", 6))
    writer.write_frame("BTCUSDT", T0 + 3, 1, frame("BTCUSDT", 7))
    writer.write_frame("_other", T0 + 4, 0, b"not json\nat all")
    writer.close()
    items = list(read_capture(tmp_path, events=True))
    assert [i.recv_ns - T0 for i in items] == [0, 1, 2, 3, 4]
    assert items[0].event == "connected"
    assert items[1].snapshot_symbol == "BTCUSDT" and items[1].used
    assert items[1].body == b'{"lastUpdateId":5,"bids":[],"asks":[]}'
    assert items[2].body == frame("BTCUSDT", 6) and items[2].line == 0
    assert items[3].line == 1
    assert items[4].body == b"not json\nat all"  # kept whole, escaped in the file
    assert all(i.event is None for i in read_capture(tmp_path))  # events only when asked


def test_files_rotate_at_the_hour_one_folder_per_symbol(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, rotate="hour")
    for i in range(3):
        writer.write_frame("BTCUSDT", T0 + i * HOUR_NS, 0, frame("BTCUSDT", i + 2))
    writer.write_frame("ETHUSDT", T0, 0, frame("ETHUSDT", 2))
    writer.close()
    names = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "BTCUSDT").iterdir())
    assert names == ["BTCUSDT-20260101T00", "BTCUSDT-20260101T01", "BTCUSDT-20260101T02"]
    assert len(list((tmp_path / "ETHUSDT").iterdir())) == 1
    daily = RecordingWriter(tmp_path / "d", rotate="day")
    assert daily.period(T0 + 5 * HOUR_NS) == "20260101"


def test_retention_deletes_old_files_then_the_oldest_past_the_size_limit(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    for i in range(4):
        writer.write_frame("BTCUSDT", T0 + i * HOUR_NS, 0, frame("BTCUSDT", i + 2) * 50)
    writer.close()
    files = sorted((tmp_path / "BTCUSDT").iterdir())
    now = time.time()
    for age_h, path in zip((30, 3, 2, 1), files, strict=True):
        os.utime(path, (now - age_h * 3600, now - age_h * 3600))
    size = files[-1].stat().st_size
    writer.retention = Retention(max_age_s=24 * 3600, max_bytes=2 * size + size // 2)
    removed = writer.apply_retention(now)
    assert removed == files[:2]  # the 30 h old one by age, then the oldest by size
    assert sorted((tmp_path / "BTCUSDT").iterdir()) == files[2:]


def test_a_crash_leaves_the_open_file_readable_to_its_last_full_line(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    for u in range(2, 102):
        writer.write_frame("BTCUSDT", T0 + u, 0, frame("BTCUSDT", u))
    writer.flush(force=True)  # a block ends (every BLOCK_S)
    (path,) = (tmp_path / "BTCUSDT").iterdir()
    whole = path.read_bytes()  # no gzip trailer yet: as a crash would leave it
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / "a.gz").write_bytes(whole)
    assert len(list(read_capture(crashed))) == 100
    (crashed / "a.gz").write_bytes(whole[: len(whole) - 7])  # and a torn last block
    items = list(read_capture(crashed))
    assert 0 < len(items) <= 100
    assert [i.body for i in items] == [frame("BTCUSDT", u) for u in range(2, 2 + len(items))]
    writer.close()
    with gzip.open(path) as closed:  # a closed file is a complete gzip member
        assert len(closed.read().splitlines()) == 100


def test_a_recording_folder_is_a_capture_for_the_simulator(tmp_path: Path) -> None:
    from market_data.sim.capture_source import load_capture

    writer = RecordingWriter(tmp_path)
    writer.write_event("BTCUSDT", T0, b'{"connection":"connected","symbols":["BTCUSDT"]}')
    writer.write_frame("BTCUSDT", T0 + 1, 0, frame("BTCUSDT", 6))
    writer.write_snapshot("BTCUSDT", T0 + 2, b'{"lastUpdateId":5,"bids":[],"asks":[]}')
    writer.write_frame("BTCUSDT", T0 + 3, 0, frame("BTCUSDT", 7))
    writer.close()
    capture = load_capture(tmp_path)
    assert [f.stream for f in capture.frames] == ["btcusdt@depth@100ms"] * 2
    assert [(s.symbol, s.last_update_id) for s in capture.snapshots] == [("BTCUSDT", 5)]


def test_replay_command_reads_a_recording_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from market_data.cli import main

    writer = RecordingWriter(tmp_path)
    writer.write_frame("BTCUSDT", T0 + 1, 0, frame("BTCUSDT", 6))
    writer.write_event(
        "BTCUSDT", T0 + 2, b'{"connection":"disconnected","symbols":["BTCUSDT"],"depth":true}'
    )
    writer.close()
    assert main(["replay", str(tmp_path)]) == 0
    assert "frames: 1" in capsys.readouterr().out


def test_retention_deletes_only_recordings_it_wrote(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    writer.write_frame("BTCUSDT", T0, 0, frame("BTCUSDT", 2))
    writer.close()
    foreign = [tmp_path / "app.log.1.gz", tmp_path / "BTCUSDT" / "notes.gz"]
    (tmp_path / "logs").mkdir()
    foreign.append(tmp_path / "logs" / "logs-20260101-1.gz.gz")
    for path in foreign:
        path.write_bytes(b"not ours")
    old = time.time() - 10 * 24 * 3600
    for path in [*foreign, *(tmp_path / "BTCUSDT").glob("BTCUSDT-*.gz")]:
        os.utime(path, (old, old))
    writer.retention = Retention(max_age_s=3600, max_bytes=0)
    removed = writer.apply_retention()
    assert [p.parent.name for p in removed] == ["BTCUSDT"] and removed[0].name.startswith(
        "BTCUSDT-"
    )
    assert all(path.exists() for path in foreign)


def test_a_frame_without_a_stream_reads_back_as_a_frame_not_a_snapshot(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path)
    writer.write_frame("BTCUSDT", T0, 0, frame("BTCUSDT", 2))
    writer.write_frame("_other", T0 + 1, 0, b'{"code":-1003,"msg":"Too many requests"}')
    writer.write_frame("_other", T0 + 2, 0, b'{"snapshot":"BTCUSDT","data":{"bids":[]}}')
    writer.close()
    items = list(read_capture(tmp_path))  # used to stop: "snapshot found but no depth stream"
    assert [i.body for i in items[1:]] == [
        b'{"code":-1003,"msg":"Too many requests"}',
        b'{"snapshot":"BTCUSDT","data":{"bids":[]}}',
    ]
    assert not any(i.is_snapshot for i in items)
