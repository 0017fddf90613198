"""``market-data demo`` prints where its web view is, and the page is there."""

import asyncio
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
    for _ in range(300):
        found = re.search(r"web view: (http://127\.0\.0\.1:\d+/ui)", capsys.readouterr().out)
        if found:
            url = found.group(1)
            break
        await asyncio.sleep(0.05)
    assert url is not None
    page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
    assert b"<title>market-data</title>" in page
    assert await asyncio.wait_for(demo, 30) == 0
