"""Faults the simulated exchange can inject, and the counters tests assert on.

The malformed frames are built here (pure): each kind breaks a different rule a
client relies on, so a client's validation can be checked one rule at a time.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec


class MalformedKind(enum.Enum):
    NOT_JSON = "not_json"  # truncated bytes
    WRONG_TYPES = "wrong_types"  # ids as strings, prices as numbers
    MISSING_FIELDS = "missing_fields"  # no "u" and no "b"
    NEGATIVE_PRICE = "negative_price"  # a well-formed diff with a price below zero


@dataclass
class FaultCounters:
    """How many of each fault were injected since the exchange started."""

    dropped_diffs: int = 0
    disconnects: int = 0
    malformed: dict[MalformedKind, int] = field(
        default_factory=lambda: dict.fromkeys(MalformedKind, 0)
    )
    pauses: int = 0
    burst_diffs: int = 0
    slow_consumers_closed: int = 0
    silent_subscriptions: int = 0  # acknowledged names that carry nothing
    policy_closes: int = 0  # connections closed with 1008 (stream or message limit)
    age_closes: int = 0  # connections closed at max_connection_age_s (the 24 h limit)
    skipped_trades: int = 0  # trades made and not sent (a trade-stream gap)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())


def malformed_payload(kind: MalformedKind, symbol: str, last_u: int, now_ms: int) -> bytes:
    """The ``data`` bytes of a broken depth frame for ``symbol``.

    Ids are the symbol's last ``u`` (``pu == u``), so a client that only checks the
    pu chain would accept the frame: its other checks must catch it.
    """
    if kind is MalformedKind.NOT_JSON:
        return b'{"e":"depthUpdate","E":' + str(now_ms).encode() + b',"s":"' + symbol.encode()
    good: dict[str, Any] = {
        "e": "depthUpdate",
        "E": now_ms,
        "T": now_ms,
        "s": symbol,
        "U": last_u,
        "u": last_u,
        "pu": last_u,
        "b": [],
        "a": [],
    }
    if kind is MalformedKind.WRONG_TYPES:
        good.update(U=str(last_u), u=str(last_u), b=[[1.5, 2]], a=[[None, "x"]])
    elif kind is MalformedKind.MISSING_FIELDS:
        del good["u"], good["b"]
    else:
        good["b"] = [["-1.00", "1.000"]]
    return msgspec.json.encode(good)
