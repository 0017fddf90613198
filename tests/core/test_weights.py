"""The client-side REST weight budget."""

import pytest

from market_data.core.weights import WeightBudget, klines_weight, snapshot_weight


@pytest.mark.parametrize(
    ("limit", "weight"), [(5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10), (1000, 20)]
)
def test_snapshot_weights_follow_the_exchange(limit: int, weight: int) -> None:
    assert snapshot_weight(limit) == weight


def test_budget_refuses_past_the_limit_until_the_next_minute() -> None:
    budget = WeightBudget(per_minute=50)
    assert budget.try_acquire(20, now_s=120.0) == 0.0
    assert budget.try_acquire(20, now_s=130.0) == 0.0
    assert budget.try_acquire(20, now_s=150.0) == pytest.approx(30.0)
    assert budget.used == 40
    assert budget.try_acquire(20, now_s=180.0) == 0.0  # a new one-minute window
    assert budget.used == 20 and budget.total == 60


def test_server_count_wins_when_higher() -> None:
    budget = WeightBudget(per_minute=100)
    budget.try_acquire(20, now_s=0.0)
    budget.observe_server_count(95, now_s=1.0)
    assert budget.try_acquire(20, now_s=2.0) == pytest.approx(58.0)
    budget.observe_server_count(10, now_s=3.0)
    assert budget.address_used == 95 and budget.used == 20


def test_a_worker_takes_its_share_but_the_address_limit_still_holds() -> None:
    budget = WeightBudget(per_minute=100, share=0.5)  # one of two workers
    assert budget.try_acquire(20, now_s=0.0) == 0.0
    assert budget.try_acquire(20, now_s=1.0) == 0.0
    assert budget.try_acquire(20, now_s=2.0) > 0  # 60 > its share of 50
    other = WeightBudget(per_minute=100, share=0.5)
    other.observe_server_count(50, now_s=3.0)  # the other worker used its half
    assert other.try_acquire(20, now_s=4.0) == 0.0  # 70: the address is under 100
    other.observe_server_count(90, now_s=5.0)
    assert other.try_acquire(20, now_s=6.0) > 0  # 110 would exceed the address's 100


def test_half_used_counts_our_share_and_the_address() -> None:
    budget = WeightBudget(100, share=0.5)  # our allowance: 50
    assert not budget.half_used(0.0)
    assert budget.try_acquire(25, 0.0) == 0
    assert budget.half_used(0.0)  # half of our share
    other = WeightBudget(100)
    other.observe_server_count(50, 0.0)  # the address, through other processes
    assert other.half_used(0.0) and not other.half_used(61.0)  # a new minute


@pytest.mark.parametrize(("limit", "weight"), [(100, 1), (101, 2), (500, 2), (1000, 5), (1441, 10)])
def test_klines_weight_by_rows(limit: int, weight: int) -> None:
    assert klines_weight(limit) == weight


def test_a_429_holds_every_request_until_its_retry_after_even_in_a_new_minute() -> None:
    budget = WeightBudget(2400)
    budget.hold(90.0, now_s=30.0)  # a ban's Retry-After outlasts the minute
    assert budget.try_acquire(1, 31.0) == pytest.approx(89.0)
    assert budget.try_acquire(1, 100.0) == pytest.approx(20.0)  # the next minute, still held
    assert budget.half_used(100.0) and budget.held_for(100.0) == pytest.approx(20.0)
    budget.hold(5.0, now_s=100.0)  # a shorter one never shortens it
    assert budget.held_for(100.0) == pytest.approx(20.0)
    assert budget.try_acquire(1, 120.0) == 0 and budget.held_for(120.0) == 0
