"""Argument types of the command line: a bad value is argparse's one-line error.

A zero or negative duration, depth or count used to be taken at its word
(``--duration 0`` ran for ever, ``--depth -1`` sliced from the end); every
command checks them here instead, when the command line is read.
"""

import argparse
import math
from pathlib import Path

from market_data.ops.words import SYMBOL, url_problem


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):  # nan and inf too
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0: any free one), got {text}")
    return value


def symbol(text: str) -> str:
    """A symbol as the exchange spells it: ``ethusdt`` -> ``ETHUSDT``."""
    value = text.strip().upper()
    if not SYMBOL.match(value):
        raise argparse.ArgumentTypeError(f"not a symbol: {text!r} (e.g. BTCUSDT)")
    return value


def symbol_list(text: str) -> list[str]:
    """``btcusdt,ETHUSDT`` -> ``["BTCUSDT", "ETHUSDT"]``; at least one."""
    symbols = [symbol(part) for part in text.split(",") if part.strip()]
    if not symbols:
        raise argparse.ArgumentTypeError(f"no symbol in {text!r} (e.g. BTCUSDT,ETHUSDT)")
    return symbols


def http_url(text: str) -> str:
    """An ``http://`` or ``https://`` address with a host (checked as config URLs are)."""
    problem = url_problem(text, ("http", "https"))
    if problem is not None:
        raise argparse.ArgumentTypeError(
            f"expected http://HOST:PORT (or https://): {text!r} {problem}"
        )
    return text


def output_file(text: str) -> Path:
    """A file to write: its folder must exist, and it must not be a folder itself."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name in it")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no folder {path.parent}")
    return path
