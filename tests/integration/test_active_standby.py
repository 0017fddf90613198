"""Active/standby with real processes: kill -9 the active, the standby takes over."""

import asyncio
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig, SimExchange
from tests.integration.service_harness import Received, book_matches_truth, subscribe
from tests.support import free_port, wait_for


def _ready(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as error:
        return json.loads(error.read())  # type: ignore[no-any-return]
    except OSError:
        return None


def _role(port: int) -> str | None:
    answer = _ready(port)
    return None if answer is None else answer["checks"]["ha"]["role"]


async def test_kill_9_of_the_active_hands_over_without_losing_a_trade(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    async with SimExchange(SimConfig(["BTCUSDT"], diff_rate_hz=20, trade_rate_hz=20)) as sim:
        received = Received()
        ready = asyncio.Event()
        subscriber = asyncio.create_task(subscribe(redis_server.url, received, ready))
        await asyncio.wait_for(ready.wait(), 5)
        config = tmp_path / "service.yaml"
        config.write_text("log_json: false\n")
        ports = [free_port(), free_port()]
        processes = []
        for port in ports:
            env = {
                **os.environ,
                "MARKET_DATA_SYMBOLS": "BTCUSDT",
                "MARKET_DATA_EXCHANGE_WS_URL": sim.ws_base_url,
                "MARKET_DATA_EXCHANGE_REST_URL": sim.rest_base_url,
                "MARKET_DATA_REDIS_URL": redis_server.url,
                "MARKET_DATA_HEALTH_PORT": str(port),
                "MARKET_DATA_HTTP_HOST": "127.0.0.1",
                "MARKET_DATA_SHM_ENABLED": "false",
                "MARKET_DATA_HA_GROUP": "test",
                "MARKET_DATA_HA_LEASE_MS": "1000",
                "MARKET_DATA_RECONNECT_DELAY_MS": "50",
                "MARKET_DATA_MAX_RECONNECT_DELAY_MS": "500",
            }
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "market_data.cli",
                    "run",
                    "--config",
                    str(config),
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
            )
        try:

            async def roles() -> list[str | None]:
                return [await asyncio.to_thread(_role, port) for port in ports]

            async with asyncio.timeout(30):
                while sorted(map(str, await roles())) != ["active", "standby"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await wait_for(lambda: len(received.trades["BTCUSDT"]) > 20, what="trades")
            active = (await roles()).index("active")
            before = len(received.trades["BTCUSDT"])
            processes[active].send_signal(signal.SIGKILL)  # no clean stop, no lease release
            killed_at = time.monotonic()
            other = ports[1 - active]
            async with asyncio.timeout(10):
                while await asyncio.to_thread(_role, other) != "active":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            took_over_s = time.monotonic() - killed_at
            await wait_for(
                lambda: len(received.trades["BTCUSDT"]) > before + 40, what="trades again"
            )
            assert took_over_s < 3.0, took_over_s  # the lease (1 s) plus one renewal period
            ids = [t["trade_id"] for t in received.trades["BTCUSDT"]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost, none twice
            books = [b for b in received.books["BTCUSDT"] if b["state"] == "live"]
            problems = [p for b in books[-20:] if (p := book_matches_truth(sim, b))]
            assert not problems, problems[:2]
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.wait(), 20)
            subscriber.cancel()
            await asyncio.gather(subscriber, return_exceptions=True)
