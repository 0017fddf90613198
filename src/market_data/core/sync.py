"""The diff-depth + REST-snapshot synchronisation state machine.

Implements Binance's "How to manage a local order book correctly" procedure
for USD-M futures (BINANCE_FUTURES.md §1), with no I/O and no clock:

1. Buffer diff events from the moment of subscribing (state ``WAITING`` until
   the first one arrives, then ``SYNCING``).
2. Ask for a snapshot only once at least one event is buffered, so the
   snapshot cannot predate the stream (:class:`SnapshotNeeded`).
3. On the snapshot (last update id ``L``) drop buffered events with ``u < L``.
4. The first event applied must satisfy ``U <= L <= u``, or ``pu == L``.
   If the first remaining event starts after ``L``, the snapshot is too old:
   ask for another, keeping the buffer.
5. From then on every event's ``pu`` must equal the previous event's ``u``.
   Anything else is a gap: the book is discarded, rebuilt from empty, and a
   new snapshot is requested while buffering continues from the event that
   revealed the gap. Events with ``u`` at or below the last applied ``u`` are
   stale re-deliveries of what the book already holds: dropped and counted
   (a long run of nothing else means the ids went backwards: a reset), except
   one whose ``u`` lies between the last two applied ones, which copies no
   applied event: the last ``u`` was not the stream's (a gap). The same rule
   holds inside the buffer: a snapshot bridges only with its newest unbroken
   run, so an event before a break (one that revealed a gap included) is never
   the first applied.
6. Quantities are absolute; zero removes a level; removing an absent level is
   normal (``book.py``).

Hostile or broken frames (BINANCE_FUTURES.md has none of these, so each rule
is the most the exchange could do): an event that jumps more than
:data:`MAX_ID_STEP` ids beyond the book (or spans more than that itself), and
a snapshot whose id is that far from every buffered event, are rejected and
counted (``implausible``) without moving any state: no reset, no new baseline.
A loaded snapshot that no event reaches within :data:`MAX_BEFORE_BRIDGE`
events is dropped and asked for again, so one absurd ``lastUpdateId`` cannot
leave a book syncing for good.

Extra safety, from peers' failures: a crossed book after an event, a buffer
overflow (bounded buffer, kept across snapshot retries) and a reconnect each
reset the book too. Every reset is announced (:class:`BookReset`) and every
return to a correct book too (:class:`BookLive`), so consumers never mistake
a stale book for a live one.

Redundant lines (A/B feeds, ``lines > 1``): the same streams arrive over several
connections, and each event is taken from whichever line delivers it first.
Why this is exact even when the lines batch updates differently: an event
carries the *final* quantity of every level changed in ``(pu, u]``. If the book
is exact at ``last_u`` and ``pu <= last_u < u``, the levels changed in
``(pu, last_u]`` are already right and the event overwrites each with its value
at ``u``; every level changed in ``(last_u, u]`` is in the event too. So the
book is exact at ``u``: the event may be applied whenever ``pu <= last_u < u``.
An event with ``u <= last_u`` holds nothing new: a duplicate, dropped. An event
with ``pu > last_u`` cannot be applied yet; it waits (per line, bounded) while
another connected line may still deliver what bridges to it, and is applied
as soon as the chain reaches it. Only when every connected line is past the
chain (no line can continue it) is it a gap. A line that disconnects while
another is up costs nothing: no reset, no snapshot; what it delivered before
stays usable.

Re-base and audit (depth-cache rot, BINANCE_FUTURES.md §5): :meth:`request_refresh`
asks for a fresh snapshot while the book stays live. Events applied from then on
are kept; when the snapshot arrives, a second book is built beside the live one
from it plus those events (step 4's bridge, then the chain), and once both are at
the same update id they are compared (levels touched by the bridging event
excepted, since both books hold the exchange's latest quantities for them) and
the fresh book replaces the live one. Nothing leaves ``LIVE``: the only visible
effect is that levels the exchange dropped without a delete are gone. The
comparison is reported (:class:`BookAudit`); a difference at the top of the book
means the live book was published wrong, and it is reset and resynced.

Calls in, events out: the I/O layer calls :meth:`DepthSync.on_depth`,
:meth:`~DepthSync.on_snapshot`, :meth:`~DepthSync.on_snapshot_failed` and
:meth:`~DepthSync.on_disconnect`, then :meth:`~DepthSync.drain` s the outputs.
The hot path (a live book receiving a continuous event) produces no output
object: ``on_depth`` returns ``True`` when the live book changed.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from market_data.core.book import DEFAULT_MAX_LEVELS, BookSide, Level, OrderBook
from market_data.core.state import BookState

DEFAULT_MAX_BUFFER = 1_000
#: Stale events in a row, with nothing applied between them, that reset a live book
#: (the stream's ids went backwards: the exchange restarted its sequence).
MAX_STALE_RUN = 10
#: The largest step of update ids that can be real. Futures ids grow by roughly
#: 10**12 a year (about 6e11 in 2021 captures, ~10**13 now), so a step this large
#: inside one stream is a broken frame, never a real event.
MAX_ID_STEP = 10**12
#: Events before a loaded snapshot's id, in a row, after which the snapshot is suspect
#: (a real stream reaches a fresh snapshot within a second or two).
MAX_BEFORE_BRIDGE = 100
#: Events one line may hold ahead of the chain while another line catches up.
MAX_AHEAD = 100
#: How far back in the buffer a copy from another line is looked for (lines > 1).
BUFFER_COPY_WINDOW = 32


class Run:
    """Consecutive dropped events with nothing applied between them."""

    __slots__ = ("_mark", "length")

    def __init__(self) -> None:
        self._mark = -1  # the ``applied`` count when the run began
        self.length = 0

    def extend(self, applied: int) -> int:
        """One more dropped event, ``applied`` events having been applied so far."""
        if self._mark != applied:  # something was applied since: a new run
            self._mark = applied
            self.length = 0
        self.length += 1
        return self.length


class DepthDiff(Protocol):
    """What the state machine needs of a diff-depth event."""

    E: int  # event time, ms (for what the book's hooks hand on)
    U: int  # first update id in event
    u: int  # final update id in event
    pu: int  # final update id of the previous event
    b: list[Level]  # bids, absolute quantities
    a: list[Level]  # asks


class Snapshot(Protocol):
    """What the state machine needs of a REST depth snapshot."""

    lastUpdateId: int  # noqa: N815 - the exchange's field name
    bids: list[Level]
    asks: list[Level]


@dataclass(frozen=True, slots=True)
class SnapshotNeeded:
    """Fetch ``GET /fapi/v1/depth`` for this symbol and call ``on_snapshot``."""

    symbol: str
    reason: str


@dataclass(frozen=True, slots=True)
class BookReset:
    """The book was discarded; it is not correct until the next BookLive."""

    symbol: str
    # "gap", "crossed", "reconnect", "buffer_overflow", "stale_stream", "implausible_stream",
    # "audit"
    reason: str


@dataclass(frozen=True, slots=True)
class BookLive:
    """The book is correct again, starting from a snapshot.

    ``first_U``/``first_u``/``first_pu`` identify the first event applied on
    top of the snapshot ``snapshot_id``, so tests can check the bridge.
    """

    symbol: str
    snapshot_id: int
    first_U: int  # noqa: N815
    first_u: int
    first_pu: int


@dataclass(frozen=True, slots=True)
class BookAudit:
    """The live book compared with a fresh one at the same update id (a re-base)."""

    symbol: str
    update_id: int
    snapshot_id: int
    top_differences: int  # differing levels among the top ``audit_depth`` of each side
    window_differences: int  # differing levels in the whole book
    top_of_book: bool  # the best bid or ask differed: the published book was wrong


SyncOutput = SnapshotNeeded | BookReset | BookLive | BookAudit


class DepthSync:
    """One symbol's diff book and the procedure that keeps it correct."""

    def __init__(
        self,
        symbol: str,
        *,
        max_buffer: int = DEFAULT_MAX_BUFFER,
        max_levels: int = DEFAULT_MAX_LEVELS,
        on_applied: Callable[[DepthDiff], None] | None = None,
        audit_depth: int = 20,
        lines: int = 1,
    ) -> None:
        self.symbol = symbol
        self.lines = lines
        #: Per line: events delivered beyond the chain, waiting for it (A/B feeds); the
        #: extra last list holds buffered events replayed after a snapshot (line unknown).
        self._ahead: list[list[DepthDiff]] = [[] for _ in range(lines + 1)]
        self._waiting = 0  # events in all _ahead lists
        # Lines that are not connected: all of them until each says it is up.
        self._down: set[int] = set(range(lines)) if lines > 1 else set()
        #: Per line: events it delivered first (applied), and copies it delivered late.
        self.first_arrivals = [0] * (lines + 1)
        self.line_duplicates = [0] * (lines + 1)
        # Per line, the highest u it delivered: a copy that moves its own line forward
        # is a lagging line's; one below it means that line's ids went backwards.
        self._line_last_u = [0] * (lines + 1)
        self.max_levels = max_levels
        self.audit_depth = audit_depth
        self.book = OrderBook(symbol, max_levels=max_levels)
        self.state = BookState.WAITING
        self.max_buffer = max_buffer
        #: Called after every event applied to a live book, with the book as it is after
        #: it (history rows, replay traces, tests); not for one whose re-base audit found
        #: the top of the book wrong, which resets the book instead.
        self.on_applied = on_applied
        self._buffer: list[DepthDiff] = []
        self._outputs: list[SyncOutput] = []
        self._snapshot_pending = False
        self._snapshot_id: int | None = None  # set while a loaded snapshot awaits its bridge
        self._last_u = 0
        self._stale_run = Run()
        self._implausible_run = Run()
        #: The last event applied to a correct book (its exchange time is the book's).
        self.last_applied: DepthDiff | None = None
        # Counters (plain attributes: cheap on the hot path).
        self.events = 0
        self.applied = 0
        self.dropped_before_sync = 0
        self.stale = 0
        self.gaps = 0
        self.resets = 0
        #: Why the book was last discarded ("" before any reset): shown by the web view.
        self.last_reset_reason = ""
        self.crossed = 0
        self.overflows = 0
        self.snapshots_requested = 0
        self.snapshots_applied = 0
        self.snapshots_rejected = 0
        self.snapshots_ignored = 0
        self.implausible = 0  # events and snapshots rejected for absurd ids
        self._before_bridge = 0  # events dropped in a row while a loaded snapshot waits
        # Re-base: events applied since the refresh was asked for, then the fresh book.
        self._rebase: list[DepthDiff] | None = None
        self._shadow: OrderBook | None = None
        self._shadow_id = 0
        self._shadow_bridged = False
        self._shadow_waited = 0
        self._touched: tuple[set[float], set[float]] = (set(), set())
        self.refreshes = 0  # re-bases completed
        self.refreshes_abandoned = 0  # a refresh snapshot that could not be bridged
        self.audit_top_differences = 0  # summed over audits
        self.audit_window_differences = 0
        self.audit_top_of_book = 0  # audits that found the top of the book wrong

    # ------------------------------------------------------------------ calls in

    def on_depth(self, ev: DepthDiff, line: int = 0) -> bool:
        """Feed one diff event (from ``line``); ``True`` when the live book changed."""
        self.events += 1
        if self.state is BookState.LIVE:  # the hot path, inlined
            last_u = self._last_u
            u = ev.u
            if ev.pu == last_u and 0 < u - last_u <= MAX_ID_STEP and u - ev.U <= MAX_ID_STEP:
                self.book.apply(ev.b, ev.a, u)
                self._last_u = u
                if self.lines == 1:
                    return self._after_apply(ev)
                self.first_arrivals[line] += 1
                self._line_last_u[line] = u
                changed = self._after_apply(ev)
                if self._waiting:
                    self._catch_up()
                return changed
        return self._feed(ev, line)

    def _feed(self, ev: DepthDiff, line: int = 0) -> bool:
        if ev.u - ev.U > MAX_ID_STEP:
            if self.state is BookState.LIVE:
                return self._on_implausible()
            self.implausible += 1
            return False
        if self.state is BookState.LIVE:
            last_u = self._last_u
            if ev.u - last_u > MAX_ID_STEP:
                return self._on_implausible()
            if self.lines > 1:
                return self._arbitrate(ev, line)
            if ev.u <= last_u:  # holds nothing new (whatever its pu says)
                applied = self.last_applied
                if applied is not None and applied.u == last_u and applied.pu < ev.u < last_u:
                    # No event with an id between the last two applied ones was applied:
                    # not a copy of one. The last applied u is not the stream's (one bad
                    # event jumped it ahead): the chain is broken (step 5).
                    self.gaps += 1
                    self._reset("gap", restart_from=ev)
                    return False
                return self._on_stale()
            if ev.pu != last_u:
                self.gaps += 1
                self._reset("gap", restart_from=ev)
                return False
            self.book.apply(ev.b, ev.a, ev.u)
            self._last_u = ev.u
            return self._after_apply(ev)
        if self._snapshot_id is not None:
            return self._bridge_with(ev)
        self._buffer_event(ev)
        return False

    def request_refresh(self) -> bool:
        """Ask for a snapshot to re-base the live book on; False unless live and idle."""
        if (
            self.state is not BookState.LIVE
            or self._rebase is not None
            or self._shadow is not None
            or self._snapshot_pending
        ):
            return False
        self._rebase = []
        self._request_snapshot("refresh")
        return True

    def on_snapshot(self, snap: Snapshot) -> None:
        """Feed the REST snapshot that a :class:`SnapshotNeeded` asked for."""
        if self.state is BookState.LIVE and self._rebase is not None:
            self._snapshot_pending = False
            self._start_shadow(snap)
            return
        if self.state is not BookState.SYNCING or self._snapshot_id is not None:
            self.snapshots_ignored += 1  # not what the current request is waiting for
            if self.state is BookState.LIVE and self._rebase is None:
                self._snapshot_pending = False  # a refresh given up on: nothing waits
            return
        self._snapshot_pending = False
        last_id = snap.lastUpdateId
        buffer = self._buffer
        near = [ev for ev in buffer if abs(ev.u - last_id) <= MAX_ID_STEP]
        if buffer and not near:  # it disagrees with every event: the snapshot is wrong
            self.implausible += 1
            self.snapshots_rejected += 1
            self._request_snapshot("snapshot id far from the stream's")
            return
        if len(near) != len(buffer):  # events far from a snapshot the others agree with
            self.implausible += len(buffer) - len(near)
            buffer[:] = near
        if self.lines == 1 and (broken := _last_break(buffer)):
            # Step 5 inside the buffer: only the newest unbroken run can reach the stream
            # that follows; what came before a break (a gap, or one bad event kept as the
            # restart of the last reset) must not become the bridge.
            self.dropped_before_sync += broken
            del buffer[:broken]
        keep = 0
        while keep < len(buffer) and buffer[keep].u < last_id:
            keep += 1
        if keep:
            self.dropped_before_sync += keep
            del buffer[:keep]
        if buffer and not _bridges(buffer[0], last_id):
            self.snapshots_rejected += 1
            self._request_snapshot("snapshot older than buffered events")
            return
        self.snapshots_applied += 1
        self.book.load(snap.bids, snap.asks, last_id)
        self._snapshot_id = last_id
        self._before_bridge = 0
        if buffer:
            pending = buffer[:]
            buffer.clear()
            for ev in pending:
                self._feed(ev, self.lines)  # buffered: its line is not known any more

    def on_snapshot_failed(self, reason: str) -> None:
        """The snapshot request failed; ask again (the I/O layer backs off)."""
        self._snapshot_pending = False
        if self._rebase is not None:  # a refresh: the next one will try again
            self._rebase = None
            self.refreshes_abandoned += 1
        if self.state is BookState.SYNCING and self._snapshot_id is None:
            self._request_snapshot(reason)

    def on_disconnect(self, line: int | None = None) -> None:
        """A line broke (None: all of them). While another line is up, nothing is lost."""
        if line is not None and self.lines > 1:
            self._down.add(line)  # what it delivered before is real and kept
            if len(self._down) < self.lines:
                if self.state is BookState.LIVE and self._waiting:
                    self._gap_if_stuck(None)
                return
        if self.state is BookState.WAITING and not self._buffer:
            return
        self._reset("reconnect", restart_from=None)

    def on_line_up(self, line: int) -> None:
        """A line (re)connected: it may carry the chain again."""
        self._down.discard(line)

    # --------------------------------------------------------------- events out

    def drain(self) -> list[SyncOutput]:
        """Outputs produced since the last call, oldest first."""
        outputs = self._outputs
        if not outputs:
            return outputs
        self._outputs = []
        return outputs

    @property
    def is_live(self) -> bool:
        return self.state is BookState.LIVE

    @property
    def has_outputs(self) -> bool:
        """Whether :meth:`drain` has anything: a cheap check for the hot path."""
        return bool(self._outputs)

    @property
    def snapshot_pending(self) -> bool:
        return self._snapshot_pending

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def counters(self) -> dict[str, int]:
        """All counters by name, for summaries and metrics."""
        return {
            "events": self.events,
            "applied": self.applied,
            "dropped_before_sync": self.dropped_before_sync,
            "stale": self.stale,
            "gaps": self.gaps,
            "resets": self.resets,
            "crossed": self.crossed,
            "buffer_overflows": self.overflows,
            "snapshots_requested": self.snapshots_requested,
            "snapshots_applied": self.snapshots_applied,
            "snapshots_rejected": self.snapshots_rejected,
            "snapshots_ignored": self.snapshots_ignored,
            "implausible": self.implausible,
            "refreshes": self.refreshes,
            "refreshes_abandoned": self.refreshes_abandoned,
        }

    # ----------------------------------------------------------------- internals

    def _on_implausible(self) -> bool:
        """An absurd jump: dropped; a run of nothing else means the stream really jumped."""
        self.implausible += 1
        if self._implausible_run.extend(self.applied) >= MAX_STALE_RUN:
            self._reset("implausible_stream", restart_from=None)
        return False

    def _on_stale(self) -> bool:
        """An event the book already holds: drop it, unless nothing new comes any more.

        A long run of them with nothing applied in between means the stream's
        ids went backwards (not a re-delivery): the book would sit "live" and
        frozen, so it is reset instead.
        """
        self.stale += 1
        if self._stale_run.extend(self.applied) >= MAX_STALE_RUN:
            self._reset("stale_stream", restart_from=None)
        return False

    def _after_apply(self, ev: DepthDiff) -> bool:
        if self.book.is_crossed():
            self.crossed += 1
            self._reset("crossed", restart_from=None)
            return False
        self.applied += 1
        self.last_applied = ev
        if self._rebase is not None:
            self._keep_for_rebase(ev)
        elif self._shadow is not None:
            self._feed_shadow(ev)
        if self.on_applied is not None and self.state is BookState.LIVE:
            self.on_applied(ev)  # not after an audit reset: the book is gone
        return True

    # ------------------------------------------------------------ A/B lines

    def _arbitrate(self, ev: DepthDiff, line: int) -> bool:
        """A live event on one of several lines (see the module doc for why it is exact)."""
        last_u = self._last_u
        line_last = self._line_last_u
        forward = ev.u > line_last[line]
        if forward:
            line_last[line] = ev.u
        if ev.u <= last_u:
            self.line_duplicates[line] += 1
            if forward:
                self.stale += 1  # a copy from a line that lags: normal
                return False
            return self._on_stale()
        if last_u - ev.pu > MAX_ID_STEP:  # claims to continue from absurdly far back
            self.implausible += 1
            return False
        if ev.pu <= last_u:
            self.book.apply(ev.b, ev.a, ev.u)
            self._last_u = ev.u
            self.first_arrivals[line] += 1
            line_last[line] = max(line_last[line], ev.u)
            changed = self._after_apply(ev)
            if self._waiting and self.is_live:
                self._catch_up()
            return changed
        ahead = self._ahead[line]
        ahead.append(ev)
        self._waiting += 1
        self._gap_if_stuck(ev)
        return False

    def _catch_up(self) -> None:
        """Apply waiting events the chain has reached; drop those it has passed."""
        progressed = True
        while progressed and self.is_live and self._waiting:
            progressed = False
            for line, ahead in enumerate(self._ahead):
                while ahead and self.is_live:
                    head = ahead[0]
                    if head.u <= self._last_u:
                        ahead.pop(0)
                        self._waiting -= 1
                        self.line_duplicates[line] += 1
                        continue
                    if head.pu > self._last_u:
                        break
                    ahead.pop(0)
                    self._waiting -= 1
                    self.book.apply(head.b, head.a, head.u)
                    self._last_u = head.u
                    self.first_arrivals[line] += 1
                    self._after_apply(head)
                    progressed = True

    def _gap_if_stuck(self, ev: DepthDiff | None) -> None:
        """A gap when no connected line can continue the chain (or one is too far ahead)."""
        connected = [line for line in range(self.lines) if line not in self._down]
        stuck = all(self._ahead[line] for line in connected)
        if not stuck and not any(len(a) > MAX_AHEAD for a in self._ahead):
            return
        restart = min((a[0] for a in self._ahead if a), key=lambda e: e.pu, default=ev)
        self.gaps += 1
        self._reset("gap", restart_from=restart)

    # ----------------------------------------------------------- re-base, audit

    def _keep_for_rebase(self, ev: DepthDiff) -> None:
        rebase = self._rebase
        assert rebase is not None
        if len(rebase) >= self.max_buffer:  # the snapshot is not coming: give up this one
            self._rebase = None
            self._snapshot_pending = False  # nothing waits for it any more
            self.refreshes_abandoned += 1
            return
        rebase.append(ev)

    def _start_shadow(self, snap: Snapshot) -> None:
        """Build the fresh book from ``snap`` and the events kept since the request."""
        events = self._rebase or []
        self._rebase = None
        last_id = snap.lastUpdateId
        if abs(last_id - self._last_u) > MAX_ID_STEP:
            self.implausible += 1
            self.refreshes_abandoned += 1
            return
        shadow = OrderBook(self.symbol, max_levels=self.max_levels)
        shadow.load(snap.bids, snap.asks, last_id)
        self._shadow, self._shadow_id = shadow, last_id
        self._shadow_waited = 0
        self._shadow_bridged = last_id == self._last_u and not any(e.u > last_id for e in events)
        self._touched = (set(), set())
        if self._shadow_bridged:
            self._finish_rebase()
            return
        for ev in events:
            self._feed_shadow(ev)
            if self._shadow is None:
                return

    def _feed_shadow(self, ev: DepthDiff) -> None:
        """One live event into the fresh book: bridge first (step 4), then the chain."""
        shadow = self._shadow
        assert shadow is not None
        if not self._shadow_bridged:
            if ev.u < self._shadow_id:  # the snapshot holds it already
                self._shadow_waited += 1
                if self._shadow_waited >= MAX_BEFORE_BRIDGE:  # the stream never gets there
                    self._shadow = None
                    self.refreshes_abandoned += 1
                return
            if not _bridges(ev, self._shadow_id):  # the snapshot predates the kept events
                self._shadow = None
                self.refreshes_abandoned += 1
                return
            self._shadow_bridged = True
            self._touched = ({p for p, _ in ev.b}, {p for p, _ in ev.a})
        shadow.apply(ev.b, ev.a, ev.u)
        if shadow.last_update_id == self._last_u:
            self._finish_rebase()

    def _finish_rebase(self) -> None:
        """Both books are at the same update id: compare them, then keep the fresh one."""
        fresh = self._shadow
        assert fresh is not None
        self._shadow = None
        live = self.book
        touched_bids, touched_asks = self._touched
        depth = self.audit_depth
        top = _differences(live.bids, fresh.bids, touched_bids, depth) + _differences(
            live.asks, fresh.asks, touched_asks, depth
        )
        window = _differences(live.bids, fresh.bids, touched_bids, None) + _differences(
            live.asks, fresh.asks, touched_asks, None
        )
        wrong_top = _differences(live.bids, fresh.bids, touched_bids, 1) + _differences(
            live.asks, fresh.asks, touched_asks, 1
        )
        self.refreshes += 1
        self.audit_top_differences += top
        self.audit_window_differences += window
        audit = BookAudit(self.symbol, self._last_u, self._shadow_id, top, window, wrong_top > 0)
        self._outputs.append(audit)
        if wrong_top:
            self.audit_top_of_book += 1
            self._reset("audit", restart_from=None)
            return
        self.book = fresh

    def _bridge_with(self, ev: DepthDiff) -> bool:
        """First event after a loaded snapshot: step 4 of the procedure."""
        snapshot_id = self._snapshot_id
        assert snapshot_id is not None
        if ev.U > snapshot_id + MAX_ID_STEP:  # far beyond the snapshot: not the stream's
            self.implausible += 1
            return False
        if ev.u < snapshot_id:
            self.dropped_before_sync += 1
            self._before_bridge += 1
            if self._before_bridge >= MAX_BEFORE_BRIDGE:  # the stream never gets there
                self.snapshots_rejected += 1
                self.book.clear()
                self._snapshot_id = None
                self._buffer.append(ev)
                self._request_snapshot("snapshot ahead of the stream")
            return False
        if not _bridges(ev, snapshot_id):
            self.snapshots_rejected += 1
            self.book.clear()
            self._snapshot_id = None
            self._buffer.append(ev)
            self._request_snapshot("snapshot older than the stream")
            return False
        self._snapshot_id = None
        self.state = BookState.LIVE
        self.book.apply(ev.b, ev.a, ev.u)
        self._last_u = ev.u
        if not self.book.is_crossed():
            self._outputs.append(BookLive(self.symbol, snapshot_id, ev.U, ev.u, ev.pu))
        return self._after_apply(ev)

    def _buffer_event(self, ev: DepthDiff) -> None:
        buffer = self._buffer
        if self.lines > 1 and any(
            e.u == ev.u and e.pu == ev.pu for e in buffer[-BUFFER_COPY_WINDOW:]
        ):  # the other line's copy of an event already buffered
            self.stale += 1
            return
        if len(buffer) >= self.max_buffer:
            self.overflows += 1
            self._reset("buffer_overflow", restart_from=ev)
            return
        buffer.append(ev)
        if self.state is BookState.WAITING:
            self.state = BookState.SYNCING
            self._request_snapshot("first event buffered")

    def _request_snapshot(self, reason: str) -> None:
        if self._snapshot_pending:
            return
        self._snapshot_pending = True
        self.snapshots_requested += 1
        self._outputs.append(SnapshotNeeded(self.symbol, reason))

    def _reset(self, reason: str, restart_from: DepthDiff | None) -> None:
        """Discard the book; keep buffering from ``restart_from`` if given."""
        self.resets += 1
        self.last_reset_reason = reason
        self.book.clear()
        self._buffer.clear()
        self._rebase = None
        self._shadow = None
        for ahead in self._ahead:
            ahead.clear()
        self._waiting = 0
        self._snapshot_id = None
        self._last_u = 0
        # A request made for the discarded book is not one for the next: the next
        # buffered event asks again, whatever the I/O layer did with the old one.
        self._snapshot_pending = False
        self.state = BookState.WAITING
        self._outputs.append(BookReset(self.symbol, reason))
        if restart_from is not None:
            self._buffer_event(restart_from)


def _differences(live: BookSide, fresh: BookSide, touched: set[float], depth: int | None) -> int:
    """Levels that differ between two sides (within the top ``depth`` of either, if given)."""
    if depth is None:
        prices = set(live.qty) | set(fresh.qty)
    else:
        prices = {p for p, _ in live.top(depth)} | {p for p, _ in fresh.top(depth)}
    live_qty, fresh_qty = live.qty, fresh.qty
    return sum(1 for p in prices - touched if live_qty.get(p) != fresh_qty.get(p))


def _last_break(buffer: list[DepthDiff]) -> int:
    """Index of the first event of the buffer's newest unbroken run (``pu`` = the
    previous ``u``); 0 when the whole buffer is one run."""
    for index in range(len(buffer) - 1, 0, -1):
        if buffer[index].pu != buffer[index - 1].u:
            return index
    return 0


def _bridges(ev: DepthDiff, snapshot_id: int) -> bool:
    """Step 4: may ``ev`` be the first event applied on snapshot ``snapshot_id``?"""
    return ev.U <= snapshot_id <= ev.u or ev.pu == snapshot_id
