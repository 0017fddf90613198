"""Partial-depth books replace their content with every message."""

from dataclasses import dataclass, field

from market_data.core.book import Level
from market_data.core.partial import PartialDepthBook
from market_data.core.state import BookState


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
