"""The Retry-After every process of the machine shares (service/rest_hold.py)."""

from pathlib import Path

import pytest

from market_data.core.weights import WeightBudget
from market_data.service.rest_hold import RestHoldFile


def test_a_hold_is_shared_with_every_budget_of_the_address(tmp_path: Path) -> None:
    """``--workers``: one worker's 429 holds the others (the exchange bans the address)."""
    hold = RestHoldFile(tmp_path / "hold")
    first, second = WeightBudget(2400, 0.5, shared=hold), WeightBudget(2400, 0.5, shared=hold)
    assert second.try_acquire(1, 10.0) == 0
    first.hold(30.0, now_s=10.0)
    assert second.try_acquire(1, 11.0) == pytest.approx(29.0)
    assert second.half_used(11.0)
    second.hold(5.0, now_s=11.0)  # shorter: the file keeps the longer one
    assert hold.read() == pytest.approx(40.0)
    assert first.try_acquire(1, 40.0) == second.try_acquire(1, 40.0) == 0
    (tmp_path / "hold").write_text("garbage")
    assert hold.read() == 0.0  # unreadable: no hold known, never an error


def test_one_hold_file_per_exchange_host() -> None:
    binance = RestHoldFile.for_url("https://fapi.binance.com")
    assert binance.path.name == "market-data-rest-hold-fapi.binance.com-"
    local = RestHoldFile.for_url("http://127.0.0.1:9443/")
    assert local.path.name == "market-data-rest-hold-127.0.0.1-9443"
