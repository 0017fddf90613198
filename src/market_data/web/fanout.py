"""Every page of one service served from one tick, one short loop step per page.

One timer per service (not one per page) wakes every ``interval_s`` while a
page is open. Each view a page shows is built once per tick and framed once
(the WebSocket header and the JSON, as bytes), however many pages show it;
then each page gets its frame in a loop step of its own, chained with
``loop.call_soon``, so the event loop polls the feed's sockets between any two
pages and is never held for more than one build or one write. A write is the
shared bytes handed to the page's transport: no coroutine, no task, no copy.

Per page, as in :func:`~market_data.web.push.push_loop`: a frame only when its
view changed or the keepalive is due (:class:`~market_data.web.push.PushPolicy`),
and a page that does not keep up is dropped, never buffered: more than
``max_buffer_bytes`` unsent, or unsent bytes left over for ``send_timeout_s``.

A failure costs its own share only: a view whose build raises is not shown
this tick, a page whose serving raises misses this frame, a tick that raises
is skipped; the timer and the other pages carry on. Failures are logged with
their traceback at most once per ``_LOG_EVERY_S``, since one that repeats
would otherwise log every tick.

Frames go out uncompressed (``RSV1`` clear), which RFC 7692 allows even where
permessage-deflate was negotiated; :func:`~market_data.web.ui.open_page` does
not offer it anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from market_data.web.push import INTERVAL_S, SEND_TIMEOUT_S, PushPolicy, SlowClient

log = logging.getLogger(__name__)

#: A finished (FIN) text frame's first byte.
_FIN_TEXT = 0x81
#: Seconds between two logged failures: one that repeats every tick is logged once a minute.
_LOG_EVERY_S = 60.0


def text_frame_header(length: int) -> bytes:
    """The header of an unmasked (server to client) WebSocket text frame of ``length`` bytes."""
    if length < 0:
        raise ValueError(f"a frame cannot be {length} bytes long")
    if length < 126:
        return bytes((_FIN_TEXT, length))
    if length < 1 << 16:
        return bytes((_FIN_TEXT, 126)) + length.to_bytes(2, "big")
    return bytes((_FIN_TEXT, 127)) + length.to_bytes(8, "big")


class Transport(Protocol):
    """What a page's connection must offer (an asyncio transport does)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


@dataclass(eq=False)
class Page:
    """One open page: what it shows, its conflation, and where its frames go."""

    transport: Transport
    #: Called once, with the reason, when the page is dropped for not keeping up.
    on_slow: Callable[[SlowClient], None]
    #: True once the WebSocket began closing: no data frame may follow its close frame.
    closed: Callable[[], bool] = lambda: False
    symbol: str | None = None
    policy: PushPolicy = field(default_factory=PushPolicy)
    #: When the transport was first seen holding unsent bytes (None: it was empty).
    backlog_since: float | None = None


class Fanout:
    """The pages of one service and the tick that serves them."""

    def __init__(
        self,
        view: Callable[[str | None], bytes | None],
        *,
        clock: Callable[[], float],
        now_ms: Callable[[], int],
        spent: Callable[[int], None] = lambda ns: None,
        interval_s: float = INTERVAL_S,
        send_timeout_s: float = SEND_TIMEOUT_S,
    ) -> None:
        self.view = view
        self.clock = clock
        self.now_ms = now_ms
        #: Told the nanoseconds of every loop step spent on the pages.
        self.spent = spent
        self.interval_s = interval_s
        self.send_timeout_s = send_timeout_s
        self.pages: set[Page] = set()
        self.frames_sent = 0
        self._ticker: asyncio.Task[None] | None = None
        self._logged_at: float | None = None
        self._unlogged = 0

    def add(self, page: Page) -> None:
        self.pages.add(page)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_while_open(), name="ui-fanout")

    def remove(self, page: Page) -> None:
        self.pages.discard(page)

    async def close(self) -> None:
        self.pages.clear()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick_while_open(self) -> None:
        try:
            while self.pages:
                await asyncio.sleep(self.interval_s)
                try:
                    self.tick()
                except Exception:
                    self.failed("a tick")
        finally:
            if self._ticker is asyncio.current_task():
                self._ticker = None

    def failed(self, what: str) -> None:
        """Log the exception being handled, unless one was logged less than a minute ago."""
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < _LOG_EVERY_S:
            self._unlogged += 1
            return
        log.exception(
            "web view: %s failed (%d more failures not logged since the last one)",
            what,
            self._unlogged,
        )
        self._logged_at, self._unlogged = now, 0

    def tick(self) -> None:
        """Start serving every open page: the first step now, each next one after it."""
        pages = sorted(self.pages, key=lambda page: page.symbol or "")
        if pages:
            _Round(self, pages).step()


class _Round:
    """One tick's pass over the pages: a view built or a page served per loop step."""

    def __init__(self, fanout: Fanout, pages: list[Page]) -> None:
        self.fanout = fanout
        self.pages = pages
        self.next = 0
        self.now_s = fanout.clock()
        self.now_ms = fanout.now_ms()
        #: Per selection: the view's body and its whole frame (header included).
        self.framed: dict[str | None, tuple[bytes, bytes] | None] = {}
        self._loop = asyncio.get_running_loop()

    def step(self) -> None:
        """One build or one page, then the next: a step that raises ends neither round nor timer."""
        page = self.pages[self.next]
        try:
            self._step(page)
        except Exception:
            self.fanout.failed(f"a step for view {page.symbol!r}")
        if self.next < len(self.pages):
            self._loop.call_soon(self.step)

    def _step(self, page: Page) -> None:
        started = time.perf_counter_ns()
        try:
            if page.symbol not in self.framed:
                self.framed[page.symbol] = None  # if the build raises, its pages skip this tick
                self.framed[page.symbol] = self._frame(page.symbol)  # this step builds only
            else:
                self.next += 1  # first: if serving raises, only this page misses its frame
                if page in self.fanout.pages:
                    self._serve(page, self.framed[page.symbol])
        finally:
            self.fanout.spent(time.perf_counter_ns() - started)

    def _frame(self, symbol: str | None) -> tuple[bytes, bytes] | None:
        body = self.fanout.view(symbol)
        if body is None:
            return None
        message = b'{"now_ms":%d,"view":%s}' % (self.now_ms, body)
        return body, text_frame_header(len(message)) + message

    def _serve(self, page: Page, framed: tuple[bytes, bytes] | None) -> None:
        transport = page.transport
        if page.closed() or transport.is_closing():
            self.fanout.remove(page)
            return
        slow = self._too_slow(page, transport.get_write_buffer_size())
        if slow is not None:
            self.fanout.remove(page)
            page.on_slow(slow)
            return
        if framed is not None and page.policy.due(framed[0], self.now_s):
            transport.write(framed[1])
            self.fanout.frames_sent += 1

    def _too_slow(self, page: Page, unsent: int) -> SlowClient | None:
        if page.policy.too_slow(unsent):
            return SlowClient(f"{unsent} bytes unsent")
        if not unsent:
            page.backlog_since = None
        elif page.backlog_since is None:
            page.backlog_since = self.now_s
        elif self.now_s - page.backlog_since > self.fanout.send_timeout_s:
            return SlowClient(f"a send took over {self.fanout.send_timeout_s:g}s")
        return None
