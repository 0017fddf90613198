"""Trades of one symbol over A/B lines, passed on in id order.

Each line carries every trade; a line that reconnects misses the trades of its
outage, which the other line still delivers, possibly later. Passing a trade
on as soon as one line has it would then publish the ids after a hole before
the hole's own trades arrive from the slower line: out of order, so a reader
that keeps ids increasing drops them. The same rule as for depth events
(``core/sync.py``): a trade that leaves a hole after the last id passed on
waits while another connected line may still fill it, that is while that
line has not delivered an id past the hole. It goes on when the hole is
filled, when every other line is past it or down, or when it has waited too
long (``max_wait_ms`` of exchange time behind the newest trade held, or
``max_held`` trades): then the hole is real and the trade sequence
(``core/trades.py``) records it as a gap. The very first trade waits the same
way: before it, every id is a hole another line may fill. Duplicates and everything else are
passed on at once: judging them is the trade sequence's job. Clock-free.
"""

from __future__ import annotations

import bisect
from typing import Generic

from market_data.core.trades import T

#: Trades held at most while a line may still fill a hole before them.
MAX_HELD = 100
#: Longest a trade waits, in exchange time behind the newest trade held (ms).
MAX_WAIT_MS = 1_000


class TradeLines(Generic[T]):
    """Orders one symbol's trades across ``lines`` feed lines."""

    def __init__(
        self, lines: int, max_held: int = MAX_HELD, max_wait_ms: int = MAX_WAIT_MS
    ) -> None:
        self.max_held = max_held
        self.max_wait_ms = max_wait_ms
        self._line_last = [0] * lines  # highest trade id each line delivered
        self._down: set[int] = set(range(lines))
        self._held: list[T] = []  # waiting, by id
        self._passed: int | None = None  # highest id passed on
        #: Trades that waited for another line (counted once each).
        self.waited = 0

    @property
    def held(self) -> int:
        return len(self._held)

    def on_trade(self, trade: T, line: int) -> list[T]:
        """The trades to pass on now, in id order (often just ``[trade]``)."""
        a = trade.a
        if a > self._line_last[line]:
            self._line_last[line] = a
        passed = self._passed
        if not self._held and passed is not None and a <= passed + 1:
            if a > passed:
                self._passed = a
            return [trade]
        ids = [held.a for held in self._held]
        index = bisect.bisect_left(ids, a)
        if index < len(ids) and ids[index] == a:  # a copy of one held, from another line
            return [*self._release(), trade]  # the copy after it: the trade sequence drops it
        self._held.insert(index, trade)
        out = self._release()
        if self._held and trade in self._held:
            self.waited += 1
        return out

    def overdue(self, now_ms: int) -> list[T]:
        """Trades that waited ``max_wait_ms`` by the local clock (a quiet symbol: no newer
        trade comes to push them on), and what they release."""
        held = self._held
        out: list[T] = []
        while held and now_ms - held[0].T > self.max_wait_ms:
            head = held.pop(0)
            out.append(head)
            if self._passed is None or head.a > self._passed:
                self._passed = head.a
            out.extend(self._release())
        return out

    def flush(self) -> list[T]:
        """Everything held, in id order (the service stops)."""
        held, self._held = self._held, []
        if held:
            self._passed = max(self._passed or 0, held[-1].a)
        return held

    def line_up(self, line: int) -> None:
        self._down.discard(line)

    def line_down(self, line: int) -> list[T]:
        """A line broke: nothing waits for it any more."""
        self._down.add(line)
        return self._release()

    def _release(self) -> list[T]:
        out: list[T] = []
        held = self._held
        while held:
            head = held[0]
            passed = self._passed
            if not (
                (passed is not None and head.a <= passed + 1)
                or len(held) > self.max_held
                or held[-1].T - head.T > self.max_wait_ms
                or not self._may_fill(head.a - 1)
            ):
                break
            held.pop(0)
            out.append(head)
            if passed is None or head.a > passed:
                self._passed = head.a
        return out

    def _may_fill(self, below: int) -> bool:
        """Whether a connected line has not yet delivered an id up to ``below``."""
        return any(
            last < below for line, last in enumerate(self._line_last) if line not in self._down
        )
