"""The command line: lazy subcommands and argument checks."""

import sys

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
