"""Active/standby with real processes: kill -9 or freeze the active, the standby takes over."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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


async def _pair(
    redis_server: EmbeddedRedis, tmp_path: Path, sim: SimExchange
) -> tuple[list[asyncio.subprocess.Process], list[int]]:
    """Two ``market-data run`` processes of one ha_group, started at the same moment."""
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
    return processes, ports


async def _roles(ports: list[int]) -> list[str | None]:
    return [await asyncio.to_thread(_role, port) for port in ports]


async def _until_roles(ports: list[int], within_s: float, *wanted: str | None) -> None:
    async with asyncio.timeout(within_s):
        while await _roles(ports) != list(wanted):  # noqa: ASYNC110 (polls other processes)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("fault", ["kill -9", "SIGSTOP"])
async def test_a_dead_or_frozen_active_hands_over_without_losing_a_trade(
    redis_server: EmbeddedRedis, tmp_path: Path, fault: str
) -> None:
    async with SimExchange(SimConfig(["BTCUSDT"], diff_rate_hz=20, trade_rate_hz=20)) as sim:
        received = Received()
        ready = asyncio.Event()
        subscriber = asyncio.create_task(subscribe(redis_server.url, received, ready))
        await asyncio.wait_for(ready.wait(), 5)
        processes, ports = await _pair(redis_server, tmp_path, sim)
        try:
            async with asyncio.timeout(30):  # started together: exactly one takes the lease
                while sorted(map(str, await _roles(ports))) != ["active", "standby"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await wait_for(lambda: len(received.trades["BTCUSDT"]) > 20, what="trades")
            active = (await _roles(ports)).index("active")
            before = len(received.trades["BTCUSDT"])
            victim = processes[active]
            faulted_at = time.monotonic()
            victim.send_signal(signal.SIGKILL if fault == "kill -9" else signal.SIGSTOP)
            survivor = ports[1 - active]
            async with asyncio.timeout(10):
                while await asyncio.to_thread(_role, survivor) != "active":  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            took_over_s = time.monotonic() - faulted_at
            assert took_over_s < 3.0, took_over_s  # the lease (1 s) plus one renewal period
            assert await asyncio.to_thread(_role, ports[active]) is None  # dead or frozen
            await wait_for(
                lambda: len(received.trades["BTCUSDT"]) > before + 40, what="trades again"
            )
            if fault == "SIGSTOP":
                # Thawed, it finds its lease gone: it stands by, it never publishes again.
                victim.send_signal(signal.SIGCONT)
                other = ["standby", "active"] if active == 0 else ["active", "standby"]
                await _until_roles(ports, 10, *other)
                count = len(received.trades["BTCUSDT"])
                await wait_for(
                    lambda: len(received.trades["BTCUSDT"]) > count + 20, what="more trades"
                )
            ids = [t["trade_id"] for t in received.trades["BTCUSDT"]]
            assert ids == list(range(ids[0], ids[0] + len(ids)))  # none lost, none twice
            epochs = [t["epoch"] for t in received.trades["BTCUSDT"]]
            assert epochs == sorted(epochs) and epochs[-1] == epochs[0] + 1  # one takeover
            books = [b for b in received.books["BTCUSDT"] if b["state"] == "live"]
            problems = [p for b in books[-20:] if (p := book_matches_truth(sim, b))]
            assert not problems, problems[:2]
        finally:
            for process in processes:
                if process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGCONT)
                        process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.wait(), 20)
            subscriber.cancel()
            await asyncio.gather(subscriber, return_exceptions=True)


async def test_a_redis_restart_under_a_pair_leaves_one_active_with_a_higher_epoch(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    async with SimExchange(SimConfig(["BTCUSDT"], diff_rate_hz=20, trade_rate_hz=20)) as sim:
        processes, ports = await _pair(redis_server, tmp_path, sim)
        try:
            async with asyncio.timeout(30):
                while sorted(map(str, await _roles(ports))) != ["active", "standby"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            before = Received()
            ready = asyncio.Event()
            first = asyncio.create_task(subscribe(redis_server.url, before, ready))
            await asyncio.wait_for(ready.wait(), 5)
            await wait_for(lambda: len(before.trades["BTCUSDT"]) > 10, what="trades")
            old_epoch = before.trades["BTCUSDT"][-1]["epoch"]
            redis_server.kill()  # longer than the lease: neither may publish meanwhile
            await asyncio.gather(first, return_exceptions=True)
            await asyncio.sleep(2.5)
            assert await _roles(ports) == ["standby", "standby"]  # the gate closed on both
            redis_server.restart()  # empty: no lease, no epoch, no streams
            after = Received()
            ready = asyncio.Event()
            second = asyncio.create_task(subscribe(redis_server.url, after, ready))
            await asyncio.wait_for(ready.wait(), 5)
            async with asyncio.timeout(15):
                while sorted(map(str, await _roles(ports))) != ["active", "standby"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            await wait_for(lambda: len(after.trades["BTCUSDT"]) > 20, what="trades after")
            second.cancel()
            await asyncio.gather(second, return_exceptions=True)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                await asyncio.wait_for(process.wait(), 20)
    trades = after.trades["BTCUSDT"]
    epochs = {t["epoch"] for t in trades}
    assert min(epochs) > old_epoch  # a Redis restarted empty does not reset the epoch
    assert len(epochs) == 1  # one publisher after the restart
    ids = [t["trade_id"] for t in trades]
    assert ids == sorted(set(ids))  # in order, none twice
    books = [b for b in after.books["BTCUSDT"] if b["state"] == "live"]
    assert books and all(b["epoch"] in epochs for b in books)
    problems = [p for b in books[-20:] if (p := book_matches_truth(sim, b))]
    assert not problems, problems[:2]
