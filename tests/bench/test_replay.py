"""The replay benchmark's capture and its project side (figures: `market-data bench replay`)."""

from pathlib import Path

from market_data.bench.replay import Run, applied, project_command, timed, write_capture
from market_data.capture import read_capture, read_snapshots


def test_the_capture_holds_every_frame_and_a_snapshot_per_symbol(tmp_path: Path) -> None:
    frames, snapshots, names = write_capture(tmp_path, 3, 300)
    assert names == ["SYM000USDT", "SYM001USDT", "SYM002USDT"]
    assert len(list(read_capture(frames))) == 300
    assert sorted(str(item.snapshot_symbol) for item in read_snapshots(snapshots)) == names


def test_the_project_side_applies_every_frame_and_is_timed(tmp_path: Path) -> None:
    frames, snapshots, _ = write_capture(tmp_path, 3, 300)
    run = timed(project_command(frames, snapshots))
    assert applied(run, "ours", 3) == 300
    assert run.wall_s > 0 and run.cpu_s > 0


def test_a_side_that_applied_fewer_frames_is_seen() -> None:
    assert applied(Run(1.0, 1.0, "A: applied=5 x\nB: applied=7 y\n"), "ours", 2) == 12
    assert applied(Run(1.0, 1.0, "410\n"), "cryptofeed", 10) == 400
