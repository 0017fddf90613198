"""The service's frame handler, driven directly with an in-memory sink."""

import asyncio
import json
from collections import deque

import pytest

from market_data.binance.schemas import AggTrade
from market_data.core.state import BookState
from market_data.ops.config import Config
from market_data.outputs.redis import RedisSink
from market_data.outputs.sinks import MarketDataUpdate, MemorySink, RedisOutput, TradeUpdate
from market_data.service import engine
from market_data.service.engine import MarketDataService


def trade(symbol: str, trade_id: int, price: str) -> bytes:
    data = {
        "e": "aggTrade", "E": 1, "s": symbol, "a": trade_id, "p": price, "q": "0.5",
        "f": 1, "l": 1, "T": 1_700_000_000_000 + trade_id, "m": False,
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def service() -> tuple[MarketDataService, MemorySink]:
    """A service whose wall clock agrees with the trades' 2023 timestamps."""
    sink = MemorySink()
    config = Config(symbols=("BTCUSDT",), health_port=0)
    return MarketDataService(config, [sink], wall_clock=lambda: 1_700_000_000.0), sink


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
    for trade_id in (1, 2, 5, 5, 3, 6, 3):
        svc.on_frame(trade("BTCUSDT", trade_id, "100.0"))
    state = svc.symbols["BTCUSDT"]
    # 3 arrives late and fills its gap: taken, once.
    assert [t.trade_id for t in sink.trades("BTCUSDT")] == [1, 2, 5, 3, 6]
    assert (state.trade_gaps, state.duplicate_trades, state.trades) == (1, 2, 5)


class BrokenSink(MemorySink):
    """An output that fails every publish."""

    def publish(self, update: object) -> None:  # type: ignore[override]
        raise RuntimeError("disk full")


def test_a_failing_output_never_stops_the_others() -> None:
    good = MemorySink()
    svc = MarketDataService(
        Config(symbols=("BTCUSDT",), health_port=0),
        [BrokenSink(), good],
        wall_clock=lambda: 1_700_000_000.0,
    )
    svc.on_frame(trade("BTCUSDT", 1, "100.0"))
    svc.on_frame(trade("BTCUSDT", 2, "100.0"))
    assert [t.trade_id for t in good.trades()] == [1, 2]
    assert svc.counters.sink_errors["BrokenSink"] == 2


def test_market_data_is_republished_on_change_and_refreshed() -> None:
    now = [1_700_000_000.0]
    monotonic_ns = [5_000_000_000]
    sink = MemorySink()
    svc = MarketDataService(
        Config(symbols=("BTCUSDT",), health_port=0),
        [sink],
        wall_clock=lambda: now[0],
        clock_ns=lambda: monotonic_ns[0],
    )
    state = svc.symbols["BTCUSDT"]

    def market_publications() -> int:
        return sum(1 for u in sink.updates if isinstance(u, MarketDataUpdate))

    svc.on_frame(trade("BTCUSDT", 1, "100.0"))  # held until a second trade fits it
    svc.on_frame(trade("BTCUSDT", 2, "100.0"))
    svc.publisher.flush()
    assert market_publications() == 1 and not sink.books()  # trades: market data only
    svc.publisher.mark(state, book=False)
    svc.publisher.flush()
    assert market_publications() == 1  # nothing changed: not republished
    now[0] -= 3  # the wall clock stepping back changes nothing
    svc.publisher.mark(state, book=False)
    svc.publisher.flush()
    assert market_publications() == 1
    monotonic_ns[0] += 31 * 10**9  # past the refresh period: republished although unchanged
    svc.publisher.mark(state, book=False)
    svc.publisher.flush()
    assert market_publications() == 2
    last = json.loads(sink.updates[-1].payload)  # type: ignore[union-attr]
    assert last["last_price"] == 100.0 and last["updated_at"] == int(now[0] * 1000)
    svc.on_frame(trade("BTCUSDT", 3, "101.0"))
    svc.publisher.flush()
    assert market_publications() == 3  # a new trade: republished at once


async def test_a_background_task_that_dies_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "TASK_RESTART_DELAY_S", 0.01)
    svc, _ = service()
    runs: list[int] = []
    again = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("boom")
        again.set()
        await asyncio.Event().wait()

    svc._supervise("flaky", flaky)
    await asyncio.wait_for(again.wait(), 5)
    assert svc.counters.task_restarts["flaky"] == 1 and len(runs) == 2
    assert any(
        "task flaky ended" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records
    )
    svc.stopping = True
    await svc._stop_tasks()
    assert svc._tasks == {}


def depth(symbol: str, pu: int, u: int, event_time_ms: int) -> bytes:
    data = {
        "e": "depthUpdate", "E": event_time_ms, "T": event_time_ms, "s": symbol,
        "U": pu + 1, "u": u, "pu": pu, "b": [["100.0", "1.0"]], "a": [["101.0", "1.0"]],
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}).encode()


def test_a_line_that_delivers_later_shows_its_lag_behind_the_fastest() -> None:
    now = [1_700_000_000.0]
    config = Config(symbols=("BTCUSDT",), health_port=0, feed_lines=2)
    svc = MarketDataService(config, [MemorySink()], wall_clock=lambda: now[0])
    assert svc.counters.line_delay_ms == [pytest.approx(float("nan"), nan_ok=True)] * 2
    for index in range(100):
        event_ms = 1_700_000_000_000 + index * 100
        now[0] = event_ms / 1000 + 0.005  # line a: 5 ms after the event
        svc.on_frame(depth("BTCUSDT", index, index + 1, event_ms), line=0)
        now[0] = event_ms / 1000 + 0.035  # line b: 35 ms after it
        svc.on_frame(depth("BTCUSDT", index, index + 1, event_ms), line=1)
    delay_a, delay_b = svc.counters.line_delay_ms
    assert delay_a == pytest.approx(5.0, abs=0.5)
    assert delay_b - delay_a == pytest.approx(30.0, abs=0.5)


async def test_a_takeover_that_fails_midway_still_publishes_every_held_trade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = MemorySink()
    config = Config(symbols=("BTCUSDT", "ETHUSDT"), health_port=0, ha_group="g")
    svc = MarketDataService(config, [sink], wall_clock=lambda: 1_700_000_000.0)
    assert svc.lease is not None
    svc.lease._holding, svc.lease._valid_until = True, float("inf")  # this one is active now
    for symbol in ("BTCUSDT", "ETHUSDT"):
        svc._held_trades[symbol] = deque(
            AggTrade(E=1, s=symbol, a=a, p=1.0, q=1.0, f=a, l=a, T=1_700_000_000_000 + a, m=False)
            for a in (1, 2)
        )
    asked: list[str] = []

    async def stream_unreadable(client: object, symbol: str) -> int:
        asked.append(symbol)
        if len(asked) == 2:
            raise RuntimeError("boom")
        return 0

    monkeypatch.setattr(engine, "_last_streamed_trade", stream_unreadable)
    with pytest.raises(RuntimeError):
        await svc._take_over()
    svc.publisher.flush()
    assert [t.trade_id for t in sink.trades("BTCUSDT")] == [1, 2]
    assert [t.trade_id for t in sink.trades("ETHUSDT")] == [1, 2]  # not lost with the error
    assert not svc._held_trades
    await svc.lease.client.aclose()


def agg_trade(a: int) -> AggTrade:
    return AggTrade(E=1, s="BTCUSDT", a=a, p=1.0, q=1.0, f=a, l=a, T=10**12 + a, m=False)


def _active_with_redis() -> tuple[MarketDataService, MemorySink, RedisSink]:
    """An active instance of an ha_group with a memory output and an unstarted Redis writer."""
    sink = MemorySink()
    redis = RedisSink("redis://127.0.0.1:1")
    config = Config(symbols=("BTCUSDT",), health_port=0, ha_group="g")
    svc = MarketDataService(config, [sink, RedisOutput(redis)], wall_clock=lambda: 1e9)
    assert svc.lease is not None
    svc.lease._holding, svc.lease._valid_until = True, float("inf")
    return svc, sink, redis


def _lapse(svc: MarketDataService) -> None:
    """The lease is found lost: the role ends (what the lease task reports)."""
    assert svc.lease is not None
    svc.lease._holding = False
    svc._on_role(False)


async def _retake(
    svc: MarketDataService, monkeypatch: pytest.MonkeyPatch, streamed_up_to: int
) -> None:
    """Win the lease again, with ``trades:BTCUSDT`` ending at ``streamed_up_to`` (0: empty)."""

    async def last_streamed(client: object, symbol: str) -> int:
        return streamed_up_to

    monkeypatch.setattr(engine, "_last_streamed_trade", last_streamed)
    assert svc.lease is not None
    svc.lease._holding = True
    await svc._take_over()
    svc.publisher.flush()


async def test_an_active_that_loses_its_lease_publishes_its_own_unsent_trades_on_retaking_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its sink dropped them with the old epoch; the trade stream says where to resume."""
    svc, sink, redis = _active_with_redis()
    assert svc.lease is not None
    state = svc.symbols["BTCUSDT"]
    for a in (1, 2, 3):
        svc._take_trade(state, agg_trade(a))
    assert redis.queue_depth == 3
    _lapse(svc)
    assert (redis.queue_depth, redis.stats.discarded_trades) == (0, 3)
    svc._take_trade(state, agg_trade(4))  # a standby: held for Redis, its own outputs now
    svc.publisher.flush()
    assert [t.trade_id for t in sink.trades("BTCUSDT")] == [1, 2, 3, 4]
    assert not redis._trades
    await _retake(svc, monkeypatch, 1)  # only trade 1 reached Redis before the lapse
    assert [t.trade_id for t in sink.trades("BTCUSDT")] == [1, 2, 3, 4]  # none twice here
    assert [json.loads(p)["trade_id"] for _, p in redis._trades] == [2, 3, 4]  # Redis: 2, 3 again
    await svc.lease.client.aclose()


async def test_a_retaken_lease_over_an_empty_stream_sends_none_of_its_own_trades_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Redis restarted empty: no stream to go by; its own trades went out already."""
    svc, sink, redis = _active_with_redis()
    assert svc.lease is not None
    state = svc.symbols["BTCUSDT"]
    for a in range(1, 501):
        svc._take_trade(state, agg_trade(a))
    _lapse(svc)
    await _retake(svc, monkeypatch, 0)
    assert len(sink.trades("BTCUSDT")) == 500
    assert not redis._trades
    await svc.lease.client.aclose()
