"""Stream names and WebSocket URLs for Binance USD-M futures.

Since 2026 the futures endpoint is split into routes: depth on ``/public``,
trades on ``/market``, and one connection cannot mix them
(BINANCE_FUTURES.md §2). With split routes off, everything goes through the
classic ``/stream`` endpoint. Either way a connection carries at most
``per_connection`` streams (Binance allows 200).
"""

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

MAX_STREAMS_PER_CONNECTION = 200


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """One WebSocket connection: its URL and the streams it carries."""

    name: str  # e.g. "depth-1", for logs and metrics
    url: str
    streams: tuple[str, ...]
    symbols: tuple[str, ...]  # upper case, the symbols whose streams it carries
    carries_depth: bool
    line: int = 0  # which of the redundant lines (A/B feeds) of ``group`` this is
    group: str = ""  # the planned connection the lines share ("" : the name itself)

    @property
    def carries_trades(self) -> bool:
        """Whether it carries aggregate trades (``<symbol>@aggTrade``)."""
        return any(stream.endswith("@aggTrade") for stream in self.streams)

    @property
    def connection(self) -> str:
        """The planned connection this line belongs to."""
        return self.group or self.name


def with_lines(plans: Sequence[StreamPlan], lines: int) -> list[StreamPlan]:
    """Each planned connection opened ``lines`` times (``depth-1/a``, ``depth-1/b``)."""
    if lines <= 1:
        return list(plans)
    return [
        dataclasses.replace(plan, name=f"{plan.name}/{chr(ord('a') + i)}", line=i, group=plan.name)
        for plan in plans
        for i in range(lines)
    ]


def depth_stream(symbol: str, depth_stream: str) -> str:
    """``btcusdt@depth@100ms`` from ``BTCUSDT`` and ``depth@100ms``."""
    return f"{symbol.lower()}@{depth_stream}"


def partial_depth_stream(symbol: str, levels: int) -> str:
    """``btcusdt@depth20@100ms``: the top N in every message, no snapshot needed."""
    return f"{symbol.lower()}@depth{levels}@100ms"


def trade_stream(symbol: str) -> str:
    return f"{symbol.lower()}@aggTrade"


def ticker_stream(symbol: str) -> str:
    """``btcusdt@ticker``: the exchange's 24 h figures every 2 s (route ``/market``)."""
    return f"{symbol.lower()}@ticker"


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def plan_connections(
    ws_base_url: str,
    symbols: Sequence[str],
    *,
    depth: str,
    partial_levels: int | None = None,
    split_routes: bool = True,
    per_connection: int = MAX_STREAMS_PER_CONNECTION,
    tickers: bool = True,
) -> list[StreamPlan]:
    """The connections needed for depth and trades of ``symbols``.

    ``partial_levels`` set means partial-depth streams replace the diff streams
    (REST snapshots unavailable). ``tickers`` adds each symbol's ``@ticker``
    beside its trades (the 24 h figures while the service's own are incomplete).
    """
    base = ws_base_url.rstrip("/")
    per_connection = max(1, min(per_connection, MAX_STREAMS_PER_CONNECTION))

    def depth_name(symbol: str) -> str:
        if partial_levels is not None:
            return partial_depth_stream(symbol, partial_levels)
        return depth_stream(symbol, depth)

    def market(symbol: str) -> tuple[str, ...]:
        if tickers:
            return (trade_stream(symbol), ticker_stream(symbol))
        return (trade_stream(symbol),)

    plans: list[StreamPlan] = []
    if split_routes:
        groups = [
            ("depth", f"{base}/public/stream", True, [depth_name(s) for s in symbols]),
            ("trades", f"{base}/market/stream", False, [n for s in symbols for n in market(s)]),
        ]
        for kind, route, carries_depth, streams in groups:
            for i, chunk in enumerate(_chunks(streams, per_connection), start=1):
                plans.append(
                    StreamPlan(
                        f"{kind}-{i}",
                        f"{route}?streams={'/'.join(chunk)}",
                        tuple(chunk),
                        tuple(dict.fromkeys(s.partition("@")[0].upper() for s in chunk)),
                        carries_depth,
                    )
                )
        return plans
    # One route: keep a symbol's depth and trades on the same connection.
    per_symbol = 3 if tickers else 2
    symbols_per_connection = max(1, per_connection // per_symbol)
    for i in range(0, len(symbols), symbols_per_connection):
        group = symbols[i : i + symbols_per_connection]
        streams = [name for s in group for name in (depth_name(s), *market(s))]
        plans.append(
            StreamPlan(
                f"combined-{i // symbols_per_connection + 1}",
                f"{base}/stream?streams={'/'.join(streams)}",
                tuple(streams),
                tuple(group),
                True,
            )
        )
    return plans
