"""Client-side REST request-weight budget (pure: time passed in).

Binance counts request weight per IP in fixed one-minute windows and answers
429 (then 418, a ban) past the limit. Snapshot requests are the only REST
calls here, and a 1000-level snapshot weighs 20, so a burst of resyncs over
100+ symbols could exceed 2400/minute: the fetcher asks this budget first and
waits when it says so. The exchange's own count (``X-MBX-USED-WEIGHT-1M``)
corrects ours when it is higher.
"""

from typing import Protocol

SNAPSHOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


class SharedHold(Protocol):
    """Where every process of one address keeps the exchange's Retry-After (the I/O is
    the caller's: ``service/rest_hold.py``)."""

    def read(self) -> float:
        """The time (as ``now_s``) until which requests are held; 0 if none."""
        ...

    def write(self, until_s: float) -> None: ...


def snapshot_weight(limit: int) -> int:
    """Weight of ``GET /fapi/v1/depth`` for ``limit`` levels."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def klines_weight(limit: int) -> int:
    """Weight of ``GET /fapi/v1/klines`` for ``limit`` rows (BINANCE_FUTURES.md §4)."""
    return 1 if limit <= 100 else 2 if limit <= 500 else 5 if limit <= 1000 else 10


class WeightBudget:
    """Fixed one-minute windows, like the exchange's.

    ``per_minute`` is the IP address's budget. A process sharing the address
    with others (``--workers``) takes at most ``share`` of it itself, and
    also stops when the exchange's count for the whole address says so.
    """

    def __init__(
        self, per_minute: int, share: float = 1.0, shared: SharedHold | None = None
    ) -> None:
        self.per_minute = per_minute
        self.allowance = max(1, int(per_minute * share))
        self.used = 0  # our own requests in this window
        self.address_used = 0  # the whole address's, as the exchange last told us
        self.total = 0
        self._window = -1
        self._held_until = 0.0
        #: With ``--workers`` (or other instances on the address), a 429 one of them
        #: got holds them all: the exchange bans the address, not the process.
        self._shared = shared

    def _roll(self, now_s: float) -> None:
        window = int(now_s // 60)
        if window != self._window:
            self._window = window
            self.used = 0
            self.address_used = 0

    def hold(self, seconds: float, now_s: float) -> None:
        """The exchange answered 429 or 418 with Retry-After ``seconds``: no request of
        this address may go out before then, whoever makes it, or a 429 becomes a ban
        (418), and a ban grows (2 minutes to 3 days, the exchange's rule)."""
        self._held_until = max(self._held_until, now_s + seconds)
        if self._shared is not None:
            self._shared.write(self._held_until)

    def _until(self) -> float:
        if self._shared is not None:
            self._held_until = max(self._held_until, self._shared.read())
        return self._held_until

    def held_for(self, now_s: float) -> float:
        """Seconds until the exchange's Retry-After runs out (0: not held)."""
        return max(0.0, self._until() - now_s)

    def try_acquire(self, weight: int, now_s: float) -> float:
        """Take ``weight`` and return 0, or return how long to wait before asking again."""
        if (held := self.held_for(now_s)) > 0:
            return held
        self._roll(now_s)
        if self.used + weight > self.allowance or self.address_used + weight > self.per_minute:
            return (self._window + 1) * 60.0 - now_s
        self.used += weight
        self.address_used += weight
        self.total += weight
        return 0.0

    def used_now(self, now_s: float) -> int:
        """Weight used in the current window (what ``X-MBX-USED-WEIGHT-1M`` reports)."""
        self._roll(now_s)
        return self.address_used

    def half_used(self, now_s: float) -> bool:
        """Whether half of our share or of the address's budget is spent this minute.

        Lower-priority requests (book re-bases, 24h backfills) wait while it is,
        so resync snapshots always find weight.
        """
        if self.held_for(now_s) > 0:
            return True
        self._roll(now_s)
        return self.used >= self.allowance / 2 or self.address_used >= self.per_minute / 2

    def observe_server_count(self, used: int, now_s: float) -> None:
        """Trust the exchange's count for the address when it is higher than ours."""
        self._roll(now_s)
        self.address_used = max(self.address_used, used)
