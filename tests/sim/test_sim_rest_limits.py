"""The REST weight budget the simulator enforces: documented weights, per-minute window."""

from market_data.core.weights import SNAPSHOT_LIMITS, WeightBudget, snapshot_weight


def test_depth_weights_are_the_documented_ones() -> None:
    assert [snapshot_weight(limit) for limit in SNAPSHOT_LIMITS] == [2, 2, 2, 2, 5, 10, 20]


def test_budget_refuses_past_the_limit_and_resets_each_minute() -> None:
    budget = WeightBudget(45)
    assert budget.try_acquire(20, now_s=600.0) == 0 and budget.try_acquire(20, now_s=610.0) == 0
    assert budget.try_acquire(20, now_s=620.0) > 0  # 60 > 45: refused, not counted
    assert budget.used_now(620.0) == 40
    assert budget.try_acquire(5, now_s=659.9) == 0
    assert budget.try_acquire(1, now_s=650.0) == 10.0  # seconds to the next minute
    assert budget.used_now(660.0) == 0  # a new minute
    assert budget.try_acquire(45, now_s=661.0) == 0 and budget.try_acquire(1, now_s=662.0) > 0
