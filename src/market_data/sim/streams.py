"""Stream names the simulated exchange understands, and which route serves them.

Binance names streams ``<symbol>@<kind>[@<speed>]``, always lowercase. Since
2026 the futures endpoint is split: ``/public`` serves depth and bookTicker,
``/market`` serves trades, klines and tickers; the unrouted ``/stream`` serves
``/public`` data only (below).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


class StreamKind(enum.Enum):
    DIFF_DEPTH = "depth"  # every speed variant carries the same diffs
    PARTIAL_DEPTH = "partial"  # whole top N in every message
    AGG_TRADE = "aggTrade"
    TRADE = "trade"
    BOOK_TICKER = "bookTicker"
    KLINE = "kline"
    TICKER = "ticker"
    MARK_PRICE = "markPrice"


PUBLIC_KINDS = frozenset({StreamKind.DIFF_DEPTH, StreamKind.PARTIAL_DEPTH, StreamKind.BOOK_TICKER})
MARKET_KINDS = frozenset(
    {
        StreamKind.AGG_TRADE,
        StreamKind.TRADE,
        StreamKind.KLINE,
        StreamKind.TICKER,
        StreamKind.MARK_PRICE,
    }
)

# route prefix -> the kinds it serves (None: everything). The unrouted URLs were
# retired on 2026-04-23: a connection with no route gets only /public data, and an
# aggTrade subscription there is acknowledged but never arrives (BINANCE_FUTURES.md
# §2; cryptofeed #1128, binance-futures-connector-python #261).
ROUTE_KINDS: dict[str, frozenset[StreamKind] | None] = {
    "": PUBLIC_KINDS,
    "/public": PUBLIC_KINDS,
    "/market": MARKET_KINDS,
}

_PATTERNS: list[tuple[re.Pattern[str], StreamKind]] = [
    (re.compile(r"^([a-z0-9_]+)@depth(?:@(0|100|250|500)ms)?$"), StreamKind.DIFF_DEPTH),
    (re.compile(r"^([a-z0-9_]+)@depth(5|10|20)(?:@(100|250|500)ms)?$"), StreamKind.PARTIAL_DEPTH),
    (re.compile(r"^([a-z0-9_]+)@aggTrade$"), StreamKind.AGG_TRADE),
    (re.compile(r"^([a-z0-9_]+)@trade$"), StreamKind.TRADE),
    (re.compile(r"^([a-z0-9_]+)@bookTicker$"), StreamKind.BOOK_TICKER),
    (re.compile(r"^([a-z0-9_]+)@kline_(\w+)$"), StreamKind.KLINE),
    (re.compile(r"^([a-z0-9_]+)@ticker$"), StreamKind.TICKER),
    (re.compile(r"^([a-z0-9_]+)@markPrice(?:@1s)?$"), StreamKind.MARK_PRICE),
]


@dataclass(frozen=True)
class StreamName:
    """A parsed stream name; ``channel`` groups names that carry the same events."""

    name: str
    symbol: str  # uppercase, as in payloads
    kind: StreamKind
    levels: int = 0  # partial depth only
    # Partial depth only: 250 when not given (Binance USD-M Futures WebSocket docs,
    # "Partial Book Depth Streams": update speed 250ms, 500ms or 100ms).
    interval_ms: int = 0

    @property
    def channel(self) -> tuple[str, str]:
        """Key of the event source: diff-depth speed variants share one channel."""
        if self.kind is StreamKind.KLINE:
            return (self.symbol, self.name.split("@", 1)[1])
        if self.kind is StreamKind.PARTIAL_DEPTH:
            return (self.symbol, f"depth{self.levels}@{self.interval_ms}ms")
        return (self.symbol, self.kind.value)


def parse_stream(name: str) -> StreamName | None:
    """Parse a lowercase stream name; None when Binance would not know it."""
    for pattern, kind in _PATTERNS:
        match = pattern.match(name)
        if match is None:
            continue
        symbol = match.group(1).upper()
        if kind is StreamKind.PARTIAL_DEPTH:
            interval = int(match.group(3) or 250)
            return StreamName(name, symbol, kind, int(match.group(2)), interval)
        return StreamName(name, symbol, kind)
    return None


def route_allows(route: str, stream: StreamName) -> bool:
    """Whether a connection on ``route`` ("", "/public", "/market") may carry ``stream``."""
    kinds = ROUTE_KINDS.get(route)
    return kinds is None or stream.kind in kinds
