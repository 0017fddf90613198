"""Stream names and connection planning."""

from market_data.binance.streams import plan_connections


def test_split_routes_put_depth_on_public_and_trades_on_market() -> None:
    plans = plan_connections(
        "wss://fstream.binance.com/", ("BTCUSDT", "ETHUSDT"), depth="depth@100ms"
    )
    assert [p.name for p in plans] == ["depth-1", "trades-1"]
    assert plans[0].url == (
        "wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms"
    )
    assert plans[1].url.startswith("wss://fstream.binance.com/market/stream?streams=")
    # Each symbol's 24h ticker rides with its trades (both are /market streams).
    assert plans[1].streams == (
        "btcusdt@aggTrade", "btcusdt@ticker", "ethusdt@aggTrade", "ethusdt@ticker",
    )  # fmt: skip
    assert plans[0].carries_depth and not plans[1].carries_depth
    assert plans[0].symbols == plans[1].symbols == ("BTCUSDT", "ETHUSDT")


def test_streams_are_spread_over_connections_of_bounded_size() -> None:
    symbols = tuple(f"S{i:03d}USDT" for i in range(450))
    plans = plan_connections("ws://x", symbols, depth="depth", per_connection=200)
    depth = [p for p in plans if p.carries_depth]
    assert [len(p.streams) for p in depth] == [200, 200, 50]
    assert sum(len(p.symbols) for p in depth) == 450
    assert all(len(p.streams) <= 200 for p in plans)


def test_partial_depth_replaces_diff_streams() -> None:
    plans = plan_connections("ws://x", ("BTCUSDT",), depth="depth@100ms", partial_levels=20)
    assert plans[0].streams == ("btcusdt@depth20@100ms",)


def test_one_route_keeps_a_symbols_streams_together() -> None:
    plans = plan_connections(
        "ws://x",
        ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        depth="depth",
        split_routes=False,
        per_connection=4,
        tickers=False,
    )
    assert [p.streams for p in plans] == [
        ("btcusdt@depth", "btcusdt@aggTrade", "ethusdt@depth", "ethusdt@aggTrade"),
        ("solusdt@depth", "solusdt@aggTrade"),
    ]
    with_tickers = plan_connections(
        "ws://x", ("BTCUSDT",), depth="depth", split_routes=False, per_connection=4
    )
    assert with_tickers[0].streams == ("btcusdt@depth", "btcusdt@aggTrade", "btcusdt@ticker")
    assert all(p.url.startswith("ws://x/stream?streams=") for p in plans)
