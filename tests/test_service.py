"""The service's frame handler, driven directly with an in-memory sink."""

import json

from market_data.config import Config
from market_data.core.state import BookState
from market_data.io.sinks import MarketDataUpdate, MemorySink, TradeUpdate
from market_data.service import MarketDataService


def trade(symbol: str, trade_id: int, price: str) -> bytes:
    data = {
        "e": "aggTrade", "E": 1, "s": symbol, "a": trade_id, "p": price, "q": "0.5",
        "f": 1, "l": 1, "T": 1_700_000_000_000 + trade_id, "m": False,
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def service() -> tuple[MarketDataService, MemorySink]:
    sink = MemorySink()
    return MarketDataService(Config(symbols=("BTCUSDT",), health_port=0), [sink]), sink


def test_trades_are_published_in_order_and_feed_the_24h_stats() -> None:
    svc, sink = service()
    for i, price in enumerate(["100.5", "101.0", "99.5"], start=1):
        svc.on_frame(trade("BTCUSDT", i, price))
    trades = sink.trades("BTCUSDT")
    assert [t.trade_id for t in trades] == [1, 2, 3]
    assert isinstance(trades[0], TradeUpdate)
    assert json.loads(trades[1].payload) == {
        "symbol": "BTCUSDT", "trade_id": 2, "price": 101.0, "quantity": 0.5,
        "timestamp": 1_700_000_000_002, "is_buyer_maker": False,
    }  # fmt: skip
    stats = svc.symbols["BTCUSDT"].stats.snapshot(1_700_000_000_010)
    assert (stats.high, stats.low, stats.trade_count, stats.volume) == (101.0, 99.5, 3, 1.5)
    assert svc.counters.by_type["trade"] == 3


def test_bad_input_is_counted_and_skipped() -> None:
    svc, sink = service()
    svc.on_frame(b"{not json")
    svc.on_frame(trade("BTCUSDT", 1, "-5"))
    svc.on_frame(trade("DOGEUSDT", 1, "0.1"))  # not configured
    svc.on_frame(b'{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}')
    assert (svc.counters.malformed, svc.counters.unknown_symbol, svc.counters.unsupported) == (
        2,
        1,
        1,
    )
    assert sink.updates == [] and svc.counters.frames == 4
    assert svc.symbols["BTCUSDT"].state is BookState.WAITING


def test_a_depth_event_starts_syncing() -> None:
    svc, _ = service()
    data = {
        "e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": 5, "u": 9, "pu": 1,
        "b": [["100.0", "1.0"]], "a": [["101.0", "1.0"]],
    }  # fmt: skip
    svc.on_frame(json.dumps({"stream": "btcusdt@depth@100ms", "data": data}).encode())
    assert svc.symbols["BTCUSDT"].state is BookState.SYNCING
    assert svc.symbols["BTCUSDT"].sync.snapshot_pending
    assert svc.counters.latency.count == 1


def test_missed_and_redelivered_trades_are_counted_never_silent() -> None:
    svc, sink = service()
    for trade_id in (1, 2, 5, 5, 3, 6):
        svc.on_frame(trade("BTCUSDT", trade_id, "100.0"))
    state = svc.symbols["BTCUSDT"]
    assert [t.trade_id for t in sink.trades("BTCUSDT")] == [1, 2, 5, 6]
    assert (state.trade_gaps, state.duplicate_trades, state.trades) == (2, 2, 4)


class BrokenSink(MemorySink):
    """An output that fails every publish."""

    def publish(self, update: object) -> None:  # type: ignore[override]
        raise RuntimeError("disk full")


def test_a_failing_output_never_stops_the_others() -> None:
    good = MemorySink()
    svc = MarketDataService(Config(symbols=("BTCUSDT",), health_port=0), [BrokenSink(), good])
    svc.on_frame(trade("BTCUSDT", 1, "100.0"))
    svc.on_frame(trade("BTCUSDT", 2, "100.0"))
    assert [t.trade_id for t in good.trades()] == [1, 2]
    assert svc.counters.sink_errors["BrokenSink"] == 2


def test_market_data_is_republished_on_change_and_refreshed() -> None:
    now = [1_700_000_000.0]
    sink = MemorySink()
    svc = MarketDataService(
        Config(symbols=("BTCUSDT",), health_port=0), [sink], wall_clock=lambda: now[0]
    )
    state = svc.symbols["BTCUSDT"]

    def market_publications() -> int:
        return sum(1 for u in sink.updates if isinstance(u, MarketDataUpdate))

    svc.on_frame(trade("BTCUSDT", 1, "100.0"))
    svc._flush()
    assert market_publications() == 1 and not sink.books()  # a trade: market data only
    svc._mark(state, book=False)
    svc._flush()
    assert market_publications() == 1  # nothing changed: not republished
    now[0] += 31  # past the refresh period: republished although unchanged
    svc._mark(state, book=False)
    svc._flush()
    assert market_publications() == 2
    last = json.loads(sink.updates[-1].payload)  # type: ignore[union-attr]
    assert last["last_price"] == 100.0 and last["updated_at"] == int(now[0] * 1000)
    svc.on_frame(trade("BTCUSDT", 2, "101.0"))
    svc._flush()
    assert market_publications() == 3  # a new trade: republished at once
