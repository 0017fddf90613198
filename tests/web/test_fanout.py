"""The service's pages from one tick: a build per view, a loop step per page, slow ones dropped."""

import asyncio
import json
import logging
from collections.abc import Callable

import pytest

from market_data.web.fanout import Fanout, Page, text_frame_header
from market_data.web.push import PushPolicy, SlowClient


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.unsent = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def message(frame: bytes) -> dict[str, object]:
    """The JSON of one whole server frame, its header checked."""
    assert frame[0] == 0x81  # FIN, text, no RSV1 (uncompressed)
    length, start = frame[1], 2
    if length == 126:
        length, start = int.from_bytes(frame[2:4], "big"), 4
    assert len(frame) == start + length
    decoded: dict[str, object] = json.loads(frame[start:])
    return decoded


def test_frame_headers_of_every_length_class() -> None:
    assert text_frame_header(0) == b"\x81\x00"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")
    with pytest.raises(ValueError, match="cannot be -1 bytes"):
        text_frame_header(-1)


async def _spin() -> None:
    for _ in range(50):  # a round's steps, one per loop iteration
        await asyncio.sleep(0)


async def _run_round(fanout: Fanout) -> None:
    fanout.tick()
    await _spin()


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait for ``condition``, as long as a loaded machine may need; fail past ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        assert loop.time() < deadline, f"not true within {timeout_s:g} s"
        await asyncio.sleep(0.005)


async def test_each_view_is_built_once_per_tick_and_each_page_served_in_a_step_of_its_own() -> None:
    built: list[str | None] = []

    def view(symbol: str | None) -> bytes:
        built.append(symbol)
        return b'{"symbol":%s}' % json.dumps(symbol).encode()

    steps: list[int] = []
    fanout = Fanout(view, clock=Clock(), now_ms=lambda: 7, spent=steps.append)
    transports = [FakeTransport() for _ in range(4)]
    for transport, symbol in zip(transports, ("BTCUSDT", None, "BTCUSDT", "BTCUSDT"), strict=True):
        fanout.pages.add(Page(transport, lambda slow: None, symbol=symbol))
    fanout.tick()
    # The first step builds one view and serves nobody: the loop is free again at once.
    assert built == [None] and not any(t.written for t in transports)
    interleaved: list[int] = []
    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: interleaved.append(sum(len(t.written) for t in transports)))
    await _spin()
    assert len(built) == 2 and set(built) == {None, "BTCUSDT"}  # one build per view, not per page
    assert interleaved == [1]  # other callbacks ran after one page, before the next
    assert len(steps) == 2 + 4  # two builds, four pages
    frames = [t.written for t in transports]
    assert all(len(written) == 1 for written in frames)
    assert frames[0][0] is frames[2][0] is frames[3][0]  # the same bytes, framed once
    assert message(frames[0][0]) == {"now_ms": 7, "view": {"symbol": "BTCUSDT"}}
    assert message(frames[1][0]) == {"now_ms": 7, "view": {"symbol": None}}
    assert fanout.frames_sent == 4


async def test_an_unchanged_view_waits_for_the_keepalive() -> None:
    clock = Clock()
    body = [b'{"v":1}']
    fanout = Fanout(lambda symbol: body[0], clock=clock, now_ms=lambda: 0)
    transport = FakeTransport()
    fanout.pages.add(Page(transport, lambda slow: None, policy=PushPolicy(keepalive_s=1.0)))
    await _run_round(fanout)
    clock.now += 0.1
    await _run_round(fanout)  # unchanged
    assert len(transport.written) == 1
    body[0] = b'{"v":2}'
    clock.now += 0.1
    await _run_round(fanout)  # changed
    clock.now += 1.05
    await _run_round(fanout)  # unchanged, keepalive due
    assert [message(frame)["view"] for frame in transport.written] == [
        {"v": 1},
        {"v": 2},
        {"v": 2},
    ]


async def test_a_page_with_too_much_unsent_is_dropped_before_anything_more_is_written() -> None:
    fanout = Fanout(lambda symbol: b"{}", clock=Clock(), now_ms=lambda: 0)
    dropped: list[SlowClient] = []
    transport = FakeTransport()
    page = Page(transport, dropped.append, policy=PushPolicy(max_buffer_bytes=1000))
    fanout.pages.add(page)
    transport.unsent = 1001
    await _run_round(fanout)
    assert transport.written == [] and page not in fanout.pages
    assert len(dropped) == 1 and "1001 bytes unsent" in str(dropped[0])


async def test_a_page_whose_backlog_lasts_past_the_send_timeout_is_dropped() -> None:
    clock = Clock()
    count = [0]

    def view(symbol: str | None) -> bytes:
        count[0] += 1
        return b'{"n":%d}' % count[0]

    fanout = Fanout(view, clock=clock, now_ms=lambda: 0, send_timeout_s=2.0)
    dropped: list[SlowClient] = []
    transport = FakeTransport()
    fanout.pages.add(Page(transport, dropped.append))
    transport.unsent = 10  # a little left over at every tick: the page is not taking it
    for _ in range(20):
        await _run_round(fanout)
        clock.now += 0.15
    assert len(dropped) == 1 and "took over 2s" in str(dropped[0])
    assert 13 <= len(transport.written) <= 15  # the ticks within the 2 s
    # One that empties its buffer in between is not dropped.
    kept = FakeTransport()
    fanout.pages.add(Page(kept, dropped.append))
    for tick in range(40):
        kept.unsent = 10 if tick % 5 else 0
        await _run_round(fanout)
        clock.now += 0.15
    assert len(dropped) == 1 and len(kept.written) == 40


async def test_a_closing_page_is_let_go_without_a_write() -> None:
    fanout = Fanout(lambda symbol: b"{}", clock=Clock(), now_ms=lambda: 0)
    transport = FakeTransport()
    transport.closing = True
    page = Page(transport, lambda slow: None)
    handshake = FakeTransport()  # the WebSocket sent its close frame; the socket is still up
    closing = Page(handshake, lambda slow: None, closed=lambda: True)
    fanout.pages.update((page, closing))
    await _run_round(fanout)
    assert transport.written == [] and handshake.written == [] and not fanout.pages


async def test_the_tick_runs_while_a_page_is_open_and_stops_after() -> None:
    fanout = Fanout(lambda symbol: b"{}", clock=Clock(), now_ms=lambda: 0, interval_s=0.01)
    transport = FakeTransport()
    page = Page(transport, lambda slow: None, policy=PushPolicy(keepalive_s=0.0))
    started = asyncio.get_running_loop().time()
    fanout.add(page)
    await _until(lambda: len(transport.written) >= 5)  # one frame per tick, tick after tick
    elapsed = asyncio.get_running_loop().time() - started
    assert len(transport.written) <= elapsed / 0.01 + 1  # no more than one per 10 ms tick
    fanout.remove(page)
    await _until(lambda: fanout._ticker is None)
    fanout.add(page)  # a page opened later starts it again
    assert fanout._ticker is not None
    await fanout.close()
    assert fanout._ticker is None and not fanout.pages


async def test_nothing_to_show_sends_nothing() -> None:
    fanout = Fanout(lambda symbol: None, clock=Clock(), now_ms=lambda: 0)
    transport = FakeTransport()
    fanout.pages.add(Page(transport, lambda slow: None))
    await _run_round(fanout)
    assert transport.written == []


async def test_a_view_that_raises_costs_one_tick_and_the_pages_keep_their_frames(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = [1]

    def view(symbol: str | None) -> bytes:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("the view broke")
        return b"{}"

    fanout = Fanout(view, clock=Clock(), now_ms=lambda: 0, interval_s=0.01)
    transport = FakeTransport()
    fanout.add(Page(transport, lambda slow: None, policy=PushPolicy(keepalive_s=0.0)))
    with caplog.at_level(logging.ERROR, logger="market_data.web.fanout"):
        await _until(lambda: len(transport.written) >= 3)
    assert fanout._ticker is not None and not failures[0]  # it raised, and the tick went on
    (record,) = caplog.records
    assert "failed" in record.getMessage() and record.exc_info is not None
    await fanout.close()


class BrokenTransport(FakeTransport):
    def write(self, data: bytes) -> None:
        raise OSError("the socket broke")


async def test_a_page_whose_send_raises_misses_its_frame_and_the_others_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fanout = Fanout(lambda symbol: b"{}", clock=Clock(), now_ms=lambda: 0)
    broken, before, after = BrokenTransport(), FakeTransport(), FakeTransport()
    for transport, symbol in ((before, "A"), (broken, "B"), (after, "C")):
        fanout.pages.add(Page(transport, lambda slow: None, symbol=symbol))
    with caplog.at_level(logging.ERROR, logger="market_data.web.fanout"):
        await _run_round(fanout)
        await _run_round(fanout)  # fails again: not logged again within the minute
    assert len(before.written) == 1 and len(after.written) == 1
    (record,) = caplog.records
    assert "view 'B'" in record.getMessage()
