"""A silent trade stream told from a quiet market (core/trade_watch.py)."""

from market_data.core.trade_watch import TradeWatch


def test_trades_the_ticker_counts_and_no_aggtrade_brings_mean_silence() -> None:
    watch = TradeWatch(after_s=30.0)
    assert not watch.on_ticker(1000, now_s=0.0)  # the first ticker: where we began
    assert not watch.on_ticker(1010, now_s=2.0)  # 10 trades since: owed
    assert not watch.on_ticker(1030, now_s=4.0)  # trading on past them: watched from now
    assert not watch.on_ticker(1040, now_s=20.0)
    assert watch.on_ticker(1050, now_s=34.0) and watch.silent  # 30 s and none came
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


def test_trades_no_aggtrade_can_bring_are_not_a_silence_in_a_quiet_market() -> None:
    """Insurance fund and ADL trades (not aggregated), or trades missed while the
    connection was down, move the ticker's last id ahead of every aggTrade once; a
    silence needs the market to trade on past them with no aggTrade."""
    watch = TradeWatch(after_s=30.0)
    watch.on_ticker(1000, now_s=0.0)
    watch.on_trade(1000)
    watch.on_ticker(1003, now_s=2.0)  # three ADL trades, then nothing
    for second in range(4, 200, 2):
        assert not watch.on_ticker(1003, now_s=float(second))
    assert not watch.on_ticker(1004, now_s=200.0)  # trading on past 1003: watched from now
    assert not watch.on_ticker(1010, now_s=220.0)
    assert not watch.on_ticker(-1, now_s=225.0)  # "no trade in the window": ignored
    assert watch.on_ticker(1020, now_s=230.0)  # 30 s of trading and no aggTrade: silent
