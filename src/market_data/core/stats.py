"""Rolling 24h statistics of one symbol, from its trades, in bounded memory.

Trades are summed into fixed time buckets (one minute by default). Running sums
gain a trade in O(1) and lose a whole bucket in O(1) when it leaves the window;
the high and the low over the window come from monotonic deques of bucket
extremes, so they are recomputed correctly when the bucket holding the extreme
expires. At most ``window_ms // bucket_ms + 1`` buckets (1441) are ever held.

Window edge (granularity): at time ``now`` the window holds every trade whose
bucket starts at or after ``floor_to_bucket(now - window_ms)``. No trade younger
than 24h is ever dropped; a trade up to one bucket (one minute) older than 24h
may still be counted. ``Stats24h.window_start_ms`` reports that boundary.

Time is passed in. The tracker's clock is the latest of every ``now_ms`` given
to :meth:`Rolling24h.advance` / :meth:`Rolling24h.snapshot` and every trade
timestamp seen, so a clock that steps back never revives expired buckets.

Out-of-order trades: a trade older than the newest one but still inside the
window is added to the bucket of its own timestamp (not the newest bucket), so
it expires exactly when an in-order trade of the same time would. A trade older
than the window is ignored and counted in ``ignored_old_trades``.

Backfill: the window can be filled from the exchange's own 1-minute totals
(klines) with :meth:`Rolling24h.replace_minutes`, which replaces whole buckets:
the service gives it only minutes that are closed and that live trades do not
cover alone, so no trade is counted twice. ``coverage_start_ms`` says from when
on every trade is included (None: only since the first live trade), and
``Stats24h.complete`` whether that covers the whole window.

Sums are kept in floats: subtracting an expired bucket can leave a rounding
residue of about 1e-16 of the largest total seen; the sums are reset to exactly
zero whenever the window becomes empty.
"""

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

DAY_MS = 86_400_000
MINUTE_MS = 60_000


class Stats24h(msgspec.Struct, frozen=True, kw_only=True):
    """The 24h statistics of one symbol at one instant.

    With an empty window ``trade_count``, ``volume`` and ``quote_volume`` are 0
    and ``open_price``, ``high`` and ``low`` are None. ``last_price`` is kept
    across an empty window: it is the price of the newest trade ever seen (None
    only before the first trade), because the last traded price stays the best
    known price; use ``trade_count == 0`` to tell that nothing traded in 24h.
    """

    last_price: float | None  # price of the newest trade seen (by timestamp)
    last_trade_ms: int | None  # timestamp of that trade
    open_price: float | None  # price of the oldest trade in the window
    high: float | None  # highest trade price in the window
    low: float | None  # lowest trade price in the window
    volume: float  # base-asset volume traded in the window
    quote_volume: float  # quote-asset volume (sum of price * qty) in the window
    trade_count: int  # raw trades in the window (as the exchange counts them)
    window_start_ms: int  # trades at or after this time are in the window
    updated_ms: int  # end of the window: the tracker's clock (see module doc)
    complete: bool = False  # every trade since window_start_ms is included
    covered_from_ms: int | None = None  # every trade since this time is included

    @property
    def price_change(self) -> float | None:
        """``last_price - open_price``, None when the window is empty."""
        if self.open_price is None or self.last_price is None:
            return None
        return self.last_price - self.open_price

    @property
    def price_change_percent(self) -> float | None:
        """Change from the open in percent, None when the window is empty or opened at 0."""
        change = self.price_change
        if change is None or not self.open_price:
            return None
        return 100.0 * change / self.open_price


@dataclass(frozen=True, slots=True)
class MinuteTotals:
    """The exchange's totals of one minute (a 1-minute kline)."""

    start_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    count: int  # raw trades


class _Bucket:
    """Aggregate of the trades whose timestamps fall in one bucket."""

    __slots__ = ("volume", "quote_volume", "count", "high", "low", "first_ms", "first_price")

    def __init__(self, price: float, ts_ms: int) -> None:
        self.volume = 0.0
        self.quote_volume = 0.0
        self.count = 0
        self.high = price
        self.low = price
        self.first_ms = ts_ms
        self.first_price = price


class _SlidingMax:
    """Maximum of per-bucket values over a sliding window of buckets.

    A monotonic deque of ``(bucket, value)``: buckets ascending, values strictly
    descending. A bucket is left out while a newer bucket has a value at least
    as large, since it can never be the maximum again before that one expires.
    Updating the newest bucket is O(1) amortised; a late update of an older
    bucket scans from the newest end, so its cost grows with how late it is.
    """

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[tuple[int, float]] = deque()

    def raise_to(self, bucket: int, value: float) -> None:
        """Record that ``bucket``'s value grew to ``value``."""
        queue = self._queue
        position = len(queue)
        while position > 0 and queue[position - 1][0] > bucket:
            position -= 1
        if position < len(queue) and queue[position][1] >= value:
            return  # a newer bucket is at least as high: this one stays dominated
        if position > 0 and queue[position - 1][0] == bucket:
            del queue[position - 1]
            position -= 1
        while position > 0 and queue[position - 1][1] <= value:
            del queue[position - 1]
            position -= 1
        if position == len(queue):
            queue.append((bucket, value))
        else:
            queue.insert(position, (bucket, value))

    def expire_before(self, bucket: int) -> None:
        """Forget buckets older than ``bucket``."""
        queue = self._queue
        while queue and queue[0][0] < bucket:
            queue.popleft()

    def clear(self) -> None:
        self._queue.clear()

    @property
    def value(self) -> float | None:
        return self._queue[0][1] if self._queue else None


class Rolling24h:
    """Sliding-window trade statistics of one symbol (see the module doc).

    ``window_ms`` and ``bucket_ms`` exist for tests and other windows; the
    service uses the defaults (24h of one-minute buckets).
    """

    def __init__(self, window_ms: int = DAY_MS, bucket_ms: int = MINUTE_MS) -> None:
        if bucket_ms <= 0 or window_ms < bucket_ms:
            raise ValueError(f"need 0 < bucket_ms <= window_ms, got {bucket_ms=} {window_ms=}")
        self._window_ms = window_ms
        self._bucket_ms = bucket_ms
        self._buckets: dict[int, _Bucket] = {}
        self._order: deque[int] = deque()  # bucket numbers, ascending
        self._highs = _SlidingMax()
        self._negated_lows = _SlidingMax()
        self._volume = 0.0
        self._quote_volume = 0.0
        self._count = 0
        self._clock_ms: int | None = None
        self._start_bucket: int | None = None
        self._last_price: float | None = None
        self._last_trade_ms: int | None = None
        self.ignored_old_trades = 0
        #: Every trade since this time is included (set by a backfill); None: unknown.
        self.coverage_start_ms: int | None = None
        self._replaced: set[int] = set()  # buckets that hold the exchange's own totals

    @property
    def max_buckets(self) -> int:
        """Upper bound of :attr:`bucket_count`."""
        return -(-self._window_ms // self._bucket_ms) + 1

    @property
    def bucket_count(self) -> int:
        """Buckets currently held (only buckets that received a trade exist)."""
        return len(self._buckets)

    def on_trade(
        self, price: float, qty: float, ts_ms: int, count: int = 1, late: bool = False
    ) -> None:
        """Add one trade (``count`` raw trades: an aggTrade's ``l - f + 1``); O(1) amortised.

        ``late``: a trade that arrived after a gap it fills; a minute replaced by the
        exchange's totals already holds it, so it is not added there again.
        """
        if late and ts_ms // self._bucket_ms in self._replaced:
            return
        if self.coverage_start_ms is None:
            self.coverage_start_ms = ts_ms  # from here on, live trades include every trade
        if self._clock_ms is None or ts_ms > self._clock_ms:
            self.advance(ts_ms)
        bucket_number = ts_ms // self._bucket_ms
        assert self._start_bucket is not None  # set by advance()
        if bucket_number < self._start_bucket:
            self.ignored_old_trades += 1
            return
        bucket = self._buckets.get(bucket_number)
        if bucket is None:
            bucket = self._buckets[bucket_number] = _Bucket(price, ts_ms)
            self._insert_in_order(bucket_number)
            self._highs.raise_to(bucket_number, price)
            self._negated_lows.raise_to(bucket_number, -price)
        else:
            if price > bucket.high:
                bucket.high = price
                self._highs.raise_to(bucket_number, price)
            if price < bucket.low:
                bucket.low = price
                self._negated_lows.raise_to(bucket_number, -price)
            if ts_ms < bucket.first_ms:
                bucket.first_ms = ts_ms
                bucket.first_price = price
        quote = price * qty
        bucket.volume += qty
        bucket.quote_volume += quote
        bucket.count += count
        self._volume += qty
        self._quote_volume += quote
        self._count += count
        if self._last_trade_ms is None or ts_ms >= self._last_trade_ms:
            self._last_trade_ms = ts_ms
            self._last_price = price

    @property
    def complete_now(self) -> bool:
        """Whether the window as of the tracker's clock includes every trade."""
        coverage = self.coverage_start_ms
        if coverage is None or self._start_bucket is None:
            return False
        return coverage <= self._start_bucket * self._bucket_ms

    def replace_minutes(self, minutes: Iterable[MinuteTotals]) -> int:
        """Replace whole buckets with the exchange's totals; returns how many were taken.

        Buckets older than the window are skipped. Sums and extremes are
        recomputed, so a replaced bucket's old trades leave no trace.
        """
        taken = 0
        for minute in minutes:
            number = minute.start_ms // self._bucket_ms
            if self._start_bucket is not None and number < self._start_bucket:
                continue
            old = self._buckets.get(number)
            if old is not None:
                self._volume -= old.volume
                self._quote_volume -= old.quote_volume
                self._count -= old.count
            else:
                self._insert_in_order(number)
            bucket = _Bucket(minute.open, minute.start_ms)
            bucket.high, bucket.low = minute.high, minute.low
            bucket.volume, bucket.quote_volume, bucket.count = (
                minute.volume, minute.quote_volume, minute.count,
            )  # fmt: skip
            self._buckets[number] = bucket
            self._replaced.add(number)
            self._volume += bucket.volume
            self._quote_volume += bucket.quote_volume
            self._count += bucket.count
            if self._last_trade_ms is None or minute.start_ms + self._bucket_ms - 1 > (
                self._last_trade_ms
            ):
                self._last_trade_ms = minute.start_ms + self._bucket_ms - 1
                self._last_price = minute.close
            taken += 1
        if taken:
            self._rebuild_extremes()
        return taken

    def _rebuild_extremes(self) -> None:
        self._highs.clear()
        self._negated_lows.clear()
        for number in self._order:
            bucket = self._buckets[number]
            self._highs.raise_to(number, bucket.high)
            self._negated_lows.raise_to(number, -bucket.low)

    def advance(self, now_ms: int) -> None:
        """Move the clock to ``now_ms`` (if later) and drop the buckets that left the window."""
        if self._clock_ms is not None and now_ms <= self._clock_ms:
            return
        self._clock_ms = now_ms
        start = (now_ms - self._window_ms) // self._bucket_ms
        if self._start_bucket is not None and start <= self._start_bucket:
            return
        self._start_bucket = start
        order = self._order
        while order and order[0] < start:
            number = order.popleft()
            self._replaced.discard(number)
            expired = self._buckets.pop(number)
            self._volume -= expired.volume
            self._quote_volume -= expired.quote_volume
            self._count -= expired.count
        if order:
            self._highs.expire_before(start)
            self._negated_lows.expire_before(start)
        else:
            self._volume = self._quote_volume = 0.0
            self._count = 0
            self._highs.clear()
            self._negated_lows.clear()

    def snapshot(self, now_ms: int) -> Stats24h:
        """Statistics of the window ending at ``now_ms`` (or at the clock, if later)."""
        self.advance(now_ms)
        assert self._clock_ms is not None and self._start_bucket is not None
        negated_low = self._negated_lows.value
        first = self._buckets[self._order[0]] if self._order else None
        coverage = self.coverage_start_ms
        return Stats24h(
            last_price=self._last_price,
            last_trade_ms=self._last_trade_ms,
            open_price=first.first_price if first is not None else None,
            high=self._highs.value,
            low=-negated_low if negated_low is not None else None,
            volume=self._volume,
            quote_volume=self._quote_volume,
            trade_count=self._count,
            window_start_ms=self._start_bucket * self._bucket_ms,
            updated_ms=self._clock_ms,
            complete=coverage is not None and coverage <= self._start_bucket * self._bucket_ms,
            covered_from_ms=coverage,
        )

    def _insert_in_order(self, bucket_number: int) -> None:
        order = self._order
        if not order or bucket_number > order[-1]:
            order.append(bucket_number)
            return
        position = len(order)
        while position > 0 and order[position - 1] > bucket_number:
            position -= 1
        order.insert(position, bucket_number)
