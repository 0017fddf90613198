"""CPU pinning: applied when possible, a warning (never a failure) otherwise."""

import logging
import os
from collections.abc import Iterator

import pytest

from market_data.ops.affinity import apply_cpu_affinity


@pytest.fixture
def restore_affinity() -> Iterator[set[int]]:
    original = os.sched_getaffinity(0)
    try:
        yield original
    finally:
        os.sched_setaffinity(0, original)


def test_pins_the_process_to_the_listed_cores(restore_affinity: set[int]) -> None:
    core = min(restore_affinity)
    assert apply_cpu_affinity([core]) == frozenset({core})
    assert os.sched_getaffinity(0) == {core}


def test_missing_cores_are_ignored_with_a_warning(
    restore_affinity: set[int], caplog: pytest.LogCaptureFixture
) -> None:
    core = min(restore_affinity)
    absent = (os.cpu_count() or 1) + 7
    with caplog.at_level(logging.WARNING, logger="market_data.ops.affinity"):
        assert apply_cpu_affinity([core, absent]) == frozenset({core})
    assert os.sched_getaffinity(0) == {core}
    assert f"core(s) [{absent}] do not exist" in caplog.text

    caplog.clear()
    os.sched_setaffinity(0, restore_affinity)
    with caplog.at_level(logging.WARNING, logger="market_data.ops.affinity"):
        assert apply_cpu_affinity([absent]) is None
    assert os.sched_getaffinity(0) == restore_affinity
    assert "running unpinned" in caplog.text


def test_empty_list_leaves_scheduling_alone(restore_affinity: set[int]) -> None:
    assert apply_cpu_affinity([]) is None
    assert os.sched_getaffinity(0) == restore_affinity


def test_unsupported_platform_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(os, "sched_setaffinity")
    with caplog.at_level(logging.WARNING, logger="market_data.ops.affinity"):
        assert apply_cpu_affinity([0]) is None
    assert "not supported on this platform" in caplog.text
