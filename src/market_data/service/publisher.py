"""Publication, conflated at the source: changed symbols go out once per event-loop pass.

Under load a symbol's book is encoded once per batch of frames rather than once
per frame, so outputs never lag. ``market_data`` (best bid/ask, last price, 24h
figures) goes out when its best prices or trades changed, and at least every
:data:`MARKET_DATA_REFRESH_MS` regardless, so its key never expires.
"""

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence

from market_data.core.book import Level
from market_data.outputs.sinks import BookUpdate, MarketDataUpdate, Sink, Update
from market_data.service.symbols import SymbolState
from market_data.wire.payloads import market_data_payload, orderbook_payload

log = logging.getLogger(__name__)

#: ``market_data:{SYMBOL}`` is republished at least this often even when nothing
#: changed, so its 300 s key never expires on a quiet symbol and 24h figures age.
MARKET_DATA_REFRESH_MS = 30_000


class Publisher:
    """Marks changed symbols and flushes them to every sink once per loop pass.

    Two clocks, each for its own job: ``wall_clock`` (seconds since the epoch)
    stamps payloads; ``clock_ns`` (monotonic) measures freshness and refresh
    periods, so a wall clock that steps never lets a key expire.
    """

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        depth: int,
        wall_clock: Callable[[], float],
        clock_ns: Callable[[], int],
        sink_errors: Counter[str],
    ) -> None:
        self.sinks = list(sinks)
        self.depth = depth
        self.wall_clock = wall_clock
        self.clock_ns = clock_ns
        self.sink_errors = sink_errors
        #: Active/standby: publish to ``fenced`` outputs only while this says so (None: always).
        self.gate: Callable[[], bool] | None = None
        #: Active/standby: the fencing epoch every payload carries (None: no field).
        self.epoch: Callable[[], int] | None = None
        self.book_publishes = 0
        self._pending: dict[str, SymbolState] = {}  # symbols marked since the last flush
        self._flush_scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Flushes are scheduled on ``loop`` from now on."""
        self._loop = loop

    def mark(self, state: SymbolState, book: bool = True) -> None:
        """Schedule a publication: of the book (and market data), or market data only."""
        if book:
            state.dirty = True
        else:
            state.market_dirty = True
        self._pending[state.symbol] = state  # the flush visits only changed symbols
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Publish every changed symbol once: the latest book and market data."""
        self._flush_scheduled = False
        now_ms = int(self.wall_clock() * 1000)
        local_ns = self.clock_ns()
        pending = self._pending
        self._pending = {}
        for state in pending.values():
            try:
                if state.dirty:
                    state.dirty = False
                    bids, asks = self._publish_book(state, now_ms, local_ns)
                elif state.market_dirty:
                    book = state.book
                    bids, asks = book.top(1) if book.state.trusted else ([], [])
                else:
                    continue
                state.market_dirty = False
                self._publish_market_data(state, bids, asks, now_ms, local_ns)
            except Exception as exc:  # one symbol's failure must not stop the others' books
                self._flush_failed(state, exc)

    def _flush_failed(self, state: SymbolState, exc: Exception) -> None:
        """Count and log (rarely); the symbol's next change marks it again."""
        state.dirty = state.market_dirty = False  # else the engine never marks it again
        errors = self.sink_errors
        errors["publisher"] += 1
        if errors["publisher"] in (1, 10, 100, 1000) or errors["publisher"] % 10_000 == 0:
            log.error(
                "%s: publishing failed (%d so far): %r",
                state.symbol,
                errors["publisher"],
                exc,
                extra={"symbol": state.symbol, "errors": errors["publisher"]},
            )

    def _publish_book(
        self, state: SymbolState, now_ms: int, local_ns: int
    ) -> tuple[list[Level], list[Level]]:
        """Publish the top of the book; a book that is not live goes out without levels."""
        book = state.book  # the book itself: no delegating hop per read on this path
        book_state = book.state
        trusted = book_state.trusted
        bids, asks = book.top(self.depth) if trusted else ([], [])
        last_id = book.last_update_id if trusted else 0
        if trusted:
            state.updated_at = local_ns / 1e9  # freshness, once per publication not per event
        event_time_ms = book.event_time_ms
        payload = orderbook_payload(
            state.symbol,
            bids,
            asks,
            last_update_id=last_id,
            event_time_ms=event_time_ms,
            now_ms=now_ms,
            state=book_state,
            epoch=self.epoch() if self.epoch is not None else None,
        )
        self.publish(
            BookUpdate(
                state.symbol, book_state, last_id, event_time_ms, local_ns, bids, asks, payload
            )
        )
        self.book_publishes += 1
        return bids, asks

    def _publish_market_data(
        self,
        state: SymbolState,
        bids: list[Level],
        asks: list[Level],
        now_ms: int,
        local_ns: int,
    ) -> None:
        """Publish market data when best prices, trades or 24h figures changed, or to refresh.

        Not before the symbol's first 24h backfill answered (``stats_ready``).
        """
        if not state.stats_ready:
            return
        best_bid = bids[0][0] if bids else None
        best_ask = asks[0][0] if asks else None
        signature = (best_bid, best_ask, state.trades, state.stats_revision)
        local_ms = local_ns / 1e6
        if (
            signature == state.market_signature
            and local_ms - state.market_published_ms < MARKET_DATA_REFRESH_MS
        ):
            return
        state.market_signature = signature
        state.market_published_ms = local_ms
        payload = market_data_payload(
            state.symbol,
            best_bid=best_bid,
            best_ask=best_ask,
            stats=state.stats.snapshot(now_ms),
            now_ms=now_ms,
            precision=state.precision,
            ticker=state.ticker,
            epoch=self.epoch() if self.epoch is not None else None,
        )
        self.publish(MarketDataUpdate(state.symbol, payload))

    def publish(self, update: Update, fenced: bool = True, local: bool = True) -> bool:
        """Hand an update to every output; one failing output never stops the others.

        A standby (``gate`` closed) skips the outputs every instance of its group
        shares (``fenced``: Redis), where another instance publishes; its own
        outputs (the shared-memory ring, the web view, history) keep every update.
        ``fenced=False`` or ``local=False`` leaves out that kind of output. Returns
        whether the fenced outputs were written.
        """
        gate = self.gate
        to_fenced = fenced and (gate is None or gate())
        every = to_fenced and local  # the usual case: no output to look at twice
        for sink in self.sinks:
            if not every and not (to_fenced if sink.fenced else local):
                continue
            try:
                sink.publish(update)
            except Exception as exc:  # an output bug or a full ring: count, log rarely
                name = type(sink).__name__
                errors = self.sink_errors
                errors[name] += 1
                if errors[name] in (1, 10, 100, 1000) or errors[name] % 10_000 == 0:
                    log.error(
                        "%s failed to publish (%d so far): %s",
                        name,
                        errors[name],
                        exc,
                        extra={"sink": name, "errors": errors[name]},
                    )
        return to_fenced
