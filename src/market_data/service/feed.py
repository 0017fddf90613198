"""One WebSocket connection to the exchange, kept alive: the feed loop.

Receive, hand the frame to the handler, repeat. Around that: reconnect with
capped exponential backoff plus jitter, a watchdog that reconnects a stream
that went silent, and a planned rotation before the exchange's 24-hour cut.
The rotation is make-before-break: the replacement connection is opened and
delivering before the old one closes, and the handover is exact
(``service/handover.py``), so it is no gap. Pings are answered by aiohttp
(autoping). Every other disconnect is reported to the handler, which treats it
as a gap: the stream does not replay missed events.
"""

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Protocol

import aiohttp

from market_data.binance.streams import StreamPlan
from market_data.core.backoff import backoff
from market_data.service.handover import MIN_OVERLAP_S, HandoverTracker

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT_S = 2.0  # how long a close handshake may take before the socket is dropped
#: How long the WebSocket upgrade may take (TCP connect included) before a retry.
HANDSHAKE_TIMEOUT_S = 10.0
#: How long a rotation waits for the old connection to catch up with the new one.
HANDOVER_MAX_S = 5.0


class FeedHandler(Protocol):
    """What the feed loop drives."""

    def on_frame(self, raw: str | bytes, line: int = 0) -> None: ...

    def on_connected(self, plan: StreamPlan) -> None: ...

    def on_disconnected(self, plan: StreamPlan, reason: str) -> None: ...


class FeedConnection:
    """Keeps one planned connection open until cancelled."""

    def __init__(
        self,
        plan: StreamPlan,
        handler: FeedHandler,
        session: aiohttp.ClientSession,
        *,
        reconnect_delay_s: float,
        max_reconnect_delay_s: float,
        silence_timeout_s: float,
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan
        self.handler = handler
        self.session = session
        self.reconnect_delay_s = reconnect_delay_s
        self.max_reconnect_delay_s = max_reconnect_delay_s
        self.silence_timeout_s = silence_timeout_s
        self.max_age_s = max_age_s
        self.clock = clock
        self.connected = False
        self.connects = 0
        self.disconnects = 0
        self.last_message_at = 0.0
        self.last_disconnect_reason = ""
        #: Rotations handed over to a replacement (make-before-break), and those of them
        #: where the new connection had not confirmed every stream in time.
        self.handovers = 0
        self.handover_timeouts = 0
        self._handover: HandoverTracker | None = None
        #: Why the current session is ending, set by whoever ends it (watchdog, rotation).
        self._end: tuple[str, str] | None = None
        self._replacement: aiohttp.ClientWebSocketResponse | None = None

    async def run(self) -> None:
        """Connect, read, reconnect: forever, until the task is cancelled."""
        delays = backoff(self.reconnect_delay_s, self.max_reconnect_delay_s)
        while True:
            reason = await self._session_once()
            if reason == "rotation":
                delays = backoff(self.reconnect_delay_s, self.max_reconnect_delay_s)
                continue  # planned: reconnect at once
            if self._lived_s > 60.0:  # that session was healthy: start the backoff anew
                delays = backoff(self.reconnect_delay_s, self.max_reconnect_delay_s)
            self._lived_s = 0.0
            delay = next(delays)
            log.info(
                "feed %s: reconnecting in %.2fs",
                self.plan.name,
                delay,
                extra={"connection": self.plan.name, "delay_s": round(delay, 3)},
            )
            await asyncio.sleep(delay)

    _opened_at = 0.0
    _lived_s = 0.0  # how long the last session stayed open (0 when it never opened)

    @property
    def opened_at(self) -> float:
        """When the current (or last) session opened, on ``clock``."""
        return self._opened_at

    async def _session_once(self) -> str:
        """One connection's life; returns why it ended."""
        plan = self.plan
        try:
            ws = await self._connect()
            try:
                self._opened_at = self.clock()
                self.connected = True
                self.connects += 1
                self.last_message_at = self._opened_at
                log.info(
                    "feed %s: connected (%d streams)",
                    plan.name,
                    len(plan.streams),
                    extra={"connection": plan.name, "streams": len(plan.streams)},
                )
                self.handler.on_connected(plan)
                try:
                    while (reason := await self._read(ws)) == "handover":
                        ws = await self._hand_over(ws)
                    return reason
                finally:
                    self._lost()
            finally:
                await ws.close()
                await self._drop_replacement()
        except asyncio.CancelledError:
            raise
        except aiohttp.WSServerHandshakeError as exc:
            # An HTTP answer instead of a WebSocket: most often a wrong exchange_ws_url
            # or route (404), or a refused IP (403, 451). Retrying will not fix it alone.
            reason = (
                f"the exchange refused the WebSocket handshake: HTTP {exc.status} "
                f"{exc.message} for {plan.url} (check exchange_ws_url)"
            )
            self.last_disconnect_reason = reason
            log.error("feed %s: %s", plan.name, reason, extra={"connection": plan.name})
            return reason
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = f"connection failed: {describe_connect_error(exc)}"
            self.last_disconnect_reason = reason
            log.warning("feed %s: %s", plan.name, reason, extra={"connection": plan.name})
            return reason
        except Exception:  # a bug must not end the feed for good: log, reconnect, resync
            self.last_disconnect_reason = "internal error"
            log.exception("feed %s: internal error; reconnecting", plan.name)
            return "internal error"

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        # aiohttp bounds the upgrade only by the session's 300 s: a server that
        # accepts TCP and never answers the upgrade would hang the line silently.
        url = self.plan.url
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
                return await self.session.ws_connect(
                    url,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=16 << 20,
                    compress=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT_S),
                )
        except TimeoutError:
            raise TimeoutError(
                f"no WebSocket handshake from {url} within {HANDSHAKE_TIMEOUT_S:g}s"
            ) from None

    async def _replace(self, old: aiohttp.ClientWebSocketResponse) -> None:
        """Open the replacement, hold its frames until the old one caught up, then end the old.

        If the replacement cannot be had, the old one is closed anyway (a plain
        reconnect, a gap): it would be cut by the exchange soon.
        """
        name = self.plan.name
        try:
            new = await self._connect()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._end = ("rotation", f"rotation: no replacement ({describe_connect_error(exc)})")
            await old.close()
            return
        # From here on everything generated goes out on both: track what the old one has.
        tracker = self._handover = HandoverTracker()
        self._replacement = new
        opened = self.clock()
        deadline = opened + HANDOVER_MAX_S
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        while not (tracker.ready() and self.clock() - opened >= MIN_OVERLAP_S):
            left = deadline - self.clock()
            if left <= 0:
                self.handover_timeouts += 1
                log.warning(
                    "feed %s: rotation: after %gs the new connection still lacks %s; handing "
                    "over anyway (a missed event shows as a resync or a trade gap, never silently)",
                    name,
                    HANDOVER_MAX_S,
                    ", ".join(tracker.behind()[:5]) or "any frame",
                    extra={"connection": name},
                )
                break
            try:
                msg = await new.receive(timeout=min(left, MIN_OVERLAP_S))
            except TimeoutError:
                continue
            if msg.type is text or msg.type is binary:
                tracker.on_new(msg.data)
            else:  # the replacement broke: keep the old one, try again at the next check
                await self._drop_replacement()
                self._handover = None
                return
        self._end = ("handover", "rotated: the replacement connection took over")
        await old.close()

    async def _hand_over(
        self, old: aiohttp.ClientWebSocketResponse
    ) -> aiohttp.ClientWebSocketResponse:
        """Continue on the replacement: its held frames first, in order."""
        await old.close()
        new, tracker = self._replacement, self._handover
        assert new is not None and tracker is not None
        self._handover = None
        on_frame = self.handler.on_frame
        fresh = tracker.fresh()
        for raw in fresh:  # if this raises, _replacement is still set and closed
            if self.plan.line:
                on_frame(raw, line=self.plan.line)
            else:
                on_frame(raw)
        self._replacement = None
        self._opened_at = self.last_message_at = self.clock()
        self.handovers += 1
        log.info(
            "feed %s: rotated to the replacement connection (%d frames handed over)",
            self.plan.name,
            len(fresh),
            extra={"connection": self.plan.name},
        )
        return new

    async def _drop_replacement(self) -> None:
        replacement, self._replacement = self._replacement, None
        if replacement is not None:
            await replacement.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Receive until the connection ends; the watchdog ends silent or old ones.

        No per-message timeout: arming one for every receive cost more than
        decoding the frame. A watchdog task checks the clock a few times per
        timeout instead, and closes the socket, which ends ``receive``.
        """
        on_frame = self.handler.on_frame
        if self.plan.line:  # a redundant line: say which (line 0 costs no extra argument)
            on_frame = functools.partial(on_frame, line=self.plan.line)
        clock = self.clock
        text, binary = aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY
        self._end = None
        watchdog = asyncio.create_task(self._watch(ws), name=f"watchdog-{self.plan.name}")
        try:
            while True:
                msg = await ws.receive()
                kind = msg.type
                if kind is text or kind is binary:
                    self.last_message_at = clock()
                    on_frame(msg.data)
                    if self._handover is not None:  # rotating: what the old one delivered
                        self._handover.on_old(msg.data)
                elif self._end is not None:
                    return self._ended(*self._end)
                elif kind is aiohttp.WSMsgType.ERROR:
                    return self._ended("error", f"websocket error: {ws.exception()}")
                else:  # CLOSE, CLOSING, CLOSED
                    return self._ended("closed", f"closed by server (code {ws.close_code})")
        finally:
            watchdog.cancel()
            await asyncio.gather(watchdog, return_exceptions=True)
            if self._end is None or self._end[0] != "handover":
                self._handover = None

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close the connection when it went silent; replace it when it reached its age."""
        silence = self.silence_timeout_s
        deadline = self._opened_at + self.max_age_s
        period = max(0.05, min(1.0, silence / 4))
        replacing: asyncio.Task[None] | None = None
        try:
            while True:
                await asyncio.sleep(period)
                now = self.clock()
                if now - self.last_message_at >= silence:
                    self._end = ("silent", f"no message for {silence:g}s (watchdog)")
                    await ws.close()
                    return
                if now >= deadline and (replacing is None or replacing.done()):
                    # Make before break; a replacement that broke is tried again here.
                    replacing = asyncio.create_task(
                        self._replace(ws), name=f"rotate-{self.plan.name}"
                    )
        finally:
            if replacing is not None and not replacing.done():
                replacing.cancel()
                await asyncio.gather(replacing, return_exceptions=True)

    def _ended(self, reason: str, detail: str) -> str:
        self.last_disconnect_reason = detail
        level = logging.INFO if reason in ("rotation", "handover") else logging.WARNING
        log.log(level, "feed %s: %s", self.plan.name, detail, extra={"connection": self.plan.name})
        return reason

    def _lost(self) -> None:
        self._lived_s = self.clock() - self._opened_at
        if self.connected:
            self.connected = False
            self.disconnects += 1
            self.handler.on_disconnected(self.plan, self.last_disconnect_reason or "cancelled")


def describe_connect_error(exc: BaseException) -> str:
    """Why a connection attempt failed, in words that fit ws:// as well as wss://."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return str(exc)  # names the certificate problem
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error.strerror or str(exc.os_error) or type(exc.os_error).__name__
        return f"cannot connect to {exc.host}:{exc.port}: {cause}"
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out"
    return str(exc) or type(exc).__name__
