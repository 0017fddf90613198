"""A silent trade stream told from a quiet market (core/trade_watch.py)."""

from market_data.core.trade_watch import TradeWatch


def test_trades_the_ticker_counts_and_no_aggtrade_brings_mean_silence() -> None:
    watch = TradeWatch(after_s=30.0)
    assert not watch.on_ticker(1000, now_s=0.0)  # the first ticker: where we began
    assert not watch.on_ticker(1010, now_s=2.0)  # 10 trades since: owed from now
    assert not watch.on_ticker(1030, now_s=20.0)
    assert watch.on_ticker(1050, now_s=32.0) and watch.silent  # 30 s and none came
    assert not watch.on_ticker(1060, now_s=34.0)  # said once
    assert watch.on_trade(1055) and not watch.silent  # they come again
    assert not watch.on_ticker(1070, now_s=36.0) and not watch.silent


def test_a_quiet_market_and_a_stream_that_keeps_up_are_never_silent() -> None:
    watch = TradeWatch(after_s=30.0)
    watch.on_ticker(500, now_s=0.0)  # the last trade was an hour ago: not owed
    for second in range(0, 300, 2):
        assert not watch.on_ticker(500, now_s=float(second))
    for second in range(300, 600, 2):  # trading again; aggTrades a little behind the ticker
        watch.on_trade(500 + second - 1)
        assert not watch.on_ticker(500 + second, now_s=float(second))
    assert not watch.silent
