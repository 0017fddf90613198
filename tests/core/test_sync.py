"""The synchronisation state machine: the official procedure, step by step,
and a property test against a model exchange with injected faults."""

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.core.book import Level
from market_data.core.state import BookState
from market_data.core.sync import (
    MAX_BEFORE_BRIDGE,
    MAX_ID_STEP,
    MAX_STALE_RUN,
    BookAudit,
    BookLive,
    BookReset,
    DepthSync,
    SnapshotNeeded,
)


@dataclass
class Ev:
    U: int  # noqa: N815
    u: int
    pu: int
    b: list[Level] = field(default_factory=list)
    a: list[Level] = field(default_factory=list)
    E: int = 0  # noqa: N815 - event time, ms


@dataclass
class Snap:
    lastUpdateId: int  # noqa: N815
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)


def _live(sync: DepthSync) -> None:
    """Bring a sync live on snapshot 100 with event 95..105."""
    sync.on_depth(Ev(95, 105, 90, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.on_snapshot(Snap(100, [(10.0, 5.0), (9.0, 1.0)], [(12.0, 1.0)]))
    assert sync.is_live


def test_waits_for_an_event_before_asking_for_a_snapshot() -> None:
    sync = DepthSync("BTCUSDT")
    assert sync.state is BookState.WAITING and sync.drain() == []
    sync.on_depth(Ev(1, 2, 0))
    assert sync.state is BookState.SYNCING
    assert sync.drain() == [SnapshotNeeded("BTCUSDT", "first event buffered")]
    sync.on_depth(Ev(3, 4, 2))
    assert sync.drain() == []  # one request at a time
    assert sync.snapshot_pending and sync.buffered == 2


def test_drops_events_before_the_snapshot_and_bridges_with_U_le_L_le_u() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(80, 90, 70, [(1.0, 1.0)]))  # u < L: dropped
    sync.on_depth(Ev(95, 105, 90, [(10.0, 2.0)], [(11.0, 1.0)]))  # U <= L <= u: first
    sync.on_depth(Ev(106, 110, 105, [(9.0, 0.0)]))
    sync.drain()
    sync.on_snapshot(Snap(100, [(10.0, 5.0), (9.0, 1.0), (1.0, 7.0)], [(12.0, 1.0)]))
    assert sync.is_live
    assert sync.book.top(5) == ([(10.0, 2.0), (1.0, 7.0)], [(11.0, 1.0), (12.0, 1.0)])
    assert sync.book.last_update_id == 110
    assert sync.drain() == [BookLive("X", 100, 95, 105, 90)]
    assert sync.dropped_before_sync == 1 and sync.applied == 2


def test_u_equal_to_L_bridges() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(95, 100, 90, [(10.0, 2.0)]))
    sync.on_snapshot(Snap(100, [(10.0, 2.0)], [(11.0, 1.0)]))
    assert sync.is_live and sync.book.last_update_id == 100


def test_pu_equal_to_L_bridges() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(95, 100, 90))
    sync.on_depth(Ev(103, 107, 100, [(10.0, 3.0)]))
    sync.on_snapshot(Snap(101, [(10.0, 2.0)], [(11.0, 1.0)]))
    # 95..100 is dropped (u < L) and 103..107 does not contain 101: only pu == L bridges it.
    assert not sync.is_live
    sync2 = DepthSync("X")
    sync2.on_depth(Ev(103, 107, 100, [(10.0, 3.0)]))
    sync2.on_snapshot(Snap(100, [(10.0, 2.0)], [(11.0, 1.0)]))
    assert sync2.is_live and sync2.book.bids.top(1) == [(10.0, 3.0)]


def test_snapshot_older_than_the_buffer_is_rejected_and_the_buffer_kept() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(200, 210, 190, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.drain()
    sync.on_snapshot(Snap(150))
    assert not sync.is_live and sync.snapshots_rejected == 1
    assert sync.drain() == [SnapshotNeeded("X", "snapshot older than buffered events")]
    assert sync.buffered == 1
    sync.on_snapshot(Snap(205, [(10.0, 4.0)], [(11.0, 2.0)]))
    assert sync.is_live


def test_snapshot_newer_than_the_buffer_waits_for_the_bridging_event() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(90, 95, 80))
    sync.on_snapshot(Snap(100, [(10.0, 1.0)], [(11.0, 1.0)]))
    assert sync.state is BookState.SYNCING and sync.dropped_before_sync == 1
    sync.on_depth(Ev(96, 99, 95))  # still before L
    assert not sync.is_live and sync.dropped_before_sync == 2
    assert sync.on_depth(Ev(99, 103, 99, [(10.0, 2.0)]))
    assert sync.is_live and sync.book.bids.top(1) == [(10.0, 2.0)]


def test_a_stream_that_jumped_past_a_loaded_snapshot_asks_again() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(90, 95, 80))
    sync.on_snapshot(Snap(100, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.drain()
    sync.on_depth(Ev(120, 130, 110))
    assert not sync.is_live and sync.book.top(1) == ([], [])
    assert sync.drain() == [SnapshotNeeded("X", "snapshot older than the stream")]


def test_gap_resets_rebuilds_from_empty_and_keeps_buffering() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.drain()
    assert sync.on_depth(Ev(106, 108, 105, [(8.0, 1.0)]))
    assert not sync.on_depth(Ev(112, 115, 110, [(7.0, 1.0)]))  # pu 110 != 108
    assert sync.gaps == 1 and sync.state is BookState.SYNCING
    assert sync.book.top(5) == ([], [])
    assert sync.drain() == [BookReset("X", "gap"), SnapshotNeeded("X", "first event buffered")]
    assert sync.buffered == 1  # the event that revealed the gap starts the new buffer
    sync.on_snapshot(Snap(113, [(5.0, 1.0)], [(9.0, 1.0)]))
    assert sync.is_live
    assert sync.book.top(5) == ([(7.0, 1.0), (5.0, 1.0)], [(9.0, 1.0)])  # no stale levels


def test_stale_duplicates_are_dropped_without_reset() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.on_depth(Ev(106, 108, 105, [(8.0, 1.0)]))
    before = sync.book.top(10)
    assert not sync.on_depth(Ev(106, 108, 105, [(8.0, 5.0)]))  # duplicate
    assert not sync.on_depth(Ev(95, 105, 90, [(8.0, 6.0)]))  # older still
    assert sync.is_live and sync.stale == 2 and sync.book.top(10) == before


def test_an_event_between_the_last_two_applied_ids_is_a_gap_not_a_copy() -> None:
    """One event whose u jumped ahead (its pu right) is applied; the stream's next event
    (its u below the jump, above the event before) is no copy of anything applied: the
    chain is broken, the book resets at once instead of sitting live and frozen."""
    sync = DepthSync("X")
    _live(sync)
    sync.on_depth(Ev(106, 108, 105, [(8.0, 1.0)]))
    sync.on_depth(Ev(109, 100_110, 108, [(7.0, 50.0)]))  # u should have been 110
    assert sync.is_live and sync.book.last_update_id == 100_110
    sync.drain()
    assert not sync.on_depth(Ev(111, 112, 110, [(7.0, 2.0)]))  # the stream's next event
    assert sync.gaps == 1 and not sync.is_live and sync.stale == 0
    assert sync.drain()[0] == BookReset("X", "gap")
    assert sync.buffered == 1  # the stream's event starts the new buffer


def test_a_bad_event_that_revealed_a_gap_never_bridges_the_next_sync() -> None:
    """Its pu is wrong (a gap) and its u far ahead: it starts the buffer of the reset,
    and would bridge any snapshot (U <= L <= u). The stream's events that follow do not
    continue it (their pu is not its u): only that newest unbroken run may bridge."""
    sync = DepthSync("X")
    _live(sync)
    sync.on_depth(Ev(106, 108, 105, [(8.0, 1.0)]))
    sync.on_depth(Ev(109, 10**9, 107, [(9.5, 50.0)]))  # wrong pu, absurd u: a gap
    assert sync.gaps == 1 and sync.buffered == 1
    sync.on_depth(Ev(109, 110, 108, [(8.0, 2.0)]))  # the stream goes on from 108
    sync.on_depth(Ev(111, 114, 110, [(7.5, 1.0)]))
    sync.on_snapshot(Snap(112, [(8.0, 2.0), (5.0, 1.0)], [(12.0, 1.0)]))
    assert sync.is_live and sync.book.last_update_id == 114
    assert sync.book.top(5) == ([(8.0, 2.0), (7.5, 1.0), (5.0, 1.0)], [(12.0, 1.0)])


def test_a_gap_inside_the_buffer_bridges_with_the_run_after_it() -> None:
    """Without the cut, the snapshot bridged on the first run and the gap reset it again
    (or, with the bad event far ahead, every snapshot was refused as too old)."""
    sync = DepthSync("X")
    sync.on_depth(Ev(10**6, 10**6 + 10, 10**6 - 1))  # pu far ahead of the stream's
    sync.on_depth(Ev(95, 105, 90, [(10.0, 1.0)]))
    sync.on_depth(Ev(106, 108, 105, [(8.0, 1.0)]))
    sync.on_snapshot(Snap(100, [(10.0, 5.0)], [(12.0, 1.0)]))
    assert sync.is_live and sync.book.last_update_id == 108
    assert sync.snapshots_rejected == 0 and sync.dropped_before_sync == 1


def test_a_stream_whose_ids_went_backwards_resets_instead_of_freezing() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.drain()
    for _ in range(MAX_STALE_RUN - 1):
        assert not sync.on_depth(Ev(10, 12, 9))  # ids restarted far below the book's 105
    assert sync.is_live and sync.stale == MAX_STALE_RUN - 1
    sync.on_depth(Ev(13, 14, 12))
    assert not sync.is_live
    assert sync.drain() == [BookReset("X", "stale_stream")]


def test_crossed_book_resets() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.drain()
    assert not sync.on_depth(Ev(106, 107, 105, [(13.0, 1.0)]))
    assert sync.crossed == 1 and sync.state is BookState.WAITING
    assert sync.drain() == [BookReset("X", "crossed")]


def test_reconnect_resets_and_clears_the_buffer() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.drain()
    sync.on_disconnect()
    assert sync.state is BookState.WAITING and sync.buffered == 0
    assert sync.book.top(5) == ([], [])
    assert sync.drain() == [BookReset("X", "reconnect")]


def test_buffer_overflow_is_a_reset_that_asks_again_for_the_new_book() -> None:
    sync = DepthSync("X", max_buffer=3)
    for i in range(4):
        sync.on_depth(Ev(10 * i + 1, 10 * i + 5, 10 * i - 5))
    assert sync.overflows == 1 and sync.buffered == 1
    outputs = sync.drain()
    assert outputs == [
        SnapshotNeeded("X", "first event buffered"),
        BookReset("X", "buffer_overflow"),
        SnapshotNeeded("X", "first event buffered"),
    ]
    assert sync.snapshot_pending


def test_a_reset_while_a_snapshot_is_pending_asks_again_on_the_next_event() -> None:
    """The core does not rely on the I/O layer finishing a fetch made for the old book."""
    sync = DepthSync("X")
    sync.on_depth(Ev(1, 5, 0))
    assert sync.snapshot_pending
    sync.on_disconnect()
    assert not sync.snapshot_pending
    sync.drain()
    sync.on_depth(Ev(11, 15, 9))
    assert sync.drain() == [SnapshotNeeded("X", "first event buffered")]


def test_failed_snapshot_is_asked_again_with_the_buffer_kept() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(1, 5, 0))
    sync.drain()
    sync.on_snapshot_failed("HTTP 429")
    assert sync.drain() == [SnapshotNeeded("X", "HTTP 429")] and sync.buffered == 1


def test_snapshot_nobody_asked_for_is_ignored() -> None:
    sync = DepthSync("X")
    sync.on_snapshot(Snap(5, [(1.0, 1.0)], [(2.0, 1.0)]))
    assert sync.snapshots_ignored == 1 and sync.state is BookState.WAITING


# ---------------------------------------------------------------- property test


class ModelExchange:
    """A tiny exchange: one symbol, global non-contiguous ids, full history."""

    def __init__(
        self,
        draw_levels: list[list[tuple[int, int, int]]],
        id_steps: list[int],
        start: int = 1000,
    ) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.u = start
        self.history: dict[int, tuple[dict[float, float], dict[float, float]]] = {self.u: ({}, {})}
        self.events: list[Ev] = []
        for changes, step in zip(draw_levels, id_steps, strict=False):
            U = self.u + step  # noqa: N806
            u = U + step % 3
            ev = Ev(U, u, self.u)
            for side, tick, qty in changes:
                # bids on ticks 1..20 (prices 80..99), asks on 101..120: never crossed.
                price = 79.0 + tick if side == 0 else 100.0 + tick
                book = self.bids if side == 0 else self.asks
                (ev.b if side == 0 else ev.a).append((price, float(qty)))
                if qty:
                    book[price] = float(qty)
                else:
                    book.pop(price, None)  # deleting an absent level is legal
            self.u = u
            self.history[u] = (dict(self.bids), dict(self.asks))
            self.events.append(ev)

    def snapshot_at(self, u: int) -> Snap:
        bids, asks = self.history[u]
        return Snap(u, sorted(bids.items(), reverse=True), sorted(asks.items()))


changes = st.lists(
    st.tuples(st.integers(0, 1), st.integers(1, 20), st.integers(0, 3)), min_size=1, max_size=6
)
#: Up to 60 events of a model exchange, and the id steps between them.
event_changes = st.lists(changes, min_size=5, max_size=60)
id_steps_60 = st.lists(st.integers(1, 7), min_size=60, max_size=60)
actions = st.sampled_from(
    ["deliver"] * 6
    + ["drop", "duplicate", "stale", "reconnect", "snapshot", "old_snapshot", "refresh"]
)


@settings(max_examples=300, deadline=None)
@given(event_changes, id_steps_60, st.lists(actions, min_size=60, max_size=60))
def test_never_publishes_a_wrong_book_and_detects_every_gap(
    draw_levels: list[list[tuple[int, int, int]]], id_steps: list[int], plan: list[str]
) -> None:
    exchange = ModelExchange(draw_levels, id_steps)
    sync = DepthSync("X", max_buffer=8)
    delivered: list[Ev] = []
    gaps_expected = 0

    def deliver(ev: Ev) -> None:
        nonlocal gaps_expected
        was_live, last = sync.is_live, sync.book.last_update_id
        sync.on_depth(ev)
        if was_live and ev.pu != last and ev.u > last:
            gaps_expected += 1  # a live book met a discontinuity: it must notice
            assert not sync.is_live
        delivered.append(ev)

    for ev, action in zip(exchange.events, plan, strict=False):
        if action == "drop":
            continue
        if action == "reconnect":
            sync.on_disconnect()
        elif action == "refresh":
            sync.request_refresh()  # a re-base: the book must stay exact through it
        deliver(ev)
        if action == "duplicate":
            deliver(ev)
        elif action == "stale" and len(delivered) > 3:
            deliver(delivered[-4])
        sync.drain()
        if sync.snapshot_pending and action in ("snapshot", "deliver"):
            sync.on_snapshot(exchange.snapshot_at(ev.u))
        elif sync.snapshot_pending and action == "old_snapshot":
            sync.on_snapshot(exchange.snapshot_at(exchange.events[0].u))
        sync.drain()
        if sync.is_live:
            bids, asks = exchange.history[sync.book.last_update_id]
            assert sync.book.bids.qty == bids
            assert sync.book.asks.qty == asks
            assert sync.book.bids.prices == sorted(bids)
            assert sync.book.asks.prices == sorted(asks)
    # Gaps met while draining the buffer after a snapshot are detected too, hence >=.
    assert sync.gaps >= gaps_expected


# ------------------------------------------------------- hostile frames and snapshots


def test_an_event_jumping_far_ahead_is_rejected_and_moves_nothing() -> None:
    sync = DepthSync("X")
    _live(sync)
    before = (sync.book.top(5), sync.book.last_update_id)
    assert not sync.on_depth(Ev(106, 106 + MAX_ID_STEP, 105, [(10.0, 99.0)]))  # chains on pu
    assert not sync.on_depth(Ev(106, 2 * MAX_ID_STEP, 104, [(10.0, 99.0)]))  # and a "gap"
    assert (sync.book.top(5), sync.book.last_update_id) == before
    assert sync.is_live and sync.resets == 0 and sync.implausible == 2
    assert sync.on_depth(Ev(106, 108, 105, [(10.0, 7.0)]))  # the real stream goes on
    assert sync.book.bids.qty[10.0] == 7.0


def test_an_absurd_first_buffered_event_cannot_become_the_bridge() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(MAX_ID_STEP * 5, MAX_ID_STEP * 5, 3))
    sync.on_depth(Ev(95, 105, 90, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.on_snapshot(Snap(100, [(10.0, 5.0)], [(12.0, 1.0)]))
    assert sync.is_live and sync.book.last_update_id == 105 and sync.implausible == 1


def test_a_snapshot_far_from_every_buffered_event_is_asked_for_again() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(95, 105, 90))
    sync.drain()
    sync.on_snapshot(Snap(105 + 3 * MAX_ID_STEP))
    assert sync.state is BookState.SYNCING and sync.snapshot_pending
    assert sync.drain() == [SnapshotNeeded("X", "snapshot id far from the stream's")]
    sync.on_snapshot(Snap(100, [(10.0, 5.0)], [(12.0, 1.0)]))
    assert sync.is_live and sync.implausible == 1


def test_a_snapshot_the_stream_never_reaches_is_dropped_and_asked_for_again() -> None:
    sync = DepthSync("X")
    sync.on_depth(Ev(95, 105, 90))
    sync.drain()
    sync.on_snapshot(Snap(10**9))  # plausible as an id, but the stream is far behind it
    u = 105
    for _ in range(MAX_BEFORE_BRIDGE - 1):
        sync.on_depth(Ev(u + 1, u + 2, u))
        u += 2
    assert not sync.snapshot_pending and sync.state is BookState.SYNCING
    sync.on_depth(Ev(u + 1, u + 2, u))
    assert sync.drain() == [SnapshotNeeded("X", "snapshot ahead of the stream")]
    sync.on_snapshot(Snap(u + 1))
    assert sync.is_live and sync.book.last_update_id == u + 2


HOSTILE = ["chain_far_ahead", "gap_far_ahead", "span_far_back", "far_behind", "zero_ids"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(changes, min_size=5, max_size=40),
    st.lists(st.integers(1, 7), min_size=40, max_size=40),
    st.integers(0, 39),
    st.sampled_from(HOSTILE),
    st.lists(st.tuples(st.integers(0, 1), st.integers(1, 40), st.integers(0, 9)), max_size=5),
)
def test_any_one_hostile_event_changes_nothing_but_counters(
    draw_levels: list[list[tuple[int, int, int]]],
    id_steps: list[int],
    position: int,
    kind: str,
    garbage: list[tuple[int, int, int]],
) -> None:
    """The book after every real event is the same with and without one hostile event."""
    exchange = ModelExchange(draw_levels, id_steps, start=7 * 10**12)
    levels = [(79.0 + t if s == 0 else 100.0 + t, float(q)) for s, t, q in garbage]

    def run(hostile_after: int | None) -> list[tuple[object, ...]]:
        sync = DepthSync("X")
        seen: list[tuple[object, ...]] = []
        for index, ev in enumerate(exchange.events):
            sync.on_depth(ev)
            if index == hostile_after:
                u = sync.book.last_update_id or ev.u
                bad = {
                    "chain_far_ahead": Ev(u + 1, u + MAX_ID_STEP + 1, u, levels, levels),
                    "gap_far_ahead": Ev(u + 1, u + 5 * MAX_ID_STEP, u - 1, levels, levels),
                    "span_far_back": Ev(0, u + 1, u, levels, levels),
                    "far_behind": Ev(1, 2, 0, levels, levels),
                    "zero_ids": Ev(0, 0, 0, levels, levels),
                }[kind]
                sync.on_depth(bad)
            if sync.snapshot_pending:
                sync.drain()
                sync.on_snapshot(exchange.snapshot_at(ev.u))
            sync.drain()
            seen.append(
                (sync.state, sync.book.last_update_id, dict(sync.book.bids.qty),
                 dict(sync.book.asks.qty), sync.resets)
            )  # fmt: skip
        return seen

    assert run(position) == run(None)


# ------------------------------------------------------------- re-base and audit


def _live_at(sync: DepthSync, bids: list[Level], asks: list[Level]) -> None:
    """Live on snapshot 100 (these levels) bridged by an empty event 95..105."""
    sync.on_depth(Ev(95, 105, 90))
    sync.on_snapshot(Snap(100, bids, asks))
    sync.drain()
    assert sync.is_live


def test_a_refresh_rebases_the_live_book_without_leaving_live() -> None:
    sync = DepthSync("X", audit_depth=2)
    _live_at(sync, [(10.0, 1.0), (9.0, 1.0), (5.0, 1.0)], [(11.0, 1.0), (12.0, 1.0)])
    assert sync.request_refresh()
    assert sync.drain() == [SnapshotNeeded("X", "refresh")]
    assert not sync.request_refresh()  # one at a time
    sync.on_depth(Ev(106, 108, 105, [(9.0, 2.0)]))
    sync.on_depth(Ev(109, 112, 108, [(10.0, 3.0)]))
    # The exchange dropped 5.0 without a delete (outside its window): the snapshot lacks it.
    sync.on_snapshot(Snap(107, [(10.0, 1.0), (9.0, 2.0)], [(11.0, 1.0), (12.0, 1.0)]))
    assert sync.is_live and sync.resets == 0
    assert sync.drain() == [BookAudit("X", 112, 107, 0, 1, False)]
    assert sync.book.bids.qty == {10.0: 3.0, 9.0: 2.0}  # 5.0 is gone
    assert (sync.refreshes, sync.audit_window_differences, sync.audit_top_differences) == (1, 1, 0)
    assert sync.on_depth(Ev(113, 114, 112, [(9.5, 1.0)]))  # the chain goes on in the new book


def test_a_wrong_top_of_book_found_by_an_audit_resyncs() -> None:
    sync = DepthSync("X")
    _live_at(sync, [(10.0, 1.0)], [(11.0, 1.0)])
    sync.request_refresh()
    sync.drain()
    sync.on_depth(Ev(106, 108, 105))
    sync.on_snapshot(Snap(107, [(10.0, 4.0)], [(11.0, 1.0)]))  # the best bid's size differs
    outputs = sync.drain()
    assert outputs[0] == BookAudit("X", 108, 107, 1, 1, True)
    assert outputs[1] == BookReset("X", "audit")
    assert sync.audit_top_of_book == 1 and not sync.is_live


def test_a_refresh_snapshot_ahead_of_the_stream_waits_for_its_bridge() -> None:
    sync = DepthSync("X")
    _live_at(sync, [(10.0, 1.0)], [(11.0, 1.0)])
    sync.request_refresh()
    sync.drain()
    sync.on_snapshot(Snap(110, [(10.0, 2.0)], [(11.0, 1.0)]))  # REST is ahead of our stream
    assert sync.drain() == [] and sync.is_live
    sync.on_depth(Ev(106, 109, 105, [(10.0, 7.0)]))  # before 110: already in the snapshot
    sync.on_depth(Ev(110, 112, 109, [(10.0, 2.0)]))  # bridges 110
    assert sync.drain() == [BookAudit("X", 112, 110, 0, 0, False)]


def test_a_refresh_snapshot_older_than_the_kept_events_is_abandoned() -> None:
    sync = DepthSync("X")
    _live_at(sync, [(10.0, 1.0)], [(11.0, 1.0)])
    sync.request_refresh()
    sync.drain()
    sync.on_depth(Ev(106, 108, 105))
    sync.on_snapshot(Snap(103, [(10.0, 9.0)], [(11.0, 1.0)]))
    assert sync.drain() == [] and sync.is_live and sync.refreshes_abandoned == 1
    assert sync.book.bids.qty == {10.0: 1.0}
    assert sync.request_refresh()  # the next one may try again


# ------------------------------------------------------------- A/B lines


def _merge(events: list[Ev]) -> Ev:
    """One batch carrying several consecutive events: final quantities of (pu, u]."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    for ev in events:
        bids.update(ev.b)
        asks.update(ev.a)
    return Ev(events[0].U, events[-1].u, events[0].pu, list(bids.items()), list(asks.items()))


line_plan = st.lists(
    st.tuples(
        st.integers(1, 3),  # batch size
        st.sampled_from(["deliver"] * 8 + ["drop", "down"]),
        st.integers(0, 4),  # extra delay, in event steps
    ),
    min_size=60,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(changes, min_size=10, max_size=60),
    st.lists(st.integers(1, 7), min_size=60, max_size=60),
    line_plan,
    line_plan,
)
def test_two_lines_give_an_exact_book_and_resync_only_when_both_lost_an_update(
    draw_levels: list[list[tuple[int, int, int]]],
    id_steps: list[int],
    plan_a: list[tuple[int, str, int]],
    plan_b: list[tuple[int, str, int]],
) -> None:
    exchange = ModelExchange(draw_levels, id_steps)
    true = exchange.events
    # Each line batches the true sequence its own way, drops some batches, goes down for a
    # while, and delivers late by its own jitter (in order on each line).
    arrivals: list[tuple[float, int, str, Ev | None]] = []
    down_spans: list[list[tuple[int, int]]] = [[], []]
    for line, plan in enumerate((plan_a, plan_b)):
        index, clock, steps = 0, 0.0, iter(plan)
        down_until = -1
        while index < len(true):
            size, action, delay = next(steps, (1, "deliver", 0))
            batch = true[index : index + size]
            end = index + len(batch) - 1
            clock = max(clock, end + delay + line * 0.01)
            if index <= down_until:
                pass  # the line is down: lost
            elif action == "down":
                down_until = end + 3
                down_spans[line].append((index, down_until))
                arrivals.append((index - 0.5, line, "down", None))
                arrivals.append((down_until + 0.25, line, "up", None))
            elif action == "deliver":
                arrivals.append((clock, line, "event", _merge(batch)))
            index = end + 1
    arrivals.sort(key=lambda a: a[0])
    # A line that is down delivers nothing, not even what was still in flight on it.
    is_down, kept = [False, False], []
    delivered = [set(), set()]
    for arrival in arrivals:
        _, line, kind, ev = arrival
        if kind != "event":
            is_down[line] = kind == "down"
        elif is_down[line]:
            continue
        else:
            assert ev is not None
            delivered[line].update(i for i, e in enumerate(true) if ev.pu < e.u <= ev.u)
        kept.append(arrival)
    arrivals = kept
    sync = DepthSync("X", lines=2, max_buffer=1000)
    sync.on_line_up(0)  # both lines connect at the start; the markers say the rest
    sync.on_line_up(1)
    first_live_at: int | None = None
    reasons: list[str] = []
    for _, line, kind, ev in arrivals:
        if kind == "down":
            sync.on_disconnect(line)
            continue
        if kind == "up":
            sync.on_line_up(line)
            continue
        assert ev is not None
        sync.on_depth(ev, line)
        if sync.snapshot_pending:
            reasons.extend(o.reason for o in sync.drain() if isinstance(o, BookReset))
            sync.on_snapshot(exchange.snapshot_at(ev.u))
        reasons.extend(o.reason for o in sync.drain() if isinstance(o, BookReset))
        if sync.is_live:
            if first_live_at is None:
                first_live_at = next(i for i, e in enumerate(true) if e.u == ev.u)
            bids, asks = exchange.history[sync.book.last_update_id]
            assert sync.book.bids.qty == bids and sync.book.asks.qty == asks
    if first_live_at is None:
        return
    both_down = any(a0 <= b1 and b0 <= a1 for a0, a1 in down_spans[0] for b0, b1 in down_spans[1])
    lost_by_both = any(
        i not in delivered[0] and i not in delivered[1] for i in range(first_live_at, len(true))
    )
    if not both_down and not lost_by_both:
        assert sync.resets == 0, reasons
    # Every applied event was some line's first arrival, but the bridge on a snapshot.
    assert sync.applied - sync.snapshots_applied <= sum(sync.first_arrivals) <= sync.applied


def test_a_line_that_drops_costs_nothing_while_the_other_carries_the_book() -> None:
    sync = DepthSync("X", lines=2)
    sync.on_line_up(0)
    sync.on_line_up(1)
    sync.on_depth(Ev(95, 105, 90), line=0)
    sync.on_snapshot(Snap(100, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.drain()
    sync.on_depth(Ev(95, 105, 90), line=1)  # the copy from the slower line
    sync.on_disconnect(0)
    assert sync.is_live and sync.resets == 0
    assert sync.on_depth(Ev(106, 108, 105, [(10.0, 2.0)]), line=1)
    sync.on_line_up(0)
    assert sync.on_depth(Ev(109, 112, 106, [(10.0, 3.0)]), line=0)  # overlaps: pu < u < ...
    assert sync.book.bids.qty == {10.0: 3.0} and sync.book.last_update_id == 112
    assert (sync.first_arrivals, sync.line_duplicates) == ([1, 1, 0], [0, 1, 0])
    sync.on_disconnect(1)
    sync.on_disconnect(0)
    assert sync.drain() == [BookReset("X", "reconnect")]


def test_an_event_that_goes_backwards_but_claims_to_chain_is_not_applied() -> None:
    sync = DepthSync("X")
    _live(sync)
    assert not sync.on_depth(Ev(0, 1, 105, [(10.0, 99.0)]))  # pu == last u, u far below
    assert sync.book.last_update_id == 105 and sync.book.bids.qty[10.0] != 99.0
    assert sync.on_depth(Ev(106, 107, 105))  # the real stream goes on


def test_a_run_of_absurd_jumps_resets_instead_of_freezing() -> None:
    sync = DepthSync("X")
    _live(sync)
    for i in range(MAX_STALE_RUN):
        sync.on_depth(Ev(106, 106 + 2 * MAX_ID_STEP + i, 105 + i))
    assert sync.drain()[-1] == BookReset("X", "implausible_stream")


def test_a_refresh_given_up_on_does_not_leave_a_snapshot_pending() -> None:
    sync = DepthSync("X", max_buffer=5)
    _live(sync)
    assert sync.request_refresh()
    u = 105
    for _ in range(6):  # the refresh snapshot never comes: the kept events overflow
        sync.on_depth(Ev(u + 1, u + 2, u))
        u += 2
    assert not sync.snapshot_pending and sync.refreshes_abandoned == 1
    sync.on_snapshot(Snap(u))  # arrives after all: ignored
    assert sync.is_live and sync.request_refresh()


def test_a_refresh_snapshot_the_stream_never_reaches_is_given_up() -> None:
    sync = DepthSync("X")
    _live(sync)
    sync.request_refresh()
    sync.drain()
    sync.on_snapshot(Snap(10**9))  # far ahead of the stream, yet plausible
    u = 105
    for _ in range(MAX_BEFORE_BRIDGE):
        sync.on_depth(Ev(u + 1, u + 2, u))
        u += 2
    assert sync.refreshes_abandoned == 1 and sync.request_refresh()


def test_a_line_that_never_connected_does_not_count_as_up() -> None:
    """Line b never came up: when line a drops, no line carries the book."""
    sync = DepthSync("X", lines=2)
    sync.on_line_up(0)
    sync.on_depth(Ev(95, 105, 90), line=0)
    sync.on_snapshot(Snap(100, [(10.0, 1.0)], [(11.0, 1.0)]))
    sync.drain()
    sync.on_disconnect(0)
    assert sync.drain() == [BookReset("X", "reconnect")]


def test_copies_from_a_line_that_lags_far_behind_never_reset_the_book() -> None:
    sync = DepthSync("X", lines=2)
    sync.on_line_up(0)
    sync.on_line_up(1)
    sync.on_depth(Ev(95, 105, 90), line=0)
    sync.on_snapshot(Snap(100))
    u, events = 105, []
    for _ in range(30):  # line a runs 30 events ahead
        events.append(Ev(u + 1, u + 2, u))
        sync.on_depth(events[-1], line=0)
        u += 2
    for ev in events:  # then line b delivers its copies, all old, nothing applied between
        sync.on_depth(ev, line=1)
    assert sync.is_live and sync.resets == 0 and sync.line_duplicates[1] == 30


def test_while_syncing_the_other_lines_copies_are_not_buffered_twice() -> None:
    sync = DepthSync("X", lines=2, max_buffer=4)
    sync.on_line_up(0)
    sync.on_line_up(1)
    u = 100
    for _ in range(4):  # four events, each delivered by both lines
        ev = Ev(u + 1, u + 2, u)
        sync.on_depth(ev, line=0)
        sync.on_depth(Ev(ev.U, ev.u, ev.pu), line=1)
        u += 2
    assert sync.buffered == 4 and sync.overflows == 0
