"""The web view's model: what the page shows, built from the service's state.

:class:`ViewModel` reads the running service (never writes to it) and builds
two plain-JSON documents:

- the *overview*: one row per symbol (state, when the book last changed, best
  bid and ask, spread in bps, last price, 24h volume and change, update rate,
  last reset reason), the exchange connections and the Redis writer's status;
- the *detail* of one symbol: its ladder (top ``order_book_depth`` per side),
  the recent trades and the 24h figures. A book that is not live has **no
  levels** here, only its state: the page can never show a stale ladder as
  current.

Times are wall-clock milliseconds (``updated_ms``), never ages, so a view of a
quiet book does not change from one tick to the next and the conflating push
sends nothing; the page computes ages from the frame's ``now_ms``.

Nothing secret is in a view: the Redis URL is not shown at all (only whether
the writer is connected and its last error, scrubbed of the URL's password),
and :func:`scrub` is applied to every encoded view as a last guard.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import msgspec

from market_data import __version__
from market_data.core.state import BookState
from market_data.service.symbols import SymbolState
from market_data.web.tape import TradeTape

if TYPE_CHECKING:
    from market_data.service.app import App

#: Seconds over which the update rate is measured.
RATE_WINDOW_S = 2.0

_encode = msgspec.json.Encoder().encode


class RateMeter:
    """Updates per second of each symbol, from its applied-update counter.

    ``sample`` is called once per push tick (not per update): the meter keeps
    (time, count) pairs over :data:`RATE_WINDOW_S` and gives the slope.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[tuple[float, int]]] = {}

    def sample(self, symbol: str, now_s: float, count: int) -> float:
        samples = self._samples.get(symbol)
        if samples is None:
            samples = self._samples[symbol] = deque()
        if samples and count < samples[-1][1]:
            samples.clear()  # the counter restarted
        if not samples or now_s > samples[-1][0]:
            samples.append((now_s, count))
        while len(samples) > 2 and now_s - samples[1][0] >= self.window_s:
            samples.popleft()
        first_s, first_count = samples[0]
        elapsed = now_s - first_s
        if elapsed <= 0:
            return 0.0
        return (count - first_count) / elapsed


@dataclass(frozen=True, slots=True)
class Secrets:
    """Strings that must never reach a page (the Redis password, the ui token)."""

    values: tuple[str, ...]

    @classmethod
    def of(cls, redis_url: str, ui_token: str) -> Secrets:
        found: list[str] = []
        try:
            parts = urlsplit(redis_url)
            password = parts.password
        except ValueError:
            password = None
        if password:
            found.extend({password, unquote(password)})
        if ui_token:
            found.append(ui_token)
        return cls(tuple(value for value in found if value))


def scrub(encoded: bytes, secrets: Secrets) -> bytes:
    """``encoded`` with every secret replaced by ``***`` (a guard behind the model)."""
    for secret in secrets.values:
        raw = secret.encode()
        escaped = msgspec.json.encode(secret)[1:-1]  # as it reads inside a JSON string
        for needle in {raw, escaped}:
            if needle in encoded:
                encoded = encoded.replace(needle, b"***")
    return encoded


def spread_bps(bid: float | None, ask: float | None) -> float | None:
    """The spread in basis points of the mid price (None without both sides)."""
    if bid is None or ask is None or bid <= 0 or ask <= 0:
        return None
    mid = (bid + ask) / 2.0
    return round((ask - bid) / mid * 10_000.0, 3)


class ViewModel:
    """Builds the overview and a symbol's detail from one running :class:`App`."""

    def __init__(self, app: App, tape: TradeTape) -> None:
        self.app = app
        self.tape = tape
        self.rates = RateMeter()
        self.secrets = Secrets.of(app.config.redis_url, app.config.ui_token)
        self._rates: dict[str, float] = {}
        self._rates_at = -1.0

    # ---------------------------------------------------------------- clocks

    def now_ms(self) -> int:
        return int(self.app.service.wall_clock() * 1000)

    def _updated_ms(self, state: SymbolState) -> int | None:
        """Wall-clock ms the book last changed (None before it ever did)."""
        age = self.app.service.book_age_s(state)
        if age is None:
            return None
        return int((self.app.service.wall_clock() - age) * 1000)

    # ------------------------------------------------------------- documents

    def overview(self) -> dict[str, Any]:
        service = self.app.service
        self._sample_rates()
        now_ms = self.now_ms()
        rows = [self._row(state, now_ms) for state in service.symbols.values()]
        redis = self.app.redis
        error = redis.stats.last_error if not redis.connected else None
        lease = service.lease
        return {
            "version": __version__,
            "started": service.started,
            "shutting_down": self.app.shutting_down,
            "depth": self.app.config.order_book_depth,
            "role": None if lease is None else lease.role,
            "redis": {"connected": redis.connected, "error": error or None},
            "connections": [
                {
                    "name": connection.plan.name,
                    "connected": connection.connected,
                    "connects": connection.connects,
                    "symbols": len(connection.plan.symbols),
                    "last_disconnect": connection.last_disconnect_reason or None,
                }
                for connection in service.connections
            ],
            "skipped": dict(service.skipped),
            "symbols": rows,
        }

    def detail(self, symbol: str) -> dict[str, Any] | None:
        """One symbol's ladder, tape and 24h figures; None for a symbol not served."""
        state = self.app.service.symbols.get(symbol)
        if state is None:
            return None
        book_state = state.state
        live = book_state.trusted
        depth = self.app.config.order_book_depth
        bids, asks = state.top(depth) if live else ([], [])
        return {
            "symbol": state.symbol,
            "state": book_state.label,
            "live": live,
            "last_update_id": state.last_update_id if live else 0,
            "updated_ms": self._updated_ms(state),
            "last_reset": state.sync.last_reset_reason or None,
            "depth": depth,
            "bids": [[price, qty] for price, qty in bids],
            "asks": [[price, qty] for price, qty in asks],
            "trades": [
                {
                    "id": trade.trade_id,
                    "price": trade.price,
                    "qty": trade.quantity,
                    "side": "sell" if trade.is_buyer_maker else "buy",
                    "time_ms": trade.time_ms,
                }
                for trade in self.tape.recent(state.symbol)
            ],
            "stats": self._stats(state, self.now_ms()),
        }

    def encode(self, document: dict[str, Any] | None) -> bytes:
        return scrub(_encode(document), self.secrets)

    # --------------------------------------------------------------- pieces

    def _sample_rates(self) -> None:
        """Update rates at most once per 100 ms whatever the number of pages."""
        now_s = self.app.service.clock()
        if now_s - self._rates_at < 0.1:
            return
        self._rates_at = now_s
        self._rates = {
            symbol: self.rates.sample(symbol, now_s, state.book_updates)
            for symbol, state in self.app.service.symbols.items()
        }

    def _row(self, state: SymbolState, now_ms: int) -> dict[str, Any]:
        book_state = state.state
        live = book_state.trusted
        bid = ask = None
        if live:
            bids, asks = state.top(1)
            bid = bids[0][0] if bids else None
            ask = asks[0][0] if asks else None
        stats = self._stats(state, now_ms)
        return {
            "symbol": state.symbol,
            "state": book_state.label,
            "live": live,
            "updated_ms": self._updated_ms(state),
            "best_bid": bid,
            "best_ask": ask,
            "spread_bps": spread_bps(bid, ask),
            "last_price": stats["last_price"],
            "volume_24h": stats["volume"],
            "change_24h": stats["change"],
            "change_pct_24h": stats["change_pct"],
            "update_rate": round(self._rates.get(state.symbol, 0.0), 1),
            "last_reset": state.sync.last_reset_reason or None,
            "halted": book_state is BookState.HALTED,
        }

    def _stats(self, state: SymbolState, now_ms: int) -> dict[str, Any]:
        """The 24h figures: the service's own window, or the exchange's ticker meanwhile."""
        precision = state.precision
        stats = state.stats.snapshot(now_ms)
        ticker = state.ticker
        if not stats.complete and ticker is not None:
            change = ticker.c - ticker.o
            return {
                "last_price": stats.last_price if stats.last_price is not None else ticker.c,
                "open": ticker.o,
                "high": ticker.h,
                "low": ticker.l,
                "volume": precision.qty(ticker.v),
                "quote_volume": precision.quote(ticker.q),
                "trades": ticker.n,
                "change": precision.price(change),
                "change_pct": precision.percent(change / ticker.o * 100.0 if ticker.o else None),
                "source": "ticker",
            }
        return {
            "last_price": stats.last_price,
            "open": stats.open_price,
            "high": stats.high,
            "low": stats.low,
            "volume": precision.qty(stats.volume),
            "quote_volume": precision.quote(stats.quote_volume),
            "trades": stats.trade_count,
            "change": precision.price(stats.price_change),
            "change_pct": precision.percent(stats.price_change_percent),
            "source": "trades" if stats.complete else "partial window",
        }
