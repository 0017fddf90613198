"""A silent trade stream, told from a quiet market by the exchange's own trade ids.

A connection that carries trades and 24h tickers stays open and busy when its
aggTrade subscription delivers nothing (acknowledged on the wrong route, a
stream the exchange stopped): the connection watchdog sees messages, the trade
ids show no gap because none arrive, and the last price goes stale without a
word. The ``@ticker`` event names the last trade of the exchange (``L``, a raw
trade id, as an aggTrade's ``l``). Trades the ticker has counted since this
service started listening, and that no aggTrade has brought for ``after_s``,
mean the trade stream is silent. Time is passed in.
"""


class TradeWatch:
    """Per symbol: the highest trade id received against the ticker's."""

    __slots__ = ("after_s", "received", "_baseline", "_owed", "silent")

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.received = 0  # the highest raw trade id an aggTrade brought (its ``l``)
        self._baseline: int | None = None  # the ticker's last trade when we began
        self._owed: tuple[int, float] | None = None  # (a ticker's last id, since when)
        self.silent = False

    def on_trade(self, last_trade_id: int) -> bool:
        """An aggTrade arrived; True if that ends a silence."""
        if last_trade_id > self.received:
            self.received = last_trade_id
        owed = self._owed
        if owed is not None and self.received >= owed[0]:
            self._owed = None
            if self.silent:
                self.silent = False
                return True
        return False

    def on_ticker(self, last_trade_id: int, now_s: float) -> bool:
        """A ticker arrived; True if it shows the trade stream has gone silent."""
        if self._baseline is None:  # trades before we listened are not ours to receive
            self._baseline = last_trade_id
            return False
        if last_trade_id <= max(self._baseline, self.received):
            self._owed = None  # nothing traded that we have not received
            return False
        if self._owed is None:
            self._owed = (last_trade_id, now_s)
            return False
        if not self.silent and now_s - self._owed[1] >= self.after_s:
            self.silent = True
            return True
        return False
