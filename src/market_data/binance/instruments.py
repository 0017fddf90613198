"""Exchange metadata (``GET /fapi/v1/exchangeInfo``): which contracts exist, trade, and how finely.

Pure: decoding, the check of the configured symbols against the listing
(with a did-you-mean for typos), the ``symbols: all`` selection, and each
contract's decimals from its ``PRICE_FILTER.tickSize`` and ``LOT_SIZE.stepSize``
(BINANCE_FUTURES.md §4). Field names are the exchange's; unknown fields are
ignored, and numbers stay the decimal strings the exchange sends.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import msgspec

from market_data.binance.decode import DecodeError
from market_data.core.precision import DEFAULT_DECIMALS, Precision


class _Filter(msgspec.Struct):
    filterType: str  # noqa: N815 - the exchange's field names
    tickSize: str | None = None  # noqa: N815 - PRICE_FILTER
    stepSize: str | None = None  # noqa: N815 - LOT_SIZE, MARKET_LOT_SIZE


class _Symbol(msgspec.Struct):
    symbol: str
    status: str  # TRADING, SETTLING, PENDING_TRADING, CLOSE, ...
    contractType: str = ""  # noqa: N815 - PERPETUAL, CURRENT_QUARTER, ...
    baseAsset: str = ""  # noqa: N815
    quoteAsset: str = ""  # noqa: N815
    filters: list[_Filter] = msgspec.field(default_factory=list)


class _ExchangeInfo(msgspec.Struct):
    symbols: list[_Symbol]


_decoder = msgspec.json.Decoder(_ExchangeInfo)


def decimals_of(step: str | None) -> int:
    """Decimals of a tick or step size string: ``"0.10"`` -> 1, ``"1"`` -> 0."""
    if not step:
        return DEFAULT_DECIMALS
    _, _, fraction = step.partition(".")
    return len(fraction.rstrip("0"))


@dataclass(frozen=True, slots=True)
class Instrument:
    """One contract as the exchange lists it."""

    symbol: str
    status: str
    contract_type: str
    quote_asset: str
    tick_size: str
    step_size: str

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"

    @property
    def price_decimals(self) -> int:
        return decimals_of(self.tick_size)

    @property
    def qty_decimals(self) -> int:
        return decimals_of(self.step_size)

    @property
    def precision(self) -> Precision:
        return Precision(self.price_decimals, self.qty_decimals)


def decode_exchange_info(raw: bytes) -> dict[str, Instrument]:
    """Every listed contract by symbol; DecodeError for a body that is not exchangeInfo."""
    try:
        info = _decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed exchangeInfo: {exc}") from None
    instruments: dict[str, Instrument] = {}
    for entry in info.symbols:
        tick = next((f.tickSize for f in entry.filters if f.filterType == "PRICE_FILTER"), None)
        step = next((f.stepSize for f in entry.filters if f.filterType == "LOT_SIZE"), None)
        instruments[entry.symbol.upper()] = Instrument(
            entry.symbol.upper(),
            entry.status,
            entry.contractType,
            entry.quoteAsset,
            tick or "",
            step or "",
        )
    return instruments


@dataclass(frozen=True)
class SymbolCheck:
    """The configured symbols against the listing."""

    serve: tuple[str, ...]  # listed and trading
    problems: dict[str, str]  # symbol -> one line saying what is wrong with it

    def lines(self) -> list[str]:
        return [f"{symbol}: {why}" for symbol, why in self.problems.items()]


def check_symbols(configured: Iterable[str], listed: Mapping[str, Instrument]) -> SymbolCheck:
    """Which configured symbols the exchange lists as trading, and why the others are not."""
    serve: list[str] = []
    problems: dict[str, str] = {}
    for symbol in configured:
        instrument = listed.get(symbol)
        if instrument is None:
            close = difflib.get_close_matches(symbol, list(listed), n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems[symbol] = f"not listed by the exchange{hint}"
        elif not instrument.trading:
            problems[symbol] = f"listed with status {instrument.status}, not TRADING"
        else:
            serve.append(symbol)
    return SymbolCheck(tuple(serve), problems)


def all_perpetuals(listed: Mapping[str, Instrument], quote_asset: str = "") -> tuple[str, ...]:
    """Every TRADING perpetual (of one quote asset, if given), sorted: ``symbols: all``."""
    return tuple(
        sorted(
            symbol
            for symbol, instrument in listed.items()
            if instrument.trading
            and instrument.contract_type == "PERPETUAL"
            and (not quote_asset or instrument.quote_asset == quote_asset)
        )
    )
