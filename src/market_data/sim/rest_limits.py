"""Binance's REST request-weight budget, per calendar minute (pure; time passed in).

``X-MBX-USED-WEIGHT-1M`` reports the weight used in the current minute; a request
that would go over the budget is refused with 429 and not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from market_data.core.weights import snapshot_weight

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
DEFAULT_DEPTH_LIMIT = 500


def depth_weight(limit: int) -> int:
    """Weight of ``GET /fapi/v1/depth`` for a given ``limit``, as documented."""
    return snapshot_weight(limit)


@dataclass
class WeightBudget:
    """Used weight in the current minute against a per-minute limit."""

    limit_per_minute: int = 2400
    _minute: int = -1
    _used: int = 0

    def used(self, now_s: float) -> int:
        self._roll(now_s)
        return self._used

    def charge(self, weight: int, now_s: float) -> bool:
        """Count ``weight`` if it fits in this minute's budget; False means answer 429."""
        self._roll(now_s)
        if self._used + weight > self.limit_per_minute:
            return False
        self._used += weight
        return True

    def seconds_to_reset(self, now_s: float) -> int:
        return max(1, int(60 - now_s % 60))

    def _roll(self, now_s: float) -> None:
        minute = int(now_s // 60)
        if minute != self._minute:
            self._minute = minute
            self._used = 0
