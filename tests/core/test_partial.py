"""Partial-depth books replace their content with every message."""

from dataclasses import dataclass, field

from market_data.core.book import Level
from market_data.core.partial import PartialDepthBook
from market_data.core.state import BookState
from market_data.core.sync import MAX_ID_STEP, MAX_STALE_RUN


@dataclass
class Msg:
    u: int
    b: list[Level] = field(default_factory=list)
    a: list[Level] = field(default_factory=list)
    U: int = 0  # noqa: N815
    pu: int = 0


def test_each_message_replaces_the_top_n() -> None:
    book = PartialDepthBook("BTCUSDT", levels=5)
    assert book.state is BookState.WAITING
    assert book.on_partial(Msg(10, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)]))
    assert book.state is BookState.PARTIAL
    # Never applied as a diff: levels absent from the new message are gone.
    assert book.on_partial(Msg(11, [(98.0, 5.0)], [(102.0, 1.0)]))
    assert book.book.top(5) == ([(98.0, 5.0)], [(102.0, 1.0)])
    assert book.book.last_update_id == 11


def test_stale_and_crossed_messages_are_skipped() -> None:
    book = PartialDepthBook("X", levels=5)
    book.on_partial(Msg(10, [(100.0, 1.0)], [(101.0, 1.0)]))
    assert not book.on_partial(Msg(9, [(50.0, 1.0)], [(51.0, 1.0)]))
    assert not book.on_partial(Msg(12, [(102.0, 1.0)], [(101.0, 1.0)]))
    assert book.book.top(5) == ([(100.0, 1.0)], [(101.0, 1.0)])
    assert (book.stale, book.rejected, book.applied) == (1, 1, 1)


def test_disconnect_makes_it_not_trustworthy() -> None:
    book = PartialDepthBook("X", levels=5)
    book.on_partial(Msg(10, [(100.0, 1.0)], [(101.0, 1.0)]))
    book.on_disconnect()
    assert book.state is BookState.WAITING and book.book.top(5) == ([], [])


def test_ids_going_backwards_for_good_are_taken_after_a_run() -> None:
    """An exchange that restarted its ids must not leave the book frozen but 'partial'."""
    book = PartialDepthBook("X", levels=5)
    book.on_partial(Msg(10_000, [(100.0, 1.0)], [(101.0, 1.0)]))
    taken = [book.on_partial(Msg(i, [(90.0 + i, 1.0)], [(200.0, 1.0)])) for i in range(1, 12)]
    assert taken == [False] * (MAX_STALE_RUN - 1) + [True, True]
    assert book.book.last_update_id == 11 and book.book.top(1)[0] == [(101.0, 1.0)]


def test_one_absurd_id_is_rejected_and_moves_nothing() -> None:
    book = PartialDepthBook("X", levels=5)
    book.on_partial(Msg(10, [(100.0, 1.0)], [(101.0, 1.0)]))
    assert not book.on_partial(Msg(10 + MAX_ID_STEP + 1, [(1.0, 1.0)], [(2.0, 1.0)]))
    assert book.on_partial(Msg(11, [(100.5, 1.0)], [(101.0, 1.0)]))
    assert (book.implausible, book.book.last_update_id) == (1, 11)
