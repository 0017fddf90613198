"""The publisher: one symbol's failure never stops the others' books, nor its own later."""

from typing import Any

import pytest

from market_data.ops.config import Config
from market_data.outputs.sinks import MemorySink
from market_data.service import publisher as publisher_module
from market_data.service.engine import MarketDataService


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
