"""Building the history pipeline from the configuration."""

import importlib
from pathlib import Path
from types import ModuleType

import pytest

from market_data.cli import main
from market_data.errors import ConfigError
from market_data.history.wiring import build_history, check_history_folders
from market_data.ops.config import Config


def test_nothing_configured_builds_nothing() -> None:
    assert build_history(Config()) is None


def test_a_missing_extra_is_a_config_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.import_module

    def without_pyarrow(name: str, package: str | None = None) -> ModuleType:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_pyarrow)
    with pytest.raises(ConfigError, match=r"parquet_dir: .*pip install 'market-data\[history\]'"):
        build_history(Config(parquet_dir=str(tmp_path)))


@pytest.mark.parametrize("key", ["recording_dir", "parquet_dir"])
def test_a_folder_history_cannot_write_to_is_an_error_before_the_start(
    tmp_path: Path, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not a suspension logged every 30 s while the service keeps nothing; and found
    before the ring or any worker exists (nothing is left behind, nothing restarts)."""
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(ConfigError, match=rf"{key}: {a_file}/rec is not a folder history can"):
        check_history_folders(Config(**{key: str(a_file / "rec")}))
    config = tmp_path / "c.yaml"
    config.write_text(f"{key}: {a_file / 'rec'}\nshm_name: md-test-never-made\n")
    assert main(["run", "--config", str(config), "--workers", "2"]) == 2
    assert f"{key}: {a_file}/rec is not a folder history can write to" in capsys.readouterr().err
    assert not Path("/dev/shm/md-test-never-made").exists()


def test_a_missing_folder_is_made(tmp_path: Path) -> None:
    check_history_folders(Config(recording_dir=str(tmp_path / "new" / "rec")))
    assert (tmp_path / "new" / "rec").is_dir()


def test_recording_only_needs_no_row_store(tmp_path: Path) -> None:
    pipeline = build_history(Config(recording_dir=str(tmp_path)))
    assert pipeline is not None and not pipeline.rows
    pipeline.frame(b'{"stream":"btcusdt@depth@100ms","data":{}}')
    pipeline.close()
    assert pipeline.counters.recorded_lines == 1 and not pipeline.counters.rows


def test_questdb_credentials_are_redacted_when_the_config_is_printed() -> None:
    config = Config(questdb_url="https::addr=db:9000;username=admin;password=secret;")
    assert "secret" not in str(config.describe()) and "secret" not in repr(config)
    assert config.describe()["questdb_url"] == "https::addr=db:9000;username=admin;password=***;"


def test_a_password_with_an_escaped_semicolon_is_redacted_whole() -> None:
    config = Config(questdb_url="https::addr=db:9000;password=ab;;cdefgh;token=t0k;")
    shown = str(config.describe())
    assert "cdefgh" not in shown and "t0k" not in shown
    assert config.describe()["questdb_url"] == "https::addr=db:9000;password=***;token=***;"
