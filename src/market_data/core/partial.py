"""Books fed by partial-depth streams (``<sym>@depth5/10/20@100ms``).

Used when the REST snapshot endpoint is unreachable (HTTP 451): every message
carries the whole top N, so it replaces the book instead of being applied as a
diff. It is a different product from the diff book (only N levels are known)
and is published with state ``PARTIAL``, never as ``LIVE``.
"""

from market_data.core.book import OrderBook
from market_data.core.state import BookState
from market_data.core.sync import MAX_ID_STEP, MAX_STALE_RUN, DepthDiff, Run


class PartialDepthBook:
    """The latest top-N levels of one symbol."""

    def __init__(self, symbol: str, levels: int) -> None:
        self.symbol = symbol
        self.levels = levels
        self.book = OrderBook(symbol, max_levels=levels)
        self.state = BookState.WAITING
        self.applied = 0
        #: The last message taken (its exchange time is the book's).
        self.last_applied: DepthDiff | None = None
        self.stale = 0
        self.rejected = 0
        self.implausible = 0
        self._stale_run = Run()

    def on_partial(self, ev: DepthDiff) -> bool:
        """Replace the book with this message; ``True`` when it was taken.

        Older messages (``u`` not above the last one) are stale and skipped,
        unless :data:`MAX_STALE_RUN` come in a row: then the stream's ids went
        backwards (a restart) and the message is taken, so the book never sits
        frozen while reported as ``partial``. A message more than
        :data:`MAX_ID_STEP` ids ahead, or crossed, is rejected and the previous
        book kept.
        """
        if self.state is BookState.PARTIAL:
            last = self.book.last_update_id
            if ev.u - last > MAX_ID_STEP:
                self.implausible += 1
                return False
            if ev.u <= last:
                self.stale += 1
                if self._stale_run.extend(self.applied) < MAX_STALE_RUN:
                    return False
        candidate = OrderBook(self.symbol, max_levels=self.levels)
        candidate.load(ev.b, ev.a, ev.u)
        if candidate.is_crossed():
            self.rejected += 1
            return False
        self.book = candidate
        self.state = BookState.PARTIAL
        self.applied += 1
        self.last_applied = ev
        return True

    def on_disconnect(self) -> None:
        """The top N is only as fresh as the last message: not trustworthy now."""
        self.book.clear()
        self.state = BookState.WAITING
