"""Stream names and the /public vs /market route split."""

import pytest

from market_data.sim.streams import StreamKind, parse_stream, route_allows


@pytest.mark.parametrize(
    ("name", "kind", "channel"),
    [
        ("btcusdt@depth", StreamKind.DIFF_DEPTH, ("BTCUSDT", "depth")),
        ("btcusdt@depth@100ms", StreamKind.DIFF_DEPTH, ("BTCUSDT", "depth")),
        ("btcusdt@depth@500ms", StreamKind.DIFF_DEPTH, ("BTCUSDT", "depth")),
        ("ethusdt@depth@0ms", StreamKind.DIFF_DEPTH, ("ETHUSDT", "depth")),
        ("ethusdt@depth5", StreamKind.PARTIAL_DEPTH, ("ETHUSDT", "depth5@250ms")),
        ("ethusdt@depth20@100ms", StreamKind.PARTIAL_DEPTH, ("ETHUSDT", "depth20@100ms")),
        ("ethusdt@aggTrade", StreamKind.AGG_TRADE, ("ETHUSDT", "aggTrade")),
        ("ethusdt@bookTicker", StreamKind.BOOK_TICKER, ("ETHUSDT", "bookTicker")),
        ("ctkusdt@kline_1m", StreamKind.KLINE, ("CTKUSDT", "kline_1m")),
    ],
)
def test_known_names(name: str, kind: StreamKind, channel: tuple[str, str]) -> None:
    stream = parse_stream(name)
    assert stream is not None
    assert (stream.kind, stream.channel, stream.name) == (kind, channel, name)


@pytest.mark.parametrize(
    "name", ["BTCUSDT@depth", "btcusdt@depth7", "btcusdt@depth@200ms", "btcusdt", "@depth", ""]
)
def test_unknown_names(name: str) -> None:
    assert parse_stream(name) is None


def test_routes_split_depth_from_trades() -> None:
    depth, trade = parse_stream("btcusdt@depth@100ms"), parse_stream("btcusdt@aggTrade")
    ticker = parse_stream("btcusdt@bookTicker")
    assert depth is not None and trade is not None and ticker is not None
    assert route_allows("", depth) and not route_allows("", trade)  # retired: /public only
    assert route_allows("/public", depth) and route_allows("/public", ticker)
    assert not route_allows("/public", trade)
    assert route_allows("/market", trade) and not route_allows("/market", depth)
