"""One page's push loop: the latest view, at most every 100 ms, never a backlog.

The loop wakes every ``interval_s`` (100 ms: at most 10 frames per second per
page), asks for the current view and sends it only if it differs from the last
one sent (or ``keepalive_s`` passed, so the page knows the service is alive
and can age what it shows). Nothing is queued per update: ingestion never
touches a page, a page only reads the latest state when its tick comes.

A page that cannot keep up is dropped, not buffered: a send must complete
within ``send_timeout_s``, and a connection whose transport holds more than
``max_buffer_bytes`` unsent is closed before anything more is written to it.

:class:`PushPolicy` is the pure part (what to send at a tick, when to drop);
:func:`push_loop` is the thin I/O loop around it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
KEEPALIVE_S = 1.0
SEND_TIMEOUT_S = 2.0
MAX_BUFFER_BYTES = 1 << 20


@dataclass(slots=True)
class PushPolicy:
    """Conflation: given the view at a tick, the frame to send (or None)."""

    keepalive_s: float = KEEPALIVE_S
    max_buffer_bytes: int = MAX_BUFFER_BYTES
    _last_body: bytes | None = None
    _last_sent_s: float = -1e18
    sent: int = 0
    skipped: int = 0

    def frame(self, body: bytes, now_s: float, now_ms: int) -> bytes | None:
        """The frame to send for ``body`` now, or None (unchanged, keepalive not due)."""
        if not self.due(body, now_s):
            return None
        return b'{"now_ms":%d,"view":%s}' % (now_ms, body)

    def due(self, body: bytes, now_s: float) -> bool:
        """Whether ``body`` goes out now (counted as sent if so, as skipped if not)."""
        if body == self._last_body and now_s - self._last_sent_s < self.keepalive_s:
            self.skipped += 1
            return False
        self._last_body = body
        self._last_sent_s = now_s
        self.sent += 1
        return True

    def too_slow(self, buffered_bytes: int) -> bool:
        """The page has not taken what was sent: drop it rather than buffer more."""
        return buffered_bytes > self.max_buffer_bytes


class SlowClient(Exception):
    """A page that did not keep up: its connection is closed."""


async def push_loop(
    view: Callable[[], bytes | None],
    send: Callable[[bytes], Awaitable[None]],
    buffered: Callable[[], int],
    *,
    clock: Callable[[], float],
    now_ms: Callable[[], int],
    policy: PushPolicy | None = None,
    interval_s: float = INTERVAL_S,
    send_timeout_s: float = SEND_TIMEOUT_S,
) -> None:
    """Push until cancelled; raises :class:`SlowClient` when the page falls behind.

    ``view`` gives the current encoded view (None: nothing to show yet);
    ``buffered`` the bytes the transport has not sent yet.
    """
    policy = policy or PushPolicy()
    # Pages opened together would all be served at the same moment of every tick: a
    # random phase spreads them over the interval, so they never stall the loop at once.
    await asyncio.sleep(random.uniform(0, interval_s))
    while True:
        body = view()
        if body is not None:
            frame = policy.frame(body, clock(), now_ms())
            if frame is not None:
                if policy.too_slow(buffered()):
                    raise SlowClient(f"{buffered()} bytes unsent")
                try:
                    async with asyncio.timeout(send_timeout_s):
                        await send(frame)
                except TimeoutError:
                    raise SlowClient(f"a send took over {send_timeout_s:g}s") from None
        await asyncio.sleep(interval_s)
