"""Argument types: what each accepts, normalises and refuses."""

import argparse
from pathlib import Path

import pytest

from market_data import arg_types


def test_symbols_are_spelt_as_the_exchange_spells_them() -> None:
    assert arg_types.symbol(" ethusdt ") == "ETHUSDT"
    assert arg_types.symbol_list("btcusdt, ETHUSDT,") == ["BTCUSDT", "ETHUSDT"]
    for bad in ("", "btc-usdt", "foo bar", "X"):
        with pytest.raises(argparse.ArgumentTypeError):
            arg_types.symbol(bad)


@pytest.mark.parametrize(
    ("convert", "good", "bad"),
    [
        (arg_types.positive_float, ["0.5", "3"], ["0", "-1", "nan"]),
        (arg_types.non_negative_float, ["0", "2.5"], ["-0.1", "nan"]),
        (arg_types.positive_int, ["1", "20"], ["0", "-3"]),
        (arg_types.non_negative_int, ["0", "7"], ["-1"]),
        (arg_types.port, ["0", "9443", "65535"], ["-1", "65536"]),
        (arg_types.http_url, ["http://h:9090", "https://h"], ["h:9090", "ftp://h", "http://"]),
    ],
)
def test_each_type_takes_the_good_and_refuses_the_bad(
    convert: object, good: list[str], bad: list[str]
) -> None:
    assert callable(convert)
    for text in good:
        convert(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError):
            convert(text)


def test_an_output_file_needs_its_folder(tmp_path: Path) -> None:
    assert arg_types.output_file(str(tmp_path / "t.jsonl")) == tmp_path / "t.jsonl"
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        arg_types.output_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="no folder"):
        arg_types.output_file(str(tmp_path / "missing" / "t.jsonl"))
