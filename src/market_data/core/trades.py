"""Which aggregate trades of one symbol to take: duplicates, late fills, poison, restarts.

Aggregate trade ids (``a``) are consecutive per symbol. The rules, clock-free
(the caller passes the local time):

- An id above the last one taken, by a plausible step, is taken; the ids it
  skips are remembered as a gap (a bounded list of intervals).
- An id at or below the last one is a re-delivery (dropped), unless it lies in
  a remembered gap: then it is a late trade filling the gap, and taken. Either
  way its time is not after the newest trade taken (the exchange's trade times
  never decrease with the id); one that is belongs to a restarted sequence.
- A trade that does not fit (an id far above or below the sequence, a
  timestamp far from the local clock, an absurd raw-trade count) is *held*,
  never taken on its own: one hostile frame moves no state. If the exchange
  really restarted its ids (or the local clock is wrong), the trades that
  follow fit *each other*: held trades form chains (increasing ids, each a
  plausible step from the one before), and the first chain ``confirm`` long
  moves the sequence to it; every trade of that chain is taken then, so
  nothing is lost. A trade that fits the sequence ends every chain: their
  trades are rejected (counted).
- The very first trade has no sequence to fit, so it waits for a second one
  that fits it (a chain of two): a hostile first frame is never taken. This
  delays the first trade after a start until the next one arrives.

Plausible step: at most ``max_step`` ids plus ``max_rate`` ids per second of
exchange time since the last trade taken, so a real jump after a long outage
fits and an id of 10**15 never does. Time: a trade may be at most
``max_skew_ms`` behind the local clock and 5 s ahead of it (a future time
would move the 24h clock), after correcting for the offset learnt when a run
was confirmed (so a wrong local clock costs ``confirm`` trades of
delay once, not every trade).
"""

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

#: Ids a trade may skip ahead of the last one, whatever the time since.
MAX_ID_STEP = 100_000
#: Further ids allowed per second since the last trade (far above any symbol's rate).
MAX_ID_RATE_PER_S = 10_000
#: A trade's time may be this far behind the local clock (a stream that stalled) ...
MAX_SKEW_MS = 10 * 60_000
#: ... and only this far ahead of it: a future time would move the 24h clock.
MAX_AHEAD_MS = 5_000
#: Raw trades one aggregate trade may cover (``l - f + 1``).
MAX_RAW_TRADES = 1_000_000
#: Consistent trades in a row that move the sequence (a restart, or a wrong clock).
CONFIRM_RUN = 3
#: Gaps (missing id intervals) remembered for late fills.
MAX_GAPS = 64
#: Chains of held trades kept at once (the oldest is rejected beyond).
MAX_CHAINS = 4
#: Largest id step between two trades of one chain (real consecutive trades step by 1).
CHAIN_STEP = 1_000


class Trade(Protocol):
    """What the rules read of an aggregate trade."""

    @property
    def a(self) -> int: ...  # aggregate trade id
    @property
    def f(self) -> int: ...  # first raw trade id
    @property
    def l(self) -> int: ...  # last raw trade id  # noqa: E741, E743 - the exchange's name
    @property
    def T(self) -> int: ...  # trade time, ms  # noqa: N802


T = TypeVar("T", bound=Trade)


class TradeSequence(Generic[T]):
    """The trade-id sequence of one symbol."""

    def __init__(
        self,
        *,
        confirm: int = CONFIRM_RUN,
        max_step: int = MAX_ID_STEP,
        max_rate_per_s: int = MAX_ID_RATE_PER_S,
        max_skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        self.confirm = confirm
        self.max_step = max_step
        self.max_rate_per_s = max_rate_per_s
        self.max_skew_ms = max_skew_ms
        self.last_id: int | None = None
        self.last_ms = 0
        self.clock_offset_ms = 0  # exchange time minus local time, learnt from a confirmed run
        self._gaps: list[tuple[int, int]] = []  # missing ids, inclusive intervals, oldest first
        self._chains: list[list[T]] = []
        # Counters
        self.taken = 0
        self.duplicates = 0
        self.missing = 0  # ids skipped (trades not received), less those filled late
        self.filled = 0  # late trades that filled a gap
        self.rejected = 0  # held trades that no run confirmed
        self.restarts = 0  # runs that moved the sequence

    @property
    def held(self) -> int:
        return sum(len(chain) for chain in self._chains)

    def on_trade(self, trade: T, now_ms: int) -> Sequence[T]:
        """The trades to take now, oldest first: ``(trade,)``, ``()`` or a confirmed run."""
        last = self.last_id
        a = trade.a
        fits_ahead = last is not None and last < a <= last + self._step(trade.T)
        if fits_ahead and self._in_time(trade, now_ms):
            assert last is not None
            if a != last + 1:
                self._remember_gap(last + 1, a - 1)
            return self._take(trade)
        # Trade times never decrease with the id: an id already passed with a time
        # newer than every trade taken is no re-delivery but a restarted sequence.
        redelivery = trade.T <= self.last_ms
        if last is not None and a <= last and last - a <= self._step(trade.T) and redelivery:
            if self._fill(a):
                self.filled += 1
                self.missing -= 1
                self.taken += 1
                return (trade,)
            self.duplicates += 1
            return ()
        return self._hold(trade, now_ms, 2 if last is None else self.confirm)

    # ------------------------------------------------------------------ internals

    def _step(self, ts_ms: int) -> int:
        elapsed_s = max(0, ts_ms - self.last_ms) // 1000
        return self.max_step + self.max_rate_per_s * elapsed_s

    def _in_time(self, trade: T, now_ms: int) -> bool:
        if not 0 < trade.l - trade.f + 1 <= MAX_RAW_TRADES:
            return False
        offset = trade.T - now_ms - self.clock_offset_ms
        return -self.max_skew_ms <= offset <= MAX_AHEAD_MS

    def _take(self, trade: T) -> Sequence[T]:
        if self._chains:
            self._reject_chains()
        self.last_id = trade.a
        if trade.T > self.last_ms:
            self.last_ms = trade.T
        self.taken += 1
        return (trade,)

    def _hold(self, trade: T, now_ms: int, needed: int) -> Sequence[T]:
        if not 0 < trade.l - trade.f + 1 <= MAX_RAW_TRADES:
            self.rejected += 1  # no run of real trades has one of these
            return ()
        chain = next((c for c in self._chains if self._follows(c[-1], trade, now_ms)), None)
        if chain is None:
            chain = [trade]
            self._chains.append(chain)
            if len(self._chains) > MAX_CHAINS:
                self.rejected += len(self._chains.pop(0))
        else:
            chain.append(trade)
        if len(chain) < needed:
            return ()
        self._chains.remove(chain)
        self._reject_chains()
        if self.last_id is not None:
            self.restarts += 1
        self._gaps.clear()
        for before, after in zip(chain, chain[1:], strict=False):
            if after.a != before.a + 1:
                self._remember_gap(before.a + 1, after.a - 1)
        self.last_id = chain[-1].a
        self.last_ms = max(t.T for t in chain)
        offset = chain[-1].T - now_ms - self.clock_offset_ms
        if not -self.max_skew_ms <= offset <= MAX_AHEAD_MS:
            self.clock_offset_ms = chain[-1].T - now_ms
        self.taken += len(chain)
        return chain

    def _follows(self, previous: T, trade: T, now_ms: int) -> bool:
        """Whether ``trade`` may come next after ``previous`` in one real sequence.

        Both in time for the local clock, or both out of it (a clock that is off):
        a future-dated frame never joins a chain of trades the clock agrees with.
        """
        return (
            previous.a < trade.a <= previous.a + CHAIN_STEP
            and abs(trade.T - previous.T) <= self.max_skew_ms
            and self._in_time(previous, now_ms) == self._in_time(trade, now_ms)
        )

    def _reject_chains(self) -> None:
        self.rejected += sum(len(chain) for chain in self._chains)
        self._chains.clear()

    def _remember_gap(self, low: int, high: int) -> None:
        self.missing += high - low + 1
        self._gaps.append((low, high))
        if len(self._gaps) > MAX_GAPS:
            del self._gaps[0]

    def _fill(self, trade_id: int) -> bool:
        """Take ``trade_id`` out of the remembered gaps; False if it is in none."""
        gaps = self._gaps
        for index in range(len(gaps) - 1, -1, -1):
            low, high = gaps[index]
            if low <= trade_id <= high:
                halves = ((low, trade_id - 1), (trade_id + 1, high))
                gaps[index : index + 1] = [(lo, hi) for lo, hi in halves if lo <= hi]
                return True
        return False
