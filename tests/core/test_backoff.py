import itertools
import random
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from market_data.core.backoff import backoff


def take(delays: Iterator[float], n: int) -> list[float]:
    return list(itertools.islice(delays, n))


def test_without_jitter_grows_exponentially_then_stays_at_the_cap() -> None:
    assert take(backoff(1.0, 30.0, jitter=0.0), 8) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_factor_is_used() -> None:
    assert take(backoff(0.5, 100.0, factor=3.0, jitter=0.0), 4) == [0.5, 1.5, 4.5, 13.5]


def test_jitter_stays_within_the_documented_band() -> None:
    delays = take(backoff(1.0, 30.0, jitter=0.5, rng=random.Random(7)), 200)
    bases = [min(30.0, 2.0**n) for n in range(200)]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.5 * base <= delay <= base
    # jitter actually varies the delays once capped
    assert len(set(delays[10:])) > 100


def test_same_seed_same_sequence_different_seed_different_sequence() -> None:
    first = take(backoff(1.0, 30.0, rng=random.Random(1)), 20)
    again = take(backoff(1.0, 30.0, rng=random.Random(1)), 20)
    other = take(backoff(1.0, 30.0, rng=random.Random(2)), 20)
    assert first == again
    assert first != other


def test_full_jitter_can_go_near_zero_but_never_negative() -> None:
    delays = take(backoff(1.0, 1.0, jitter=1.0, rng=random.Random(3)), 2000)
    assert min(delays) >= 0.0
    assert min(delays) < 0.01
    assert max(delays) <= 1.0


def test_a_huge_number_of_retries_does_not_overflow() -> None:
    delays = backoff(1.0, 60.0, factor=10.0, jitter=0.0)
    assert take(delays, 5000)[-1] == 60.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_s": 0.0, "max_s": 1.0},
        {"initial_s": -1.0, "max_s": 1.0},
        {"initial_s": 2.0, "max_s": 1.0},
        {"initial_s": 1.0, "max_s": 2.0, "factor": 0.5},
        {"initial_s": 1.0, "max_s": 2.0, "jitter": 1.5},
        {"initial_s": 1.0, "max_s": 2.0, "jitter": -0.1},
        {"initial_s": float("nan"), "max_s": 2.0},
    ],
)
def test_bad_arguments_fail_at_the_call(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        backoff(**kwargs)


@given(
    initial=st.floats(0.001, 100.0),
    extra=st.floats(0.0, 1000.0),
    factor=st.floats(1.0, 10.0),
    jitter=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32),
)
def test_delays_are_bounded_and_their_ceiling_never_shrinks(
    initial: float, extra: float, factor: float, jitter: float, seed: int
) -> None:
    max_s = initial + extra
    delays = take(backoff(initial, max_s, factor, jitter, random.Random(seed)), 60)
    base = initial
    for delay in delays:
        assert 0.0 <= delay <= max_s
        assert (1.0 - jitter) * base - 1e-9 <= delay <= base
        base = min(max_s, base * factor)
