"""Trades over A/B lines come out in id order, none lost (core/trade_lines.py)."""

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.core.trade_lines import TradeLines


@dataclass(frozen=True)
class Trade:
    a: int
    T: int  # noqa: N815 - the exchange's name
    f: int = 1
    l: int = 1  # noqa: E741


def trade(a: int) -> Trade:
    return Trade(a, 1_000 + a * 10)


def passed_in_order(out: list[Trade]) -> list[int]:
    """Ids as a reader keeping them increasing would take them (re-deliveries dropped)."""
    taken: list[int] = []
    for one in out:
        if not taken or one.a > taken[-1]:
            taken.append(one.a)
    return taken


def test_a_trade_after_a_hole_waits_for_the_line_that_has_the_hole() -> None:
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.line_up(1)
    assert lines.on_trade(trade(1), 0) == [trade(1)]
    assert lines.on_trade(trade(1), 1) == [trade(1)]  # a copy: judged downstream
    assert lines.on_trade(trade(3), 0) == []  # line a lost 2; line b may still have it
    assert lines.held == 1 and lines.waited == 1
    assert lines.on_trade(trade(2), 1) == [trade(2), trade(3)]


def test_a_hole_both_lines_passed_is_real_and_lets_the_trade_go() -> None:
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.line_up(1)
    lines.on_trade(trade(1), 0)
    assert lines.on_trade(trade(3), 0) == []
    assert lines.on_trade(trade(3), 1) == [trade(3), trade(3)]  # b passed 2 too: a real gap


def test_a_line_going_down_releases_what_waited_for_it() -> None:
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.line_up(1)
    lines.on_trade(trade(1), 0)
    assert lines.on_trade(trade(5), 0) == []
    assert lines.line_down(1) == [trade(5)]


def test_with_one_line_up_nothing_waits() -> None:
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.on_trade(trade(1), 0)
    assert lines.on_trade(trade(4), 0) == [trade(4)]


def test_waiting_is_bounded_by_exchange_time() -> None:
    lines = TradeLines[Trade](2, max_wait_ms=50)
    lines.line_up(0)
    lines.line_up(1)
    lines.on_trade(trade(1), 0)
    assert lines.on_trade(trade(3), 0) == []
    out = lines.on_trade(trade(10), 0)  # 70 ms of exchange time after trade 3
    assert [t.a for t in out] == [3]  # 3 waited long enough; 10 starts its own wait


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=20, max_value=120),
    st.lists(st.integers(0, 119), max_size=25),
    st.lists(st.integers(0, 119), max_size=25),
    st.lists(st.integers(0, 30), min_size=120, max_size=120),
    st.lists(st.integers(0, 30), min_size=120, max_size=120),
)
def test_two_lines_with_losses_and_delays_give_every_trade_once_in_order(
    count: int,
    lost_a: list[int],
    lost_b: list[int],
    delays_a: list[int],
    delays_b: list[int],
) -> None:
    arrivals: list[tuple[int, int, Trade]] = []  # (arrival ms, line, trade)
    delivered: set[int] = set()
    for line, lost, delays in ((0, set(lost_a), delays_a), (1, set(lost_b), delays_b)):
        at = 0
        for a in range(1, count + 1):
            if a - 1 in lost:
                continue
            one = trade(a)
            at = max(at, one.T + delays[a - 1])  # each line keeps its own order
            arrivals.append((at, line, one))
            delivered.add(a)
    arrivals.sort(key=lambda item: (item[0], item[1]))
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.line_up(1)
    out: list[Trade] = []
    for _, line, one in arrivals:
        out.extend(lines.on_trade(one, line))
    out.extend(lines.line_down(0))
    out.extend(lines.line_down(1))
    taken = passed_in_order(out)
    # Every trade some line delivered comes out, in id order: none is lost to a reader
    # that drops ids at or below the last it has.
    assert taken == sorted(delivered)
    assert lines.held == 0


def test_a_quiet_symbol_s_held_trade_goes_on_by_the_local_clock() -> None:
    lines = TradeLines[Trade](2, max_wait_ms=1_000)
    lines.line_up(0)
    lines.line_up(1)
    lines.on_trade(trade(1), 0)
    assert lines.on_trade(trade(3), 0) == []  # line b may still have 2; nothing else comes
    assert lines.overdue(trade(3).T + 500) == []
    assert lines.overdue(trade(3).T + 1_001) == [trade(3)]
    assert lines.held == 0


def test_flush_hands_over_everything_held_in_order() -> None:
    lines = TradeLines[Trade](2)
    lines.line_up(0)
    lines.line_up(1)
    lines.on_trade(trade(1), 0)
    lines.on_trade(trade(5), 0)
    lines.on_trade(trade(3), 0)
    assert [t.a for t in lines.flush()] == [3, 5]
    assert lines.on_trade(trade(6), 0) == [trade(6)]  # continues after the flushed ones
