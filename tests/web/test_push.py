"""The push loop: conflation to at most one frame per tick, and slow pages dropped."""

import asyncio
import json
import time

import pytest

from market_data.web.push import PushPolicy, SlowClient, push_loop


def test_an_unchanged_view_is_not_sent_again_until_the_keepalive() -> None:
    policy = PushPolicy(keepalive_s=1.0)
    first = policy.frame(b'{"a":1}', now_s=10.0, now_ms=5)
    assert first is not None and json.loads(first) == {"now_ms": 5, "view": {"a": 1}}
    assert policy.frame(b'{"a":1}', now_s=10.1, now_ms=6) is None
    assert policy.frame(b'{"a":1}', now_s=10.9, now_ms=7) is None
    assert policy.frame(b'{"a":2}', now_s=11.0, now_ms=8) is not None  # changed
    assert policy.frame(b'{"a":2}', now_s=12.05, now_ms=9) is not None  # keepalive due
    assert (policy.sent, policy.skipped) == (3, 2)


def test_too_slow_means_more_unsent_than_the_bound() -> None:
    policy = PushPolicy(max_buffer_bytes=1000)
    assert not policy.too_slow(1000)
    assert policy.too_slow(1001)


async def test_many_updates_between_ticks_give_one_frame_per_tick() -> None:
    """The view changes far faster than the ticks: only the latest one goes out."""
    version = [0]
    views_built = [0]
    sent: list[bytes] = []

    def view() -> bytes:
        views_built[0] += 1
        return b'{"v":%d}' % version[0]

    async def churn() -> None:
        while True:
            version[0] += 1  # an update of the book, thousands of times per tick
            if version[0] % 500 == 0:
                await asyncio.sleep(0)

    async def send(frame: bytes) -> None:
        sent.append(frame)

    churner = asyncio.create_task(churn())
    pusher = asyncio.create_task(
        push_loop(view, send, lambda: 0, clock=time.monotonic, now_ms=lambda: 0, interval_s=0.02)
    )
    await asyncio.sleep(0.5)
    pusher.cancel()
    churner.cancel()
    await asyncio.gather(pusher, churner, return_exceptions=True)
    assert version[0] > 10 * len(sent)  # updates were conflated, not queued
    assert len(sent) == views_built[0]  # one view per tick, each sent (it always changed)
    assert len(sent) <= 0.5 / 0.02 + 2  # at most one frame per tick
    values = [json.loads(frame)["view"]["v"] for frame in sent]
    assert values == sorted(values)


async def test_a_send_that_hangs_drops_the_page() -> None:
    async def stuck(frame: bytes) -> None:
        await asyncio.Event().wait()

    started = time.monotonic()
    with pytest.raises(SlowClient, match="took over"):
        await push_loop(
            lambda: b"{}", stuck, lambda: 0, clock=time.monotonic, now_ms=lambda: 0,
            send_timeout_s=0.2,
        )  # fmt: skip
    assert time.monotonic() - started < 2.0


async def test_a_full_transport_drops_the_page_before_writing_more() -> None:
    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    with pytest.raises(SlowClient, match="unsent"):
        await push_loop(
            lambda: b'{"x":%d}' % len(sent), send, lambda: 5_000_000 if sent else 0,
            clock=time.monotonic, now_ms=lambda: 0, interval_s=0.01,
        )  # fmt: skip
    assert len(sent) == 1


async def test_nothing_to_show_sends_nothing() -> None:
    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    task = asyncio.create_task(
        push_loop(lambda: None, send, lambda: 0, clock=time.monotonic, now_ms=lambda: 0,
                  interval_s=0.01)
    )  # fmt: skip
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sent == []
