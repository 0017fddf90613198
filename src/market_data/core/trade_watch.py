"""A silent trade stream, told from a quiet market by the exchange's own trade ids.

A connection that carries trades and 24h tickers stays open and busy when its
aggTrade stream alone stops delivering (a stream the exchange stalls, a
subscription lost): the connection watchdog sees the tickers, the trade ids
show no gap because none arrive, and the last price goes stale without a word.
The ``@ticker`` event names the exchange's last trade (``L``, a raw trade id,
as an aggTrade's ``l``). The stream is silent when the ticker shows the market
trading on past a trade no aggTrade brought, and for ``after_s`` from then no
aggTrade comes: a last id that merely stays ahead (trades missed during a
reconnect, insurance fund and ADL trades, which aggTrade streams do not carry)
is not a silence while the market is quiet. Time is passed in.
"""

#: Seconds of trading on with no aggTrade before the stream counts as silent (the
#: default of ``trades_silent_after_s``).
DEFAULT_AFTER_S = 60.0


class TradeWatch:
    """Per symbol: the highest trade id received against the ticker's."""

    __slots__ = ("after_s", "received", "_baseline", "_owed", "_trading_on_since", "silent")

    def __init__(self, after_s: float = DEFAULT_AFTER_S) -> None:
        self.after_s = after_s
        self.received = 0  # the highest raw trade id an aggTrade brought (its ``l``)
        self._baseline: int | None = None  # the ticker's last trade when we began
        self._owed: int | None = None  # a ticker's last id no aggTrade has reached yet
        self._trading_on_since: float | None = None  # the ticker first went past it
        self.silent = False

    def on_trade(self, last_trade_id: int) -> bool:
        """An aggTrade arrived; True if that ends a silence."""
        if last_trade_id > self.received:
            self.received = last_trade_id
        owed = self._owed
        if owed is not None and self.received >= owed:
            self._owed = self._trading_on_since = None
            if self.silent:
                self.silent = False
                return True
        return False

    def on_ticker(self, last_trade_id: int, now_s: float) -> bool:
        """A ticker arrived; True if it shows the trade stream has gone silent."""
        if last_trade_id <= 0:  # no trade in the window
            return False
        if self._baseline is None:  # trades before we listened are not ours to receive
            self._baseline = last_trade_id
            return False
        if last_trade_id <= max(self._baseline, self.received):
            self._owed = self._trading_on_since = None  # nothing traded we have not received
            self.silent = False
            return False
        if self._owed is None:
            self._owed = last_trade_id
            return False
        if self._trading_on_since is None:
            if last_trade_id > self._owed:  # trades after one that never came: watch now
                self._trading_on_since = now_s
            return False
        if not self.silent and now_s - self._trading_on_since >= self.after_s:
            self.silent = True
            return True
        return False
