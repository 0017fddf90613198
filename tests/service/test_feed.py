"""The feed loop's reconnect policy, against a port where nothing listens."""

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from market_data.binance.streams import StreamPlan
from market_data.service import feed as feed_module
from market_data.service.feed import FeedConnection
from tests.support import free_port


class Handler:
    def __init__(self) -> None:
        self.frames: list[str | bytes] = []

    def on_frame(self, raw: str | bytes) -> None:
        self.frames.append(raw)

    def on_connected(self, plan: StreamPlan) -> None:
        raise AssertionError("nothing listens: it cannot connect")

    def on_disconnected(self, plan: StreamPlan, reason: str) -> None:
        raise AssertionError("never connected, so never disconnected")


async def _run_briefly(
    url: str, seconds: float, delay_s: float, max_delay_s: float
) -> FeedConnection:
    """A feed to ``url`` that nothing answers properly, run for ``seconds``."""
    plan = StreamPlan("depth-1", url, (), (), True)
    async with aiohttp.ClientSession() as session:
        feed = FeedConnection(
            plan,
            Handler(),
            session,
            reconnect_delay_s=delay_s,
            max_reconnect_delay_s=max_delay_s,
            silence_timeout_s=5.0,
            max_age_s=3600.0,
        )
        task = asyncio.create_task(feed.run())
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return feed


async def test_failed_connects_back_off_exponentially(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="market_data.service.feed")
    feed = await _run_briefly(f"ws://127.0.0.1:{free_port()}/stream", 0.8, 0.01, 0.16)
    plan = feed.plan
    delays = [float(r.args[1]) for r in caplog.records if "reconnecting in" in r.msg]  # type: ignore[arg-type]
    assert len(delays) >= 5
    # Jitter takes at most half off: delay n lies in [base_n / 2, base_n], base doubling to 0.16.
    for n, delay in enumerate(delays):
        base = min(0.16, 0.01 * 2**n)
        assert base / 2 - 1e-9 <= delay <= base + 1e-9, (n, delays)
    assert feed.connects == 0 and "connection failed" in feed.last_disconnect_reason
    # A ws:// URL: the reason says what failed, with no talk of TLS.
    assert f"cannot connect to 127.0.0.1:{plan.url.split(':')[2].split('/')[0]}" in (
        feed.last_disconnect_reason
    )
    assert "ssl" not in feed.last_disconnect_reason.lower()


async def test_a_handshake_answered_with_404_names_the_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong exchange_ws_url answers HTTP, not WebSocket: say so, at error level."""
    app = web.Application()  # no routes: every path is a 404
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        feed = await _run_briefly(f"ws://127.0.0.1:{port}/wrong/stream", 0.3, 0.05, 0.1)
    finally:
        await runner.cleanup()
    plan = feed.plan
    reason = feed.last_disconnect_reason
    assert "HTTP 404" in reason and plan.url in reason and "exchange_ws_url" in reason
    assert any(r.levelno == logging.ERROR and "HTTP 404" in r.getMessage() for r in caplog.records)


async def test_a_server_that_never_answers_the_upgrade_times_out_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TCP accepted, upgrade never answered: without its own timeout it hung for 300 s."""
    monkeypatch.setattr(feed_module, "HANDSHAKE_TIMEOUT_S", 0.2)
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        feed = await _run_briefly(f"ws://127.0.0.1:{port}/stream", 0.7, 0.01, 0.02)
    finally:
        server.close()
        for writer in accepted:
            writer.close()
    assert len(accepted) >= 2  # it gave up and tried again
    assert "no WebSocket handshake from ws://127.0.0.1" in feed.last_disconnect_reason
    assert "within 0.2s" in feed.last_disconnect_reason
    assert any("no WebSocket handshake" in r.getMessage() for r in caplog.records)
