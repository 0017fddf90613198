"""Smoke run of ``market-data bench ui``: pages open beside the feed receive the push."""

import asyncio

import pytest

from market_data.bench.ui import RawPage, format_row, run_all, target_lines
from market_data.embedded_redis import EmbeddedRedis


async def test_smoke_run_with_and_without_pages(redis_server: EmbeddedRedis) -> None:
    rows = await run_all([0, 2], 500, 1.5, 1, redis_server)
    assert [row.pages for row in rows] == [0, 2]
    without, with_pages = rows
    assert without.frames_per_page_s == 0.0
    # Conflated: at most ~10 frames per second per page, and they do arrive.
    assert 1.0 <= with_pages.frames_per_page_s <= 12.0
    assert with_pages.kb_per_frame > 0.1
    assert 0.0 < with_pages.reader_cpu_percent < 100.0
    assert all(row.clean for row in rows)
    assert all(run.covered == run.paced.sent for row in rows for run in row.runs)
    assert format_row(with_pages).split()[0] == "2"
    assert target_lines(rows)[0].startswith("target 2 pages add")


class _Written:
    def __init__(self) -> None:
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)


async def test_the_raw_page_counts_frames_split_anywhere_and_answers_pings() -> None:
    page = RawPage(1234, b'{"symbol":"BTCUSDT"}')
    transport = _Written()
    page.connection_made(transport)  # type: ignore[arg-type]
    assert transport.data[0].startswith(b"GET /ui/ws HTTP/1.1\r\nHost: 127.0.0.1:1234\r\n")
    big = b"x" * 300  # a 16-bit length
    stream = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"
        + b"\x81\x05hello"
        + b"\x89\x02hi"  # a ping
        + b"\x81\x7e"
        + len(big).to_bytes(2, "big")
        + big
    )
    for at in range(0, len(stream), 7):
        page.data_received(stream[at : at + 7])
    await asyncio.wait_for(page.upgraded, 1.0)
    assert (page.frames, page.bytes) == (2, 5 + 300)
    selection, pong = transport.data[1], transport.data[2]
    assert selection == b"\x81\x94" + bytes(4) + b'{"symbol":"BTCUSDT"}'  # masked, key 0
    assert pong == b"\x8a\x82" + bytes(4) + b"hi"


async def test_a_refused_upgrade_is_an_error() -> None:
    page = RawPage(1234, b"{}")
    page.connection_made(_Written())  # type: ignore[arg-type]
    page.data_received(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ConnectionError, match="401 Unauthorized"):
        await page.upgraded
