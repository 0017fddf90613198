"""``market-data demo`` prints where its web view is, and the page is there."""

import asyncio
import os
import re
import urllib.request

import pytest

from market_data.demo import run_demo
from market_data.ops.config import Config


@pytest.mark.timeout(90)
async def test_demo_prints_the_web_view_url(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(symbols=("BTCUSDT",), shm_enabled=False, http_host="127.0.0.1")
    demo = asyncio.create_task(run_demo(config, rate_hz=20, duration_s=6.0))
    url = None
    printed = ""
    for _ in range(300):
        printed += capsys.readouterr().out
        found = re.search(r"web view: (http://127\.0\.0\.1:\d+/ui)", printed)
        if found:
            url = found.group(1)
            break
        await asyncio.sleep(0.05)
    assert url is not None
    page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    assert b"<title>market-data</title>" in page
    printed += capsys.readouterr().out
    # How to reach its own Redis and HTTP port from another terminal (no ring: shm is off).
    assert re.search(r"market-data watch --redis-url redis://127\.0\.0\.1:\d+", printed)
    health = re.search(r"market-data health --url (http://127\.0\.0\.1:\d+)", printed)
    assert health is not None and url.startswith(health.group(1))
    assert "shm-tail" not in printed
    assert await asyncio.wait_for(demo, 30) == 0


@pytest.mark.timeout(90)
async def test_demo_prints_its_own_shared_memory_ring(capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's ring has a name of its own: ``shm-tail`` needs it to find the ring."""
    config = Config(symbols=("BTCUSDT",), http_host="127.0.0.1")
    demo = asyncio.create_task(run_demo(config, rate_hz=20, duration_s=4.0))
    found = None
    for _ in range(300):
        found = re.search(
            r"market-data shm-tail --name (market_data_demo_\w+)", capsys.readouterr().out
        )
        if found or demo.done():
            break
        await asyncio.sleep(0.05)
    assert found is not None
    ring = f"/dev/shm/{found.group(1)}"
    assert await asyncio.to_thread(os.path.exists, ring)  # while the demo runs
    assert await asyncio.wait_for(demo, 30) == 0
    assert not await asyncio.to_thread(os.path.exists, ring)  # removed when it stops
