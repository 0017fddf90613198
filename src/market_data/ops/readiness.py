"""Real readiness: may this instance receive traffic right now?

Liveness only says the process answers; readiness says its data can be
trusted: Redis answers a PING, at least one exchange connection is up, and
every book is live (or partial) and fresh. Freshness is about the stream, not
the market: a book is fresh while the connection that carries it is up and
has delivered a message within ``ready_max_book_age_s``. A book that has not
changed for that long on a delivering connection is *quiet* (listed, not a
failure: common under ``symbols: all``). A contract the exchange lists as not
trading is *halted*, and a configured symbol left out by ``unknown_symbols:
skip`` is *skipped*: both are listed, neither is a failure. A symbol whose
trades the exchange's ticker counts and no aggTrade brings is *trades silent*
(``core/trade_watch.py``), a failure: its last price and trades are stale.
Each failed condition becomes one short reason (``"redis: disconnected: connection refused"``,
``"BTCUSDT: syncing"``), so an operator reads the cause straight from ``/ready``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from market_data.core.state import BookState

if TYPE_CHECKING:
    from market_data.service.app import App

_TRUSTED = (BookState.LIVE, BookState.PARTIAL)


@dataclass(frozen=True, slots=True)
class Readiness:
    """The verdict, the reasons against it, and the figures behind it."""

    ready: bool
    reasons: list[str]
    checks: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "reasons": self.reasons,
            "checks": self.checks,
        }


async def check_readiness(app: App, ping_timeout_s: float = 1.0) -> Readiness:
    """Ask Redis, look at the feeds and at every book; never raises."""
    service = app.service
    reasons: list[str] = []
    if app.shutting_down:
        reasons.append("shutting down")
    elif not service.started:
        reasons.append("service: starting")

    redis_problem = await app.redis.ping(ping_timeout_s)
    if redis_problem is not None:
        reasons.append(f"redis: {redis_problem}")

    connections = service.connections
    up = sum(1 for connection in connections if connection.connected)
    if not up:
        reasons.append(f"feeds: no exchange connection up (0/{len(connections)})")

    max_age = app.config.ready_max_book_age_s
    now = service.clock()
    carriers: dict[str, list[Any]] = {}  # symbol -> the depth lines that carry it
    for connection in connections:
        if connection.plan.carries_depth:
            for symbol in connection.plan.symbols:
                carriers.setdefault(symbol, []).append(connection)
    books: dict[str, dict[str, Any]] = {}
    quiet: list[str] = []
    for symbol, state in service.symbols.items():
        book_state = state.state
        age = service.book_age_s(state)
        books[symbol] = {
            "state": book_state.label,
            "age_s": None if age is None else round(age, 3),
            "last_update_id": state.last_update_id,
        }
        if book_state is BookState.HALTED:
            continue
        if state.trade_watch.silent:  # the book may be fine; its trades and last price not
            reasons.append(f"{symbol}: trades silent (the exchange's ticker counts trades)")
        if book_state not in _TRUSTED:
            reasons.append(f"{symbol}: {book_state.label}")
            continue
        lines_up = [c for c in carriers.get(symbol, []) if c.connected]
        if not lines_up:  # with A/B lines: ready while at least one line is up
            reasons.append(f"{symbol}: stale (its connection is down)")
            continue
        connection = max(lines_up, key=lambda c: c.last_message_at)
        silent = now - connection.last_message_at
        if silent > max_age:
            reasons.append(
                f"{symbol}: stale (connection {connection.plan.name} silent {silent:.1f}s, "
                f"limit {max_age:g}s)"
            )
        elif age is None or age > max_age:
            quiet.append(symbol)

    checks: dict[str, Any] = {
        "redis": {"ok": redis_problem is None, "reason": redis_problem, "url": app.redis.url},
        "feeds": {
            "up": up,
            "total": len(connections),
            "down": [c.plan.name for c in connections if not c.connected],
        },
        "books": books,
        "quiet": quiet,
        "skipped": dict(service.skipped),
        "ha": (
            None
            if service.lease is None
            else {
                "group": service.lease.group,
                "role": service.lease.role,
                "epoch": service.lease.epoch,
            }
        ),
        "max_book_age_s": max_age,
    }
    return Readiness(not reasons, reasons, checks)
