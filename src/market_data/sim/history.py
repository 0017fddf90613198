"""The simulated exchange's trade history: 1-minute klines, the 24 h ticker, ``@ticker``.

Every trade the simulator sends is recorded into its minute; a day of synthetic
minutes before the start gives every symbol a full 24 h from the first second.
Klines, ``GET /fapi/v1/ticker/24hr`` and the ``<symbol>@ticker`` stream are all
computed from these minutes, so they agree with each other and with the trades
(Binance USD-M futures docs: "Kline/Candlestick Data" row layout
``[openTime, open, high, low, close, volume, closeTime, quoteVolume, trades,
takerBuyBase, takerBuyQuote, ignore]``, "24hr Ticker Price Change Statistics",
"Individual Symbol Ticker Streams"; numbers as strings, counts of raw trades).

The 24 h window is the one the service computes: every minute from the one
containing ``now - 24 h`` to ``now``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

MINUTE_MS = 60_000
DAY_MS = 86_400_000


@dataclass
class Minute:
    """One minute of trades."""

    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    quote_volume: float = 0.0
    trades: int = 0  # raw trades (an aggTrade covers l - f + 1)
    taker_buy_volume: float = 0.0
    taker_buy_quote: float = 0.0
    # Raw trade ids (an aggTrade's f..l), as the exchange's 24h ticker gives them:
    # "firstId"/"F" and "lastId"/"L" are trade ids, not aggregate ids (Binance USD-M
    # Futures docs, "24hr Ticker Price Change Statistics" and the ticker stream).
    first_trade_id: int = 0
    last_trade_id: int = 0


class TradeHistory:
    """Minutes of one symbol's trades, oldest first."""

    def __init__(self, price_decimals: int, qty_decimals: int) -> None:
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self.minutes: dict[int, Minute] = {}  # minute start (ms) -> its trades

    def record(
        self,
        price: float,
        qty: float,
        trade_ids: tuple[int, int],
        ts_ms: int,
        buyer_maker: bool,
    ) -> None:
        """One aggTrade: its raw trades ``trade_ids`` (first, last) at ``price``."""
        first_id, last_id = trade_ids
        start = ts_ms - ts_ms % MINUTE_MS
        minute = self.minutes.get(start)
        if minute is None:
            minute = Minute(price, price, price, price, first_trade_id=first_id)
            self.minutes[start] = minute
        minute.high = max(minute.high, price)
        minute.low = min(minute.low, price)
        minute.close = price
        minute.volume += qty
        minute.quote_volume += price * qty
        minute.trades += last_id - first_id + 1
        minute.last_trade_id = last_id
        if not buyer_maker:  # the aggressor bought
            minute.taker_buy_volume += qty
            minute.taker_buy_quote += price * qty

    def seed_day(self, now_ms: int, last_price: float, typical_qty: float, seed: str) -> None:
        """A synthetic day of minutes before ``now_ms``, ending near ``last_price``."""
        rng = random.Random(seed)
        tick = 10.0**-self.price_decimals
        step = 10.0**-self.qty_decimals
        price = last_price
        current = now_ms - now_ms % MINUTE_MS
        for index in range(1, DAY_MS // MINUTE_MS + 2):
            start = current - index * MINUTE_MS
            trades = rng.randint(5, 120)
            close = price
            open_ = max(tick, round(price * (1 + rng.gauss(0, 0.0008)), self.price_decimals))
            spread = abs(close - open_) + tick * rng.randint(0, 20)
            high = round(max(open_, close) + spread * rng.random(), self.price_decimals)
            low = max(tick, round(min(open_, close) - spread * rng.random(), self.price_decimals))
            lots = max(1, int(typical_qty * trades * rng.uniform(0.3, 1.5) / step))
            volume = round(lots * step, self.qty_decimals)
            mid = (high + low) / 2
            self.minutes[start] = Minute(
                open_, high, low, close, volume, volume * mid, trades,
                volume * 0.5, volume * mid * 0.5,
            )  # fmt: skip
            price = open_

    # ------------------------------------------------------------------ answers

    def klines(self, start_ms: int | None, end_ms: int | None, limit: int) -> list[list[Any]]:
        """Rows of 1-minute klines: the latest ``limit`` within [start, end] (inclusive)."""
        starts = sorted(
            s
            for s in self.minutes
            if (start_ms is None or s + MINUTE_MS > start_ms) and (end_ms is None or s <= end_ms)
        )
        chosen = starts[:limit] if start_ms is not None else starts[-limit:]
        return [self._row(s) for s in chosen]

    def _row(self, start: int) -> list[Any]:
        m = self.minutes[start]
        p, q = self._price, self._qty
        return [
            start, p(m.open), p(m.high), p(m.low), p(m.close), q(m.volume),
            start + MINUTE_MS - 1, self._quote(m.quote_volume), m.trades,
            q(m.taker_buy_volume), self._quote(m.taker_buy_quote), "0",
        ]  # fmt: skip

    def window(self, now_ms: int) -> list[Minute]:
        first = (now_ms - DAY_MS) - (now_ms - DAY_MS) % MINUTE_MS
        return [self.minutes[s] for s in sorted(self.minutes) if first <= s <= now_ms]

    def ticker(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """``GET /fapi/v1/ticker/24hr?symbol=`` over the window ending at ``now_ms``."""
        minutes = self.window(now_ms)
        first = (now_ms - DAY_MS) - (now_ms - DAY_MS) % MINUTE_MS
        if not minutes:
            minutes = [Minute(0.0, 0.0, 0.0, 0.0)]
        open_, last = minutes[0].open, minutes[-1].close
        volume = sum(m.volume for m in minutes)
        quote = sum(m.quote_volume for m in minutes)
        change = last - open_
        return {
            "symbol": symbol,
            "priceChange": self._price(change),
            "priceChangePercent": f"{100 * change / open_ if open_ else 0.0:.3f}",
            "weightedAvgPrice": self._price(quote / volume if volume else 0.0),
            "lastPrice": self._price(last),
            "lastQty": self._qty(0.0),
            "openPrice": self._price(open_),
            "highPrice": self._price(max(m.high for m in minutes)),
            "lowPrice": self._price(min(m.low for m in minutes)),
            "volume": self._qty(volume),
            "quoteVolume": self._quote(quote),
            "openTime": first,
            "closeTime": now_ms,
            "firstId": min((m.first_trade_id for m in minutes if m.first_trade_id), default=0),
            "lastId": max((m.last_trade_id for m in minutes), default=0),
            "count": sum(m.trades for m in minutes),
        }

    def ticker_event(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """The ``<symbol>@ticker`` payload: the same figures, one-letter names."""
        t = self.ticker(symbol, now_ms)
        return {
            "e": "24hrTicker", "E": now_ms, "s": symbol, "p": t["priceChange"],
            "P": t["priceChangePercent"], "w": t["weightedAvgPrice"], "c": t["lastPrice"],
            "Q": t["lastQty"], "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
            "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"], "C": t["closeTime"],
            "F": t["firstId"], "L": t["lastId"], "n": t["count"],
        }  # fmt: skip

    def _price(self, value: float) -> str:
        return f"{value:.{self.price_decimals}f}"

    def _qty(self, value: float) -> str:
        return f"{value:.{self.qty_decimals}f}"

    def _quote(self, value: float) -> str:
        return f"{value:.{self.price_decimals + self.qty_decimals}f}"
