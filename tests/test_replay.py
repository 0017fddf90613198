"""``market-data replay``'s progress over a long replay (the books: test_replay_captures.py)."""

from pathlib import Path

import pytest

from market_data.capture import CaptureItem
from market_data.cli import main
from market_data.replay import with_progress

HFT_ETH = Path(__file__).parent / "data" / "hftbacktest_usdm_ethusdt_20240808.gz"


def test_progress_passes_every_item_and_reports_at_its_interval() -> None:
    items = [CaptureItem(1_767_225_600_000_000_000 + n * 1_000_000, b"{}") for n in range(20_000)]
    ticks = iter(float(t) for t in range(100))  # the clock moves 1 s per look
    lines: list[str] = []
    seen = list(with_progress(items, lines.append, every_s=2.0, clock=lambda: next(ticks)))
    assert seen == items
    # Looks at the clock every 4,096 items (4 looks after the start), one line per 2 s.
    assert len(lines) == 2
    assert lines[0].startswith("replayed 8,192 items (")
    assert lines[-1].startswith("replayed 16,384 items (")
    assert "recorded time 2026-01-01 00:00:16 UTC" in lines[-1]


def test_replay_prints_no_status_into_a_pipe_for_a_short_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Not a terminal: a line a minute at most, so a short replay's stderr stays empty."""
    assert main(["replay", str(HFT_ETH)]) == 0
    captured = capsys.readouterr()
    assert "ETHUSDT" in captured.out
    assert captured.err == ""
