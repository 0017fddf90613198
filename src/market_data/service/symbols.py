"""Per-symbol state: one book interface over the diff-depth sync and the partial fallback.

A symbol's book is a :class:`~market_data.core.sync.DepthSync` (diffs on a REST
snapshot) until REST is geo-blocked; then a
:class:`~market_data.core.partial.PartialDepthBook` replaces it. Everything
else in the service asks :class:`SymbolBook` and never which of the two it is.
"""

from dataclasses import dataclass, field

from market_data.binance.schemas import AggTrade, DepthUpdate, Ticker24h
from market_data.core.book import Level, OrderBook
from market_data.core.partial import PartialDepthBook
from market_data.core.precision import Precision
from market_data.core.state import BookState
from market_data.core.stats import Rolling24h
from market_data.core.sync import DepthSync, SyncOutput
from market_data.core.trade_lines import TradeLines
from market_data.core.trade_watch import TradeWatch
from market_data.core.trades import TradeSequence


class SymbolBook:
    """The book of one symbol, whichever way it is maintained."""

    __slots__ = ("sync", "partial", "halted", "_lines_down")

    def __init__(
        self,
        symbol: str,
        *,
        max_buffer: int,
        max_levels: int,
        audit_depth: int = 20,
        lines: int = 1,
    ) -> None:
        self.sync = DepthSync(
            symbol,
            max_buffer=max_buffer,
            max_levels=max_levels,
            audit_depth=audit_depth,
            lines=lines,
        )
        self.partial: PartialDepthBook | None = None
        #: The exchange lists the contract as not trading: published as HALTED, no levels.
        self.halted = False
        self._lines_down: set[int] = set(range(lines)) if lines > 1 else set()

    @property
    def _current(self) -> OrderBook:
        return self.partial.book if self.partial is not None else self.sync.book

    @property
    def state(self) -> BookState:
        if self.halted:
            return BookState.HALTED
        return self.partial.state if self.partial is not None else self.sync.state

    def halt(self) -> None:
        """The contract stopped trading: drop the book; it resyncs when trading resumes."""
        self.halted = True
        self.on_disconnect()

    def resume(self) -> None:
        """Trading again: the next depth event starts a fresh sync."""
        self.halted = False

    @property
    def applied(self) -> int:
        """Exchange updates applied to a correct book (diffs, or partial-depth messages)."""
        return self.sync.applied + (self.partial.applied if self.partial is not None else 0)

    @property
    def event_time_ms(self) -> int:
        """Exchange time (``E``) of the last event applied to the book; 0 before any."""
        last = self.partial.last_applied if self.partial is not None else self.sync.last_applied
        return last.E if isinstance(last, DepthUpdate) else 0

    @property
    def last_update_id(self) -> int:
        return self._current.last_update_id

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        return self._current.top(depth)

    def on_diff(self, update: DepthUpdate, line: int = 0) -> bool:
        """A diff-depth event; ``True`` when the book changed. Ignored in partial mode."""
        return self.partial is None and self.sync.on_depth(update, line)

    def on_partial(self, update: DepthUpdate) -> bool:
        """A partial-depth message; ``True`` when it replaced the book."""
        return self.partial is not None and self.partial.on_partial(update)

    def on_disconnect(self, line: int | None = None) -> None:
        """A line that carried the book broke (None: all); with none left it is not trusted."""
        if line is not None:
            self._lines_down.add(line)
        if self.partial is not None:
            every_line_down = line is None or len(self._lines_down) >= self.sync.lines
            if every_line_down or self.sync.lines == 1:
                self.partial.on_disconnect()
        else:
            self.sync.on_disconnect(line)

    def on_line_up(self, line: int) -> None:
        self._lines_down.discard(line)
        self.sync.on_line_up(line)

    def use_partial(self, levels: int) -> None:
        """Switch to partial depth (REST is unreachable); the diff book is dropped."""
        self.partial = PartialDepthBook(self.sync.symbol, levels)
        self.sync.on_disconnect()
        self.sync.drain()

    def use_diff(self) -> None:
        """Back to diff books (REST answers again): the next event starts a sync."""
        if self.partial is not None:
            self.partial.on_disconnect()
        self.partial = None

    def retire(self) -> None:
        """Nobody maintains the book any more (shutdown): mark it not live."""
        if self.partial is not None:
            self.partial.on_disconnect()
        self.sync.on_disconnect()
        self.sync.drain()

    @property
    def has_outputs(self) -> bool:
        return self.sync.has_outputs

    def drain(self) -> list[SyncOutput]:
        return self.sync.drain()


@dataclass
class SymbolState:
    """Everything the service keeps for one symbol."""

    symbol: str
    book: SymbolBook
    stats: Rolling24h = field(default_factory=Rolling24h)
    updated_at: float = 0.0  # local monotonic time the changed book was last published
    trades: int = 0
    #: The highest trade id this instance sent to Redis (while its lease allowed).
    published_trade_id: int = 0
    #: The highest trade id this instance handed to its own outputs (ring, page).
    local_trade_id: int = 0
    #: Which trades to take (duplicates, late fills, hostile frames, restarts).
    trade_ids: TradeSequence[AggTrade] = field(default_factory=TradeSequence)
    #: A/B lines: trades passed on in id order across the lines (None with one line).
    trade_lines: TradeLines[AggTrade] | None = None
    #: Decimals of the contract's tick and step sizes (exchangeInfo), for published sums.
    precision: Precision = field(default_factory=Precision)
    #: False while the first 24h backfill is pending: market_data is not published yet.
    stats_ready: bool = True
    #: The latest ``@ticker`` event: the 24h figures while the window is incomplete.
    ticker: Ticker24h | None = None
    #: Trades the ticker counts and no aggTrade brought: a silent trade stream.
    trade_watch: TradeWatch = field(default_factory=TradeWatch)
    #: Bumped when the 24h figures change other than by a trade (backfill, ticker).
    stats_revision: int = 0
    dirty: bool = False  # the book changed since it was last published
    market_dirty: bool = False  # a trade arrived since market data was last published
    # What the last market_data publication showed (best bid, best ask, trades seen)
    # and when (local monotonic ms): it is published again only when that changes,
    # or to refresh the key.
    market_signature: tuple[float | None, float | None, int, int] = (None, None, -1, 0)
    market_published_ms: float = -1e18

    @property
    def trade_gaps(self) -> int:
        """Trades missed (ids skipped, e.g. while a connection was down), less late fills."""
        return self.trade_ids.missing

    @property
    def duplicate_trades(self) -> int:
        """Re-delivered trades, dropped."""
        return self.trade_ids.duplicates

    @property
    def sync(self) -> DepthSync:
        """The diff-depth state machine (its counters are exported as metrics)."""
        return self.book.sync

    @property
    def partial(self) -> PartialDepthBook | None:
        return self.book.partial

    @property
    def state(self) -> BookState:
        return self.book.state

    @property
    def book_updates(self) -> int:
        return self.book.applied

    @property
    def event_time_ms(self) -> int:
        return self.book.event_time_ms

    @property
    def last_update_id(self) -> int:
        return self.book.last_update_id

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        return self.book.top(depth)
