"""Reconnect delays as a pure generator.

Modelled on ``websockets``' ``backoff()``: the caller owns the clock and the
sleeping, the policy only says how long. A feed loop does::

    delays = backoff(config.reconnect_delay_s, config.max_reconnect_delay_s)
    while True:
        try:
            await run_connection()
            delays = backoff(...)  # connected fine: start again from the shortest delay
        except FeedError:
            await asyncio.sleep(next(delays))
"""

import random
from collections.abc import Iterator


def backoff(
    initial_s: float,
    max_s: float,
    factor: float = 2.0,
    jitter: float = 0.5,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield reconnect delays in seconds, forever: capped exponential with jitter.

    The n-th delay (n = 0, 1, ...) is drawn from ``base * (1 - jitter * u)`` with
    ``base = min(max_s, initial_s * factor**n)`` and ``u`` uniform in [0, 1): a
    proportional jitter subtracted from the capped exponential, so every delay
    lies in ``[(1 - jitter) * base, base]``. It is never above ``max_s`` and
    never negative. ``jitter=0`` gives the plain exponential, ``jitter=0.5`` the
    "equal jitter" and ``jitter=1`` the "full jitter" of the AWS backoff study.
    Jitter spreads the reconnects of many clients after a shared outage, so the
    exchange is not hit by all of them in the same instant.

    ``rng`` makes the sequence reproducible in tests; it defaults to a private
    ``random.Random()``. Arguments are checked here, at the call, not at the
    first ``next()``.
    """
    if not initial_s > 0:
        raise ValueError(f"initial_s must be > 0, got {initial_s!r}")
    if not max_s >= initial_s:
        raise ValueError(f"max_s must be >= initial_s ({initial_s!r}), got {max_s!r}")
    if not factor >= 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    if not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be within 0..1, got {jitter!r}")
    return _delays(initial_s, max_s, factor, jitter, rng or random.Random())


def _delays(
    initial_s: float, max_s: float, factor: float, jitter: float, rng: random.Random
) -> Iterator[float]:
    base = initial_s
    while True:
        yield base * (1.0 - jitter * rng.random())
        # Stop multiplying once capped, so the base never overflows to inf.
        base = min(max_s, base * factor)
