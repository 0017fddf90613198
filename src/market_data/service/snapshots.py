"""REST snapshots, fetched beside the stream readers within the weight budget.

One task per symbol that needs a snapshot: it asks until the book no longer
needs one, backs off on failure (longer when the exchange said 429), waits when
the client-side weight budget is used up, and reports HTTP 451 (geo-blocked) to
the service, which switches to partial depth. A task never blocks a reader.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

import aiohttp

from market_data.binance.decode import DecodeError, decode_snapshot
from market_data.binance.rest import (
    GeoBlockedError,
    RateLimitedError,
    SnapshotError,
    fetch_snapshot,
)
from market_data.core.backoff import backoff
from market_data.core.weights import WeightBudget, snapshot_weight
from market_data.ops.config import Config
from market_data.service.rest_hold import RestHoldFile
from market_data.service.symbols import SymbolState

log = logging.getLogger(__name__)


class SnapshotFetcher:
    """Runs the snapshot tasks of every symbol."""

    def __init__(
        self,
        config: Config,
        *,
        wall_clock: Callable[[], float],
        failures: Counter[str],
        on_outputs: Callable[[SymbolState], None],
        on_geo_blocked: Callable[[str], None],
    ) -> None:
        self.config = config
        self.wall_clock = wall_clock
        self.failures = failures
        self.weights = WeightBudget(
            config.rest_weight_budget_per_minute,
            share=config.rest_weight_share,
            shared=RestHoldFile.for_url(config.exchange_rest_url),
        )
        self._on_outputs = on_outputs
        self._on_geo_blocked = on_geo_blocked
        self._session: aiohttp.ClientSession | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.enabled = True
        #: Called with (symbol, REST body) of each snapshot right before a book is fed it.
        self.on_used: Callable[[str, bytes], None] | None = None

    def start(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    def request(self, state: SymbolState, reason: str) -> None:
        """Start fetching for ``state`` unless a fetch for it is already running."""
        if state.symbol in self._tasks or not self.enabled or self._session is None:
            return
        log.debug("%s: snapshot needed (%s)", state.symbol, reason)
        self._tasks[state.symbol] = asyncio.create_task(
            self._fetch_until_done(state), name=f"snapshot-{state.symbol}"
        )

    async def stop(self) -> None:
        """Cancel every fetch and wait for them to end."""
        self.enabled = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _fetch_until_done(self, state: SymbolState) -> None:
        """Fetch until the book no longer needs a snapshot, backing off on failure."""
        cfg = self.config
        weight = snapshot_weight(cfg.snapshot_limit)
        delays = backoff(cfg.reconnect_delay_s, cfg.max_reconnect_delay_s)
        session = self._session
        assert session is not None
        try:
            while state.sync.snapshot_pending and self.enabled:
                now = self.wall_clock()
                wait = self.weights.try_acquire(weight, now)
                if wait > 0:
                    why = (
                        "the exchange's Retry-After (a 429 or 418, maybe another process's)"
                        if self.weights.held_for(now) > 0
                        else "REST weight budget used up"
                    )
                    log.warning("%s: waiting %.1fs", why, wait, extra={"wait_s": wait})
                    await asyncio.sleep(wait)
                    continue
                try:
                    body, _ = await fetch_snapshot(
                        session,
                        cfg.exchange_rest_url,
                        state.symbol,
                        cfg.snapshot_limit,
                        budget=self.weights,
                        clock=self.wall_clock,
                    )
                    snapshot = decode_snapshot(body)
                except GeoBlockedError as exc:
                    self.failures["geo_blocked"] += 1
                    self._on_geo_blocked(str(exc))
                    return
                except (SnapshotError, DecodeError) as exc:
                    kind = "rate_limited" if isinstance(exc, RateLimitedError) else "error"
                    self.failures[kind] += 1
                    delay = next(delays)
                    if isinstance(exc, RateLimitedError):  # the budget holds every request
                        delay = max(delay, exc.retry_after_s)
                    log.warning(
                        "%s: %s; retrying in %.2fs",
                        state.symbol,
                        exc,
                        delay,
                        extra={"symbol": state.symbol, "retry_s": round(delay, 3)},
                    )
                    state.sync.on_snapshot_failed(str(exc))
                    self._on_outputs(state)
                    await asyncio.sleep(delay)
                    continue
                if self.on_used is not None:
                    self.on_used(state.symbol, body)
                state.sync.on_snapshot(snapshot)
                self._on_outputs(state)
                if state.sync.snapshot_pending:
                    await asyncio.sleep(next(delays))
        except Exception:  # a bug must not leave the book waiting forever
            log.exception("%s: snapshot task failed; asking again", state.symbol)
            self.failures["internal"] += 1
            await asyncio.sleep(next(delays))  # still registered: stop() cancels it here
            self._tasks.pop(state.symbol, None)
            state.sync.on_snapshot_failed("internal error")
            self._on_outputs(state)
        finally:
            if self._tasks.get(state.symbol) is asyncio.current_task():
                self._tasks.pop(state.symbol, None)
