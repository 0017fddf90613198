"""The REST weight budget: documented weights, per-minute window, refusals not counted."""

from market_data.sim.rest_limits import DEPTH_LIMITS, WeightBudget, depth_weight


def test_depth_weights_are_the_documented_ones() -> None:
    assert [depth_weight(limit) for limit in DEPTH_LIMITS] == [2, 2, 2, 2, 5, 10, 20]


def test_budget_refuses_past_the_limit_and_resets_each_minute() -> None:
    budget = WeightBudget(limit_per_minute=45)
    assert budget.charge(20, now_s=600.0) and budget.charge(20, now_s=610.0)
    assert not budget.charge(20, now_s=620.0)  # 60 > 45: refused, not counted
    assert budget.used(620.0) == 40
    assert budget.charge(5, now_s=659.9)
    assert budget.seconds_to_reset(650.0) == 10
    assert budget.used(660.0) == 0  # a new minute
    assert budget.charge(45, now_s=661.0) and not budget.charge(1, now_s=662.0)
