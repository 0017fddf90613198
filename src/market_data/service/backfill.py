"""24 h figures from the first second: fill each symbol's window from 1-minute klines.

The live trades alone give "since the service started". At start, and after a
gap in a symbol's trade stream, one ``GET /fapi/v1/klines?interval=1m&limit=1441``
(weight 10) per symbol fills the window with the exchange's own totals. The
join counts no trade twice and misses none:

- the request is made in minute ``J`` (local clock); every closed minute before
  ``J`` replaces its bucket (live trades of those minutes are a subset of them);
- minute ``J`` itself is still open: its live trades stay, and once it has closed
  it is asked for again (one row, weight 1) and replaces its bucket, which by
  then holds every trade of ``J``;
- minutes after ``J`` are the live trades'.

Until the first backfill has answered (or failed), a symbol's ``market_data``
is not published, so no consumer ever reads "since start" as 24 h; if it
fails, ``market_data`` says ``window_complete: false`` and the ``@ticker``
figures are used. Backfills are below snapshots in priority: they wait while
more than half of the REST weight budget is used.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import aiohttp

from market_data.binance.decode import DecodeError, decode_klines
from market_data.binance.rest import RateLimitedError, RestError, rest_get
from market_data.binance.schemas import Kline
from market_data.core.backoff import backoff
from market_data.core.stats import DAY_MS, MINUTE_MS, MinuteTotals
from market_data.core.weights import WeightBudget, klines_weight
from market_data.ops.config import Config
from market_data.service.symbols import SymbolState

log = logging.getLogger(__name__)

#: Rows that cover the whole window (1441 one-minute buckets) with one request.
WINDOW_ROWS = DAY_MS // MINUTE_MS + 1
#: Seconds after a minute closes before its final row is asked for.
CLOSE_MARGIN_S = 2.0
#: Tries of a backfill before the symbol falls back to the @ticker figures.
ATTEMPTS = 4


def as_minutes(rows: Sequence[Kline]) -> list[MinuteTotals]:
    """The rows' totals; a minute without trades (the exchange sends them, with every
    price at the previous close) holds nothing and is left out."""
    return [
        MinuteTotals(
            r.open_time, r.open, r.high, r.low, r.close, r.volume, r.quote_volume, r.trades
        )
        for r in rows
        if r.trades
    ]


class StatsBackfill:
    """Runs the kline backfills of every symbol."""

    def __init__(
        self,
        config: Config,
        weights: WeightBudget,
        *,
        wall_clock: Callable[[], float],
        on_done: Callable[[SymbolState], None],
    ) -> None:
        self.config = config
        self.weights = weights
        self.wall_clock = wall_clock
        self._on_done = on_done
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}  # asked for again while one runs
        self.requests = 0
        self.failures = 0

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def request(self, state: SymbolState, reason: str) -> None:
        """Backfill ``state``'s window unless one is already running for it."""
        if self._session is None:
            return
        if state.symbol in self._tasks:
            self._wake[state.symbol].set()  # the running one fills the whole window again
            return
        log.debug("%s: 24h backfill (%s)", state.symbol, reason)
        self._wake[state.symbol] = asyncio.Event()
        self._tasks[state.symbol] = asyncio.create_task(
            self._backfill(state), name=f"backfill-{state.symbol}"
        )

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _backfill(self, state: SymbolState) -> None:
        wake = self._wake[state.symbol]
        try:
            join_ms = await self._fill(state)
            while join_ms is not None:
                close_s = (join_ms + MINUTE_MS) / 1000 + CLOSE_MARGIN_S
                try:  # until the open minute has closed, or a new gap asks for more
                    await asyncio.wait_for(wake.wait(), max(0.0, close_s - self.wall_clock()))
                except TimeoutError:
                    if await self._fill(state, start_ms=join_ms, limit=1) is None:
                        # Minute J holds only the trades since the join: not the whole day.
                        state.stats.coverage_start_ms = join_ms + MINUTE_MS
                        self._publish(state, stats_ready=True)
                    if not wake.is_set():
                        break
                wake.clear()
                join_ms = await self._fill(state)
        except Exception:  # a bug must not leave the figures unpublished
            log.exception("%s: 24h backfill failed", state.symbol)
        finally:
            if not state.stats_ready:
                state.stats_ready = True
                self._on_done(state)
            if self._tasks.get(state.symbol) is asyncio.current_task():
                del self._tasks[state.symbol]
                del self._wake[state.symbol]

    async def _fill(
        self, state: SymbolState, start_ms: int | None = None, limit: int = WINDOW_ROWS
    ) -> int | None:
        """Fetch and apply rows; returns the open minute ``J`` (None when it failed)."""
        cfg = self.config
        assert self._session is not None
        delays = backoff(cfg.reconnect_delay_s, cfg.max_reconnect_delay_s)
        weight = klines_weight(limit)
        params = {"symbol": state.symbol, "interval": "1m", "limit": str(limit)}
        if start_ms is not None:
            params["startTime"] = str(start_ms)
        for _ in range(ATTEMPTS):
            await self._wait_for_weight(weight)
            now_ms = int(self.wall_clock() * 1000)
            open_minute = now_ms - now_ms % MINUTE_MS
            try:
                self.requests += 1
                body, _ = await rest_get(
                    self._session, cfg.exchange_rest_url, "/fapi/v1/klines", params,
                    f"{state.symbol} klines", budget=self.weights, clock=self.wall_clock,
                )  # fmt: skip
                rows = decode_klines(body)
            except (RestError, DecodeError) as exc:
                self.failures += 1
                delay = next(delays)
                if isinstance(exc, RateLimitedError):  # the budget holds every request
                    delay = max(delay, exc.retry_after_s)
                log.warning("%s: %s; retrying in %.1fs", state.symbol, exc, delay)
                await asyncio.sleep(delay)
                continue
            closed = [m for m in as_minutes(rows) if m.start_ms < open_minute]
            stats = state.stats
            stats.advance(now_ms)
            stats.replace_minutes(closed)
            if start_ms is None:
                first = rows[0].open_time if rows else open_minute  # empty minutes count too
                stats.coverage_start_ms = first
                self._publish(state, stats_ready=True)
                log.info(
                    "%s: 24h window filled from %d one-minute klines",
                    state.symbol,
                    len(closed),
                    extra={"symbol": state.symbol, "minutes": len(closed)},
                )
            else:
                self._publish(state, stats_ready=state.stats_ready)
            return open_minute
        log.warning(
            "%s: no klines after %d tries: 24h figures from the @ticker stream until the "
            "next backfill",
            state.symbol,
            ATTEMPTS,
        )
        return None

    def _publish(self, state: SymbolState, stats_ready: bool) -> None:
        state.stats_ready = stats_ready
        self._on_done(state)  # the engine bumps the figures' revision and marks the symbol

    async def _wait_for_weight(self, weight: int) -> None:
        """Wait while the budget is more than half used: snapshots come first."""
        weights = self.weights
        while True:
            now = self.wall_clock()
            if not weights.half_used(now) and weights.try_acquire(weight, now) == 0:
                return
            await asyncio.sleep(1.0)
