"""The order book: exact keys, deletes, bounds and derived figures."""

from hypothesis import given
from hypothesis import strategies as st

from market_data.core.book import BULK_LEVELS, BookSide, OrderBook, format_decimal


def test_zero_in_any_spelling_deletes_and_absent_delete_is_fine() -> None:
    book = OrderBook("BTCUSDT")
    book.load([(100.0, 1.0), (99.5, 2.0)], [(101.0, 3.0)], last_update_id=7)
    book.apply([(100.0, float("0.000")), (98.0, 0.0)], [(101.0, float("0"))], update_id=8)
    assert book.bids.top(10) == [(99.5, 2.0)]
    assert book.asks.top(10) == []
    assert book.last_update_id == 8
    assert len(book.bids.qty) == len(book.bids.prices) == 1


def test_top_is_best_first_and_quantity_updates_do_not_move_levels() -> None:
    book = OrderBook("X")
    book.load([(1.0, 1.0), (3.0, 1.0), (2.0, 1.0)], [(6.0, 1.0), (4.0, 1.0), (5.0, 1.0)], 1)
    book.apply([(2.0, 9.0)], [(5.0, 8.0)], 2)
    assert book.top(2) == ([(3.0, 1.0), (2.0, 9.0)], [(4.0, 1.0), (5.0, 8.0)])
    assert book.bids.best() == (3.0, 1.0) and book.asks.best() == (4.0, 1.0)
    assert book.mid() == 3.5 and book.spread() == 1.0
    spread_bps = book.spread_bps()
    assert spread_bps is not None and abs(spread_bps - 1.0 / 3.5 * 10_000) < 1e-9


def test_empty_book_has_no_derived_figures() -> None:
    book = OrderBook("X")
    assert book.mid() is None and book.spread() is None and book.spread_bps() is None
    assert book.bids.best() is None and not book.is_crossed()


def test_crossed_detection() -> None:
    book = OrderBook("X")
    book.load([(100.0, 1.0)], [(101.0, 1.0)], 1)
    assert not book.is_crossed()
    book.apply([(101.0, 1.0)], [], 2)
    assert book.is_crossed()


def test_depth_bound_drops_the_level_farthest_from_the_top() -> None:
    bids = BookSide(is_bid=True, max_levels=3)
    bids.apply([(10.0, 1.0), (9.0, 1.0), (8.0, 1.0)])
    bids.apply([(11.0, 1.0)])  # better than all: the worst (8) goes
    assert bids.top(5) == [(11.0, 1.0), (10.0, 1.0), (9.0, 1.0)]
    bids.apply([(7.0, 1.0)])  # worse than all: not kept
    assert bids.top(5) == [(11.0, 1.0), (10.0, 1.0), (9.0, 1.0)]
    assert set(bids.qty) == set(bids.prices)
    asks = BookSide(is_bid=False, max_levels=2)
    asks.apply([(5.0, 1.0), (6.0, 1.0), (4.0, 1.0)])
    assert asks.top(5) == [(4.0, 1.0), (5.0, 1.0)]


def test_clear_rebuilds_from_empty() -> None:
    book = OrderBook("X")
    book.load([(1.0, 1.0)], [(2.0, 1.0)], 5)
    book.clear()
    assert book.top(5) == ([], []) and book.last_update_id == 0


def test_format_decimal_is_exact_and_never_exponent() -> None:
    assert format_decimal(float("2681.10")) == "2681.1"
    assert format_decimal(float("0.00001234")) == "0.00001234"
    assert format_decimal(float("100")) == "100"
    assert format_decimal(float("0.000")) == "0"


levels = st.lists(
    st.tuples(
        st.integers(1, 60).map(lambda t: t / 4),
        st.sampled_from([0.0, 0.0, 0.5, 1.25, 3.0]),
    ),
    max_size=30,
)


@given(st.lists(levels, max_size=20), st.integers(2, 40))
def test_side_matches_a_dict_and_sort(batches: list[list[tuple[float, float]]], cap: int) -> None:
    side = BookSide(is_bid=True, max_levels=10_000)
    capped = BookSide(is_bid=True, max_levels=cap)
    reference: dict[float, float] = {}
    for batch in batches:
        side.apply(batch)
        capped.apply(batch)
        for price, qty in batch:
            if qty:
                reference[price] = qty
            else:
                reference.pop(price, None)
        assert side.qty == reference
        assert side.prices == sorted(reference)
        assert side.top(5) == sorted(reference.items(), reverse=True)[:5]
        assert len(capped) <= cap and set(capped.qty) == set(capped.prices)
        assert capped.prices == sorted(capped.qty)


bulk_levels = st.lists(
    st.tuples(
        st.integers(1, 2_000).map(lambda t: t / 4),
        st.sampled_from([0.0, 0.5, 1.25, 3.0]),
    ),
    min_size=BULK_LEVELS + 1,
    max_size=BULK_LEVELS + 60,
)


@given(st.lists(st.one_of(levels, bulk_levels), max_size=8), st.integers(2, 400))
def test_huge_events_give_the_book_small_ones_give(
    batches: list[list[tuple[float, float]]], cap: int
) -> None:
    """Events past BULK_LEVELS are sorted once instead of inserted level by level: the
    same book (a price repeated in one event: its last quantity), the same bound."""
    side = BookSide(is_bid=False, max_levels=10_000)
    capped = BookSide(is_bid=False, max_levels=cap)
    one_by_one = BookSide(is_bid=False, max_levels=cap)
    reference: dict[float, float] = {}
    for batch in batches:
        side.apply(batch)
        capped.apply(batch)
        for start in range(0, len(batch), 16):  # the same event in small pieces...
            chunk = batch[start : start + 16]
            one_by_one.max_levels = 10_000  # ...bounded once the whole event is in
            one_by_one.apply(chunk)
        one_by_one.max_levels = cap
        one_by_one.apply([])
        for price, qty in batch:
            if qty:
                reference[price] = qty
            else:
                reference.pop(price, None)
        assert side.qty == reference and side.prices == sorted(reference)
        assert capped.qty == one_by_one.qty and capped.prices == one_by_one.prices


def test_the_depth_bound_applies_to_the_whole_event_not_each_insert() -> None:
    """Insert a new best and delete another level: the window is as large as before."""
    side = BookSide(is_bid=True, max_levels=3)
    side.apply([(10.0, 1.0), (9.0, 1.0), (8.0, 1.0)])
    side.apply([(11.0, 1.0), (10.0, 0.0)])  # best first, as the exchange orders bids
    assert side.prices == [8.0, 9.0, 11.0] and set(side.qty) == {8.0, 9.0, 11.0}
    side.apply([(12.0, 1.0), (13.0, 2.0)])  # two more than the bound: the two worst go
    assert side.prices == [11.0, 12.0, 13.0] and set(side.qty) == {11.0, 12.0, 13.0}
    asks = BookSide(is_bid=False, max_levels=2)
    asks.apply([(5.0, 1.0), (6.0, 1.0), (7.0, 1.0), (4.0, 1.0)])
    assert asks.prices == [4.0, 5.0] and set(asks.qty) == {4.0, 5.0}
