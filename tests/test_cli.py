"""The command line: lazy subcommands and argument checks."""

import sys
from pathlib import Path

import pytest

from market_data.cli import build_parser, main


@pytest.mark.parametrize("option", ["--rate", "--duration"])
def test_demo_refuses_a_rate_or_duration_that_is_not_positive(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["demo", option, "0"])
    assert exited.value.code == 2
    assert "must be greater than 0" in capsys.readouterr().err


def test_only_the_chosen_subcommand_module_is_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("market_data.bench.e2e", "market_data.client.watch", "market_data.sim.cli"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    build_parser(["check-config"])
    assert "market_data.bench.e2e" not in sys.modules
    assert "market_data.client.watch" not in sys.modules
    build_parser(["sim", "--help"])
    assert "market_data.sim.cli" in sys.modules


def test_run_takes_a_log_level() -> None:
    args = build_parser(["run", "--log-level", "debug"]).parse_args(["run", "--log-level", "debug"])
    assert args.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["run", "--workers", "0"], "--workers: must be 1 or more, got 0"),
        (["demo", "--symbol", "btc-usdt"], "not a symbol: 'btc-usdt'"),
        (["replay", "x.gz", "--depth", "-1"], "--depth: must be 1 or more, got -1"),
        (["replay", "x.gz", "--max-levels", "0"], "--max-levels: must be 1 or more, got 0"),
        (["replay", "x.gz", "--book-trace", "/nonexistent/t.jsonl"], "no folder /nonexistent"),
        (["replay", "x.gz", "--book-trace", "/tmp"], "/tmp is a folder"),
        (["record", "--duration", "0"], "--duration: must be greater than 0, got 0"),
        (["health", "--url", "localhost:9090"], "expected http://HOST:PORT"),
        (["health", "--timeout", "0"], "--timeout: must be greater than 0"),
        (["watch", "--depth", "0"], "--depth: must be 1 or more"),
        (["watch", "--refresh-hz", "-1"], "--refresh-hz: must be greater than 0"),
        (["shm-tail", "--count", "-1"], "--count: must be 0 or more"),
        (["shm-tail", "--duration", "-1"], "--duration: must be 0 or more"),
        (["health", "--timeout", "inf"], "--timeout: must be greater than 0, got inf"),
        (["sim", "--port", "99999"], "a port is 0-65535"),
        (["sim", "--symbols", ","], "no symbol in ','"),
        (["sim", "--levels", "0"], "--levels: must be 1 or more"),
        (["sim", "--ping-interval", "0"], "--ping-interval: must be greater than 0"),
    ],
)
def test_a_value_no_command_can_use_is_refused_when_read(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of these used to be taken at its word (--duration 0 ran for ever, --depth -1
    sliced from the end, --port 99999 a traceback)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert error in capsys.readouterr().err


def test_check_config_takes_the_file_as_an_argument_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("symbols: [SOLUSDT]\n")
    assert main(["check-config", str(config)]) == 0
    assert "- SOLUSDT" in capsys.readouterr().out
    assert main(["check-config", str(config), "--config", str(tmp_path / "other.yaml")]) == 2
    assert "two configs given" in capsys.readouterr().err


def test_demo_names_a_redis_url_without_its_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--redis-url", "localhost:6379", "--duration", "1"]) == 2
    assert "scheme must be redis://" in capsys.readouterr().err
