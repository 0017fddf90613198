"""The symbol -> ring index that lets a reader ignore how many workers write."""

from pathlib import Path

from market_data.wire.ring_index import index_path, read_index, remove_index, ring_for, write_index


def test_index_round_trips_and_falls_back_to_the_name(tmp_path: Path) -> None:
    assert ring_for("md", "btcusdt", tmp_path) == "md"  # no index: one process, one ring
    write_index("md", {"BTCUSDT": "md-0", "ETHUSDT": "md-1"}, tmp_path)
    assert index_path("md", tmp_path).read_text() == "BTCUSDT\tmd-0\nETHUSDT\tmd-1\n"
    assert read_index("md", tmp_path) == {"BTCUSDT": "md-0", "ETHUSDT": "md-1"}
    assert [p.name for p in tmp_path.iterdir()] == ["md.index"]  # no temporary left
    (tmp_path / "md-1").touch()
    assert ring_for("md", "ethusdt", tmp_path) == "md-1"
    assert ring_for("md", "SOLUSDT", tmp_path) == "md"
    remove_index("md", tmp_path)
    assert read_index("md", tmp_path) == {}


def test_an_entry_whose_segment_is_gone_falls_back_to_the_name(tmp_path: Path) -> None:
    """A supervisor killed with SIGKILL leaves its index; readers must not follow it."""
    write_index("md", {"BTCUSDT": "md-0"}, tmp_path)
    assert ring_for("md", "BTCUSDT", tmp_path) == "md"
