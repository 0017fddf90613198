import math
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.core.stats import DAY_MS, MINUTE_MS, MinuteTotals, Rolling24h, Stats24h

HOUR_MS = 3_600_000


@dataclass
class Reference:
    """Brute force: keep every trade, filter by the window at bucket granularity."""

    window_ms: int = DAY_MS
    bucket_ms: int = MINUTE_MS
    trades: list[tuple[float, float, int]] = field(default_factory=list)
    clock: int | None = None
    ignored: int = 0

    def start_bucket(self) -> int:
        assert self.clock is not None
        return (self.clock - self.window_ms) // self.bucket_ms

    def on_trade(self, price: float, qty: float, ts: int) -> None:
        self.clock = ts if self.clock is None else max(self.clock, ts)
        if ts // self.bucket_ms < self.start_bucket():
            self.ignored += 1
            return
        self.trades.append((price, qty, ts))

    def snapshot(self, now: int) -> Stats24h:
        self.clock = now if self.clock is None else max(self.clock, now)
        start = self.start_bucket()
        inside = [t for t in self.trades if t[2] // self.bucket_ms >= start]
        last = None
        for trade in self.trades:
            if last is None or trade[2] >= last[2]:
                last = trade
        oldest = min(inside, key=lambda t: t[2]) if inside else None
        return Stats24h(
            last_price=last[0] if last else None,
            last_trade_ms=last[2] if last else None,
            open_price=oldest[0] if oldest else None,
            high=max((t[0] for t in inside), default=None),
            low=min((t[0] for t in inside), default=None),
            volume=math.fsum(t[1] for t in inside),
            quote_volume=math.fsum(t[0] * t[1] for t in inside),
            trade_count=len(inside),
            window_start_ms=start * self.bucket_ms,
            updated_ms=self.clock,
        )


def assert_same(actual: Stats24h, expected: Stats24h) -> None:
    assert actual.volume == pytest.approx(expected.volume, rel=1e-9, abs=1e-6)
    assert actual.quote_volume == pytest.approx(expected.quote_volume, rel=1e-9, abs=1e-6)
    exact = {"volume", "quote_volume"}
    coverage = {"complete", "covered_from_ms"}  # the backfill's business (tests below)
    for name in Stats24h.__struct_fields__:
        if name not in exact | coverage:
            assert getattr(actual, name) == getattr(expected, name), name


def test_empty_tracker_reports_nothing_traded() -> None:
    stats = Rolling24h().snapshot(DAY_MS)
    assert stats.trade_count == 0
    assert stats.volume == 0.0
    assert stats.high is None and stats.low is None and stats.open_price is None
    assert stats.last_price is None and stats.last_trade_ms is None
    assert stats.price_change is None and stats.price_change_percent is None
    assert stats.window_start_ms == 0
    assert stats.updated_ms == DAY_MS


def test_sums_and_extremes_of_a_few_trades() -> None:
    tracker = Rolling24h()
    t0 = 10 * DAY_MS
    tracker.on_trade(100.0, 2.0, t0)
    tracker.on_trade(105.0, 1.0, t0 + 1_000)
    tracker.on_trade(95.0, 3.0, t0 + 2 * MINUTE_MS)
    tracker.on_trade(101.0, 0.5, t0 + 3 * HOUR_MS)
    stats = tracker.snapshot(t0 + 4 * HOUR_MS)
    assert stats.trade_count == 4
    assert stats.volume == pytest.approx(6.5)
    assert stats.quote_volume == pytest.approx(200 + 105 + 285 + 50.5)
    assert (stats.open_price, stats.high, stats.low, stats.last_price) == (100, 105, 95, 101)
    assert stats.price_change == pytest.approx(1.0)
    assert stats.price_change_percent == pytest.approx(1.0)
    assert stats.last_trade_ms == t0 + 3 * HOUR_MS


def test_everything_expires_after_24h_but_the_last_price_is_kept() -> None:
    tracker = Rolling24h()
    t0 = 5 * DAY_MS + 123
    for i in range(100):
        tracker.on_trade(100.0 + i, 1.0, t0 + i * 1000)
    assert tracker.snapshot(t0 + DAY_MS - MINUTE_MS).trade_count == 100
    stats = tracker.snapshot(t0 + DAY_MS + 3 * MINUTE_MS)
    assert stats.trade_count == 0
    assert stats.volume == 0.0 and stats.quote_volume == 0.0
    assert stats.high is None and stats.low is None and stats.open_price is None
    assert stats.last_price == 199.0
    assert tracker.bucket_count == 0


def test_no_trade_younger_than_24h_is_dropped_and_at_most_one_bucket_older_is_kept() -> None:
    tracker = Rolling24h()
    trade_ms = 3 * DAY_MS + 30_000  # mid-minute
    tracker.on_trade(1.0, 1.0, trade_ms)
    assert tracker.snapshot(trade_ms + DAY_MS).trade_count == 1
    assert tracker.snapshot(trade_ms + DAY_MS + 29_999).trade_count == 1
    stats = tracker.snapshot(trade_ms + DAY_MS + 30_000)
    assert stats.trade_count == 0
    assert stats.window_start_ms == trade_ms + 30_000


def test_high_and_low_are_recomputed_when_the_extreme_bucket_expires() -> None:
    tracker = Rolling24h()
    t0 = 2 * DAY_MS
    tracker.on_trade(200.0, 1.0, t0)  # the high, expires first
    tracker.on_trade(50.0, 1.0, t0 + HOUR_MS)  # the low, expires second
    tracker.on_trade(120.0, 1.0, t0 + 2 * HOUR_MS)
    tracker.on_trade(80.0, 1.0, t0 + 3 * HOUR_MS)
    assert (tracker.snapshot(t0 + 4 * HOUR_MS).high, tracker.snapshot(t0).low) == (200, 50)
    stats = tracker.snapshot(t0 + DAY_MS + 30 * MINUTE_MS)
    assert (stats.high, stats.low, stats.open_price, stats.trade_count) == (120, 50, 50, 3)
    stats = tracker.snapshot(t0 + DAY_MS + HOUR_MS + 30 * MINUTE_MS)
    assert (stats.high, stats.low, stats.open_price, stats.trade_count) == (120, 80, 120, 2)


def test_a_late_trade_goes_to_its_own_bucket_and_expires_with_it() -> None:
    tracker = Rolling24h()
    t0 = 7 * DAY_MS
    tracker.on_trade(100.0, 1.0, t0 + 10 * MINUTE_MS)
    tracker.on_trade(300.0, 2.0, t0)  # ten minutes late, new high, new open
    stats = tracker.snapshot(t0 + 11 * MINUTE_MS)
    assert (stats.high, stats.open_price, stats.last_price, stats.trade_count) == (300, 300, 100, 2)
    stats = tracker.snapshot(t0 + DAY_MS + 5 * MINUTE_MS)
    assert (stats.high, stats.open_price, stats.trade_count, stats.volume) == (100, 100, 1, 1.0)


def test_trades_older_than_the_window_are_ignored_and_counted() -> None:
    tracker = Rolling24h()
    t0 = 4 * DAY_MS
    tracker.on_trade(100.0, 1.0, t0)
    tracker.on_trade(999.0, 5.0, t0 - DAY_MS - 2 * MINUTE_MS)
    stats = tracker.snapshot(t0)
    assert stats.trade_count == 1
    assert stats.high == 100.0
    assert tracker.ignored_old_trades == 1


def test_a_clock_that_steps_back_does_not_revive_expired_trades() -> None:
    tracker = Rolling24h()
    tracker.on_trade(10.0, 1.0, DAY_MS)
    assert tracker.snapshot(3 * DAY_MS).trade_count == 0
    stats = tracker.snapshot(DAY_MS)
    assert stats.trade_count == 0
    assert stats.updated_ms == 3 * DAY_MS


def test_memory_stays_bounded_under_a_steady_stream() -> None:
    tracker = Rolling24h()
    assert tracker.max_buckets == 1441
    peak = 0
    for second in range(0, 3 * 86_400, 20):
        tracker.on_trade(100.0 + second % 7, 0.1, second * 1000)
        peak = max(peak, tracker.bucket_count)
    assert peak == 1441
    stats = tracker.snapshot(3 * DAY_MS)
    assert stats.trade_count == pytest.approx(86_400 / 20, abs=3)
    assert stats.volume == pytest.approx(stats.trade_count * 0.1)


def test_bad_window_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        Rolling24h(window_ms=DAY_MS, bucket_ms=0)
    with pytest.raises(ValueError):
        Rolling24h(window_ms=10, bucket_ms=20)


# A small window and bucket so random sequences cross many expiries.
WINDOW = 1_000
BUCKET = 100

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("trade"),
            st.integers(1, 50).map(float),  # few distinct prices: ties in high/low
            st.floats(0.001, 10.0),
            st.integers(-1_500, 300),  # offset from the clock: late, too old, ahead
        ),
        st.tuples(st.just("snapshot"), st.integers(-200, 1_500)),
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ops=operations, start=st.integers(0, 10_000))
def test_matches_the_brute_force_reference(
    ops: list[tuple[str, float, float, int] | tuple[str, int]], start: int
) -> None:
    tracker = Rolling24h(window_ms=WINDOW, bucket_ms=BUCKET)
    reference = Reference(window_ms=WINDOW, bucket_ms=BUCKET)
    clock = start
    for op in ops:
        if op[0] == "trade":
            _, price, qty, offset = op  # type: ignore[misc]
            ts = max(0, clock + int(offset))
            tracker.on_trade(price, qty, ts)
            reference.on_trade(price, qty, ts)
            clock = max(clock, ts)
        else:
            _, step = op  # type: ignore[misc]
            now = max(0, clock + int(step))
            assert_same(tracker.snapshot(now), reference.snapshot(now))
            clock = max(clock, now)
        assert tracker.bucket_count <= tracker.max_buckets == 11
        assert tracker.ignored_old_trades == reference.ignored
    assert_same(tracker.snapshot(clock + WINDOW // 2), reference.snapshot(clock + WINDOW // 2))


def test_klines_replace_whole_minutes_and_complete_the_window() -> None:
    tracker = Rolling24h()
    now = 10 * DAY_MS + 30 * 60_000 + 5_000
    tracker.on_trade(100.0, 1.0, now - 10 * 60_000)  # a live trade, 10 minutes ago
    tracker.on_trade(101.0, 2.0, now - 1_000)  # and one in the open minute
    assert not tracker.snapshot(now).complete  # only since the service started
    minute = now - now % 60_000
    rows = [
        MinuteTotals(minute - i * 60_000, 99.0, 120.0 - i % 7, 90.0 + i % 5, 99.5, 1.0, 99.5, 3)
        for i in range(1, 1442)
    ]
    assert tracker.replace_minutes(rows) == 1440  # the oldest row is older than the window
    tracker.coverage_start_ms = rows[-1].start_ms
    stats = tracker.snapshot(now)
    assert stats.complete and stats.covered_from_ms == rows[-1].start_ms
    # 1440 closed minutes (the one that held the live trade 10 minutes ago replaced, not
    # added to), plus the open minute's live trade.
    assert stats.trade_count == 1440 * 3 + 1
    assert stats.volume == pytest.approx(1440 * 1.0 + 2.0)
    assert (stats.high, stats.low) == (120.0, 90.0)
    assert stats.last_price == 101.0


def test_a_late_trade_in_a_minute_replaced_by_klines_is_not_counted_twice() -> None:
    tracker = Rolling24h()
    now = 10 * DAY_MS
    minute = now - now % MINUTE_MS - MINUTE_MS
    tracker.on_trade(100.0, 1.0, now)
    tracker.replace_minutes([MinuteTotals(minute, 100.0, 100.0, 100.0, 100.0, 4.0, 400.0, 4)])
    tracker.on_trade(100.0, 1.0, minute + 10, late=True)  # in the klines' minute already
    tracker.on_trade(100.0, 1.0, now + 1, late=True)  # a live minute: counted
    assert tracker.snapshot(now + 2).trade_count == 1 + 4 + 1
