"""Trade-id rules: duplicates, late fills, hostile frames held, real restarts recovered."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from market_data.core.trades import CONFIRM_RUN, TradeSequence

NOW = 1_700_000_000_000


@dataclass(frozen=True)
class T:
    a: int
    T: int = NOW  # noqa: N815
    f: int = 0
    l: int = 0  # noqa: E741

    @classmethod
    def at(cls, a: int, ms: int = NOW) -> T:
        return cls(a, ms, a * 2, a * 2 + 1)


def ids(taken: object) -> list[int]:
    return [t.a for t in taken]  # type: ignore[attr-defined]


def feed(seq: TradeSequence[T], *trades: T, now: int = NOW) -> list[int]:
    out: list[int] = []
    for trade in trades:
        out += ids(seq.on_trade(trade, now))
    return out


def test_the_first_trade_waits_for_a_second_that_fits_it() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, T.at(7)) == []
    assert seq.held == 1
    assert feed(seq, T.at(8)) == [7, 8]
    assert (seq.held, seq.last_id, seq.restarts) == (0, 8, 0)


def test_in_order_trades_are_taken_and_a_gap_is_counted() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, T.at(1), T.at(2), T.at(5)) == [1, 2, 5]
    assert (seq.missing, seq.duplicates, seq.last_id) == (2, 0, 5)


def test_redelivered_trades_are_dropped_but_a_late_one_fills_its_gap() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, T.at(10), T.at(13), T.at(13), T.at(10)) == [10, 13]
    assert seq.duplicates == 2
    assert feed(seq, T.at(12), T.at(12), T.at(11)) == [12, 11]
    assert (seq.filled, seq.missing, seq.duplicates) == (2, 0, 3)


def test_one_huge_id_moves_nothing() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, T.at(100), T.at(10**15), *(T.at(i) for i in range(101, 131))) == list(
        range(100, 131)
    )
    assert (seq.rejected, seq.restarts, seq.last_id) == (1, 0, 130)


def test_one_far_future_timestamp_moves_nothing() -> None:
    seq: TradeSequence[T] = TradeSequence()
    future = NOW + 10 * 86_400_000
    assert feed(seq, T.at(1), T.at(2, future), T.at(3)) == [1, 3]
    assert (seq.rejected, seq.last_ms) == (1, NOW)


def test_an_absurd_raw_trade_count_is_held() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, T.at(1), T(2, NOW, 0, 10**9), T.at(3)) == [1, 3]
    assert seq.rejected == 1


def test_a_real_restart_of_the_ids_recovers_without_losing_a_trade() -> None:
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, *(T.at(i) for i in range(5_000_000, 5_000_010))) == list(
        range(5_000_000, 5_000_010)
    )
    restarted = [T.at(i) for i in range(1, 11)]
    taken = feed(seq, *restarted)
    assert taken == list(range(1, 11))  # the first CONFIRM_RUN came together, none lost
    assert (seq.restarts, seq.last_id) == (1, 10)


def test_a_wrong_local_clock_costs_one_confirmation_then_nothing() -> None:
    seq: TradeSequence[T] = TradeSequence()
    hour = 3_600_000
    trades = [T.at(i, NOW + hour + i) for i in range(1, 8)]
    out = [ids(seq.on_trade(t, NOW)) for t in trades]
    assert out[:2] == [[], [1, 2]]  # the first two confirm each other and the clock's offset
    assert out[2:] == [[i] for i in range(3, 8)]
    # Once the sequence runs, a wrong clock is a restart like any other: CONFIRM_RUN trades.
    later = [T.at(i, NOW + 5 * hour + i) for i in range(8, 8 + CONFIRM_RUN)]
    out = [ids(seq.on_trade(t, NOW)) for t in later]
    assert out == [[]] * (CONFIRM_RUN - 1) + [[t.a for t in later]]


def test_a_jump_after_a_long_outage_is_plausible() -> None:
    seq: TradeSequence[T] = TradeSequence()
    later = NOW + 3_600_000
    assert feed(seq, T.at(1), T.at(2)) == [1, 2]
    assert feed(seq, T.at(20_000_000, later), now=later) == [20_000_000]
    assert seq.missing == 20_000_000 - 3


@given(
    n=st.integers(5, 60),
    position=st.integers(1, 59),
    hostile=st.sampled_from(["id_high", "id_low", "future", "past", "count"]),
)
def test_any_one_hostile_trade_changes_only_counters(n: int, position: int, hostile: str) -> None:
    """The clean stream's trades, in order, whatever single bad trade is inserted."""
    clean = [T.at(1_000 + i, NOW + i) for i in range(n)]
    bad = {
        "id_high": T.at(10**14),
        "id_low": T.at(1),
        "future": T.at(1_000 + n, NOW + 86_400_000),
        "past": T.at(1_000 + n, NOW - 86_400_000),
        "count": T(1_000 + n, NOW, 0, 10**8),
    }[hostile]
    stream = [*clean[: min(position, n)], bad, *clean[min(position, n) :]]
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, *stream) == [t.a for t in clean]


def test_ids_restarting_just_below_the_last_one_are_a_restart_not_redeliveries() -> None:
    """The exchange restarted: ids 1, 2, 3 again, but newer than every trade taken."""
    seq: TradeSequence[T] = TradeSequence()
    assert feed(seq, *(T.at(i, NOW + i) for i in range(1, 51))) == list(range(1, 51))
    later = NOW + 60_000
    assert feed(seq, T.at(1, later), T.at(2, later + 1)) == []  # held, not dropped
    assert feed(seq, T.at(3, later + 2)) == [1, 2, 3]
    assert (seq.restarts, seq.duplicates, seq.last_id) == (1, 0, 3)
    assert feed(seq, T.at(3, later + 2), T.at(4, later + 3)) == [4]  # a real re-delivery
