"""The publisher: one symbol's failure never stops the others' books, nor its own later;
a standby still feeds its own outputs."""

from typing import Any

import pytest

from market_data.client.shm import ShmRingReader
from market_data.ops.config import Config
from market_data.outputs.redis import RedisSink
from market_data.outputs.shm import ShmRingWriter
from market_data.outputs.sinks import MemorySink, RedisOutput, ShmOutput
from market_data.service import publisher as publisher_module
from market_data.service.engine import MarketDataService
from market_data.wire.ring import HEADER_SIZE


def test_a_failed_publication_costs_that_symbol_one_flush_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = MemorySink()
    config = Config(symbols=("BTCUSDT", "ETHUSDT"), health_port=0)
    svc = MarketDataService(config, [sink], wall_clock=lambda: 1_700_000_000.0)
    real = publisher_module.orderbook_payload
    failures = ["BTCUSDT"]

    def flaky(symbol: str, *args: Any, **kwargs: Any) -> bytes:
        if symbol in failures:
            failures.remove(symbol)
            raise ValueError("cannot encode")
        return real(symbol, *args, **kwargs)

    monkeypatch.setattr(publisher_module, "orderbook_payload", flaky)
    btc, eth = svc.symbols["BTCUSDT"], svc.symbols["ETHUSDT"]
    svc.publisher.mark(btc)
    svc.publisher.mark(eth)
    svc.publisher.flush()
    assert [b.symbol for b in sink.books("ETHUSDT")] == ["ETHUSDT"]
    assert sink.books("BTCUSDT") == []
    assert svc.counters.sink_errors["publisher"] == 1
    assert not btc.dirty  # so the engine's next change marks it again
    svc.publisher.mark(btc)
    svc.publisher.flush()
    assert len(sink.books("BTCUSDT")) == 1


def test_a_standby_feeds_its_own_ring_but_not_the_shared_redis(shm_name: str) -> None:
    """The lease fences Redis, which every instance of a group writes; the ring is this
    instance's own: its local readers keep getting the (live) books while it stands by."""
    redis = RedisSink("redis://127.0.0.1:1/0")  # never run: what would be sent stays queued
    with ShmRingWriter.create(shm_name, capacity_bytes=HEADER_SIZE + 64 * 2048) as writer:
        memory = MemorySink()
        config = Config(symbols=("BTCUSDT",), health_port=0)
        svc = MarketDataService(
            config,
            [RedisOutput(redis), ShmOutput(writer), memory],
            wall_clock=lambda: 1_700_000_000.0,
        )
        holding = [False]
        svc.publisher.gate = lambda: holding[0]
        reader = ShmRingReader.attach(shm_name, from_oldest=True)
        svc.publisher.mark(svc.symbols["BTCUSDT"])
        svc.publisher.flush()
        assert redis.queue_depth == 0
        assert [r.symbol for r in reader.poll()] == ["BTCUSDT"]
        assert len(memory.books("BTCUSDT")) == 1
        holding[0] = True  # the lease: now Redis gets them too
        svc.publisher.mark(svc.symbols["BTCUSDT"])
        svc.publisher.flush()
        assert redis.queue_depth > 0
        assert len(reader.poll()) == 1
        reader.close()
