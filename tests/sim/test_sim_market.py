"""The pure market model: ids, strings, book shape and the true_book history."""

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.sim.market import MarketConfig, SimMarket, format_fixed, parse_fixed
from tests.sim.sim_client import ClientBook

SMALL = MarketConfig(levels_per_side=60, history_diffs=50, checkpoint_every=10)


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=8))
def test_format_fixed_round_trips_and_keeps_decimals(value: int, decimals: int) -> None:
    text = format_fixed(value, decimals)
    assert _decimals(text) == decimals
    assert parse_fixed(text, decimals) == value
    assert Decimal(text) == Decimal(value) / (Decimal(10) ** decimals)


def test_diffs_use_fixed_decimal_strings_and_a_per_symbol_pu_chain() -> None:
    market = SimMarket(["BTCUSDT", "ETHUSDT"], seed=3)
    previous_u = {s: market.current_update_id(s) for s in market.symbols}
    last_u_any = 0
    for step in range(400):
        symbol = "BTCUSDT" if step % 3 else "ETHUSDT"
        diff = market.step(symbol, 1_000 + step)
        assert diff["s"] == symbol and diff["e"] == "depthUpdate"
        assert diff["pu"] == previous_u[symbol]
        assert diff["U"] <= diff["u"]
        assert diff["U"] > last_u_any  # one counter shared by all symbols
        previous_u[symbol] = last_u_any = diff["u"]
        spec = market.spec(symbol)
        for side in (diff["b"], diff["a"]):
            for price, qty in side:
                assert _decimals(price) == spec.price_decimals
                assert _decimals(qty) == spec.qty_decimals
        assert market.current_update_id(symbol) == diff["u"]


def test_diff_sizes_follow_the_configuration_and_deletes_happen() -> None:
    config = MarketConfig(min_changes=5, max_changes=30, absent_delete_probability=0.2)
    market = SimMarket(["ETHUSDT"], seed=5, config=config)
    sizes, deletes, absent_deletes = [], 0, 0
    for step in range(300):
        before_bids, before_asks = market.true_book("ETHUSDT", market.current_update_id("ETHUSDT"))
        present = {p for p, _ in before_bids} | {p for p, _ in before_asks}
        diff = market.step("ETHUSDT", step)
        changes = diff["b"] + diff["a"]
        sizes.append(len(changes))
        for price, qty in changes:
            if Decimal(qty) == 0:
                deletes += 1
                absent_deletes += price not in present
    assert min(sizes) >= 5
    assert sum(sizes) / len(sizes) <= 40  # keep-depth refills can add a few
    assert deletes > 100
    assert absent_deletes > 10


def test_the_book_never_crosses_and_keeps_its_depth() -> None:
    market = SimMarket(["BTCUSDT"], seed=9, config=SMALL)
    mids = []
    for step in range(2_000):
        market.step("BTCUSDT", step)
        if step % 3 == 0:
            market.trade("BTCUSDT", step)
        bids, asks = market.true_book("BTCUSDT", market.current_update_id("BTCUSDT"))
        assert Decimal(bids[0][0]) < Decimal(asks[0][0])
        assert len(bids) == len(asks) == SMALL.levels_per_side
        mids.append((Decimal(bids[0][0]) + Decimal(asks[0][0])) / 2)
    assert len(set(mids)) > 50  # the mid drifts


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 120), snapshot_at=st.integers(0, 40))
def test_snapshot_plus_later_diffs_reproduces_true_book(
    seed: int, steps: int, snapshot_at: int
) -> None:
    market = SimMarket(["ETHUSDT"], seed=seed, config=SMALL)
    for step in range(min(snapshot_at, steps)):
        market.step("ETHUSDT", step)
    book = ClientBook(market.snapshot("ETHUSDT", 1000, 0))
    for step in range(steps):
        if step % 4 == 0:
            market.trade("ETHUSDT", step)
        diff = market.step("ETHUSDT", step)
        book.apply(diff)
        assert book.sides() == market.true_book("ETHUSDT", diff["u"])


def test_true_book_reaches_back_over_the_documented_history() -> None:
    market = SimMarket(["ETHUSDT"], seed=1, config=SMALL)
    book = ClientBook(market.snapshot("ETHUSDT", 1000, 0))
    seen = []
    for step in range(200):
        diff = market.step("ETHUSDT", step)
        book.apply(diff)
        seen.append((diff["u"], book.sides()))
    reachable = [(u, sides) for u, sides in seen if u >= market.oldest_update_id("ETHUSDT")]
    assert len(reachable) >= SMALL.history_diffs
    for (u, sides), (next_u, _) in zip(reachable, reachable[1:], strict=False):
        assert market.true_book("ETHUSDT", u) == sides
        assert market.true_book("ETHUSDT", next_u - 1) == sides  # ids between two diffs
    with pytest.raises(KeyError):
        market.true_book("ETHUSDT", seen[0][0])


def test_snapshot_is_the_top_of_the_book_at_the_last_diff() -> None:
    market = SimMarket(["BTCUSDT"], seed=2)
    for step in range(20):
        market.step("BTCUSDT", step)
    snapshot = market.snapshot("BTCUSDT", 5, now_ms=99)
    bids, asks = market.true_book("BTCUSDT", snapshot["lastUpdateId"])
    assert snapshot["lastUpdateId"] == market.current_update_id("BTCUSDT")
    assert [tuple(level) for level in snapshot["bids"]] == bids[:5]
    assert [tuple(level) for level in snapshot["asks"]] == asks[:5]
    assert snapshot["E"] == 99


def test_trades_hit_the_best_levels_with_the_right_maker_side() -> None:
    market = SimMarket(["ETHUSDT"], seed=4)
    sides_seen = set()
    agg_ids = []
    for step in range(300):
        market.step("ETHUSDT", step)
        bids, asks = market.true_book("ETHUSDT", market.current_update_id("ETHUSDT"))
        trade = market.trade("ETHUSDT", step)
        agg_ids.append(trade["a"])
        assert trade["f"] <= trade["l"] and trade["q"] == trade["nq"]
        assert Decimal(trade["q"]) > 0
        if trade["m"]:  # buyer is maker: the aggressor sold into the best bid
            assert trade["p"] == bids[0][0]
            assert Decimal(trade["q"]) <= Decimal(bids[0][1])
        else:
            assert trade["p"] == asks[0][0]
            assert Decimal(trade["q"]) <= Decimal(asks[0][1])
        sides_seen.add(trade["m"])
    assert sides_seen == {True, False}
    assert agg_ids == list(range(agg_ids[0], agg_ids[0] + len(agg_ids)))


def test_same_seed_same_market() -> None:
    first, second = SimMarket(["BTCUSDT"], seed=7), SimMarket(["BTCUSDT"], seed=7)
    assert [first.step("BTCUSDT", i) for i in range(30)] == [
        second.step("BTCUSDT", i) for i in range(30)
    ]
