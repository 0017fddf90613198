"""Sharding symbols over worker processes: split, supervise, restart, stop on SIGTERM."""

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from market_data.client.shm import ShmRingReader
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.config import Config
from market_data.ops.health_check import run_checks
from market_data.service.supervisor import (
    Supervisor,
    resolve_all_symbols,
    shard_configs,
    shard_symbols,
)
from market_data.sim.exchange import SimConfig, SimExchange
from market_data.wire.ring_index import read_index
from tests.integration.service_harness import Received, book_matches_truth, subscribe
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT")


def test_symbols_are_dealt_round_robin_and_never_to_an_idle_worker() -> None:
    assert shard_symbols(SYMBOLS, 2) == [("BTCUSDT", "SOLUSDT"), ("ETHUSDT", "BNBUSDT")]
    assert shard_symbols(SYMBOLS, 3) == [("BTCUSDT", "BNBUSDT"), ("ETHUSDT",), ("SOLUSDT",)]
    assert shard_symbols(("BTCUSDT",), 4) == [("BTCUSDT",)]
    with pytest.raises(ValueError):
        shard_symbols(SYMBOLS, 0)


def test_each_shard_gets_its_own_segment_and_a_private_port() -> None:
    config = Config(symbols=SYMBOLS, shm_name="md", health_port=9090)
    shards = shard_configs(config, 2)
    assert [s.shm_name for s in shards] == ["md-0", "md-1"]
    assert [s.health_port for s in shards] == [0, 0]  # 9090 belongs to the front
    assert {s.http_host for s in shards} == {"127.0.0.1"}
    assert [s.health_port for s in shard_configs(config, 2, [9001, 9002])] == [9001, 9002]
    assert sorted(sym for s in shards for sym in s.symbols) == sorted(SYMBOLS)
    assert shard_configs(config, 1) == [config]
    assert [s.health_port for s in shard_configs(config.with_overrides(health_port=0), 2)] == [0, 0]


def _config(sim: SimExchange, redis: EmbeddedRedis) -> Config:
    return Config(
        symbols=SYMBOLS,
        exchange_ws_url=sim.ws_base_url,
        exchange_rest_url=sim.rest_base_url,
        redis_url=redis.url,
        health_port=0,
        shm_name=f"market_data_test_{uuid.uuid4().hex[:8]}",
        reconnect_delay_ms=50,
        max_reconnect_delay_ms=500,
    )


async def _subscriber(redis: EmbeddedRedis, received: Received) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(subscribe(redis.url, received, ready))
    await asyncio.wait_for(ready.wait(), 5)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _live_counts(received: Received) -> dict[str, int]:
    return {s: len(received.live_books(s)) for s in SYMBOLS}


async def _get_json(base: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(base + path) as response:
        return response.status, await response.json(content_type=None)


async def _wait_ready(front: str) -> None:
    async with asyncio.timeout(20):
        while True:
            status, _ = await _get_json(front, "/ready")
            if status == 200:
                return
            await asyncio.sleep(0.1)


async def _one_front_serves_every_symbol(front: str) -> None:
    """Health, readiness, metrics and books of both workers, on the one port."""
    await _wait_ready(front)
    status, ready = await _get_json(front, "/ready")
    assert set(ready["checks"]["books"]) == set(SYMBOLS)
    checks = await asyncio.to_thread(run_checks, front)
    assert all(c.ok for c in checks), [c.line() for c in checks]
    assert {c.name for c in checks} >= {f"book {s}" for s in SYMBOLS}
    async with aiohttp.ClientSession() as session, session.get(front + "/metrics") as response:
        scrape = await response.text()
    families = {f.name: f for f in text_string_to_metric_families(scrape)}
    symbols = {s.labels.get("symbol") for f in families.values() for s in f.samples} - {None}
    assert symbols == set(SYMBOLS)
    workers = {s.labels["worker"] for s in families["market_data_workers_up"].samples}
    assert workers == {"0", "1"}
    for symbol in SYMBOLS:
        status, book = await _get_json(front, f"/book/{symbol}")
        assert status == 200 and book["symbol"] == symbol
    assert (await _get_json(front, "/book/NOPEUSDT"))[0] == 404


async def test_two_workers_publish_correct_books_and_a_killed_worker_is_restarted(
    redis_server: EmbeddedRedis,
) -> None:
    sim_config = SimConfig(symbols=list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=5)
    received = Received()
    async with SimExchange(sim_config) as sim:
        subscribed = _subscriber(redis_server, received)
        await anext(subscribed)
        supervisor = Supervisor(
            _config(sim, redis_server),
            2,
            restart_initial_s=0.1,
            restart_max_s=0.5,
            log_level="WARNING",
        )
        runner = asyncio.create_task(asyncio.to_thread(supervisor.run))
        try:
            await wait_for(
                lambda: all(n >= 3 for n in _live_counts(received).values()), 20, "live books"
            )
            for symbol in SYMBOLS:
                assert book_matches_truth(sim, received.live_books(symbol)[-1]) is None
            first = supervisor.pids()
            assert all(first) and len(set(first)) == 2
            assert supervisor.front is not None
            front = f"http://127.0.0.1:{supervisor.front.port}"
            await _one_front_serves_every_symbol(front)
            shm_name = supervisor.shards[0].shm_name.rsplit("-", 1)[0]
            rings = read_index(shm_name)
            assert rings == {s: c.shm_name for c in supervisor.shards for s in c.symbols}
            for symbol in SYMBOLS:
                with ShmRingReader.attach_symbol(shm_name, symbol, from_oldest=True) as reader:
                    assert reader.latest_book(symbol) is not None or any(
                        getattr(r, "symbol", None) == symbol for r in reader.poll()
                    )

            assert first[0] is not None
            os.kill(first[0], signal.SIGKILL)
            async with asyncio.timeout(10):  # until the front notices the dead worker
                while True:
                    status, body = await _get_json(front, "/ready")
                    if status != 200:
                        break
                    await asyncio.sleep(0.02)
            assert status == 503
            dead = supervisor.shards[0].symbols
            for symbol in dead:
                assert any(r.startswith(f"{symbol}: worker 0") for r in body["reasons"]), body
            await wait_for(
                lambda: (
                    supervisor.restarts()[0] == 1 and supervisor.pids()[0] not in (None, first[0])
                ),
                10,
                "worker 0 restarted",
            )
            before = _live_counts(received)
            await wait_for(
                lambda: all(n >= before[s] + 3 for s, n in _live_counts(received).items()),
                20,
                "books from both workers after the restart",
            )
            for symbol in supervisor.shards[0].symbols:
                assert book_matches_truth(sim, received.live_books(symbol)[-1]) is None
            assert supervisor.pids()[1] == first[1] and supervisor.restarts()[1] == 0
            await _wait_ready(front)
        finally:
            supervisor.stop()
            assert await asyncio.wait_for(runner, 20) == 0
            await subscribed.aclose()
        assert supervisor.pids() == [None, None]
        assert read_index(shm_name) == {}
        assert not any(psutil.pid_exists(pid) for pid in first if pid is not None)


async def test_sigterm_stops_every_worker_and_exits_zero(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    received = Received()
    sim_config = SimConfig(symbols=list(SYMBOLS), diff_rate_hz=20, trade_rate_hz=2)
    async with SimExchange(sim_config) as sim:
        config = _config(sim, redis_server)
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({**config.describe(), "redis_url": redis_server.url}))
        subscribed = _subscriber(redis_server, received)
        await anext(subscribed)
        code = (
            "import sys; from market_data.ops.config import load_config; "
            "from market_data.service.supervisor import run_workers; "
            "sys.exit(run_workers(load_config(sys.argv[1]), 2, log_level='WARNING'))"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(path), stderr=asyncio.subprocess.PIPE
        )
        try:
            await wait_for(
                lambda: all(n >= 1 for n in _live_counts(received).values()), 20, "live books"
            )
            workers = [
                child
                for child in psutil.Process(process.pid).children()
                if "spawn_main" in " ".join(child.cmdline())
            ]
            assert len(workers) == 2
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 20)
            assert process.returncode == 0, stderr.decode()
            _, alive = psutil.wait_procs(workers, timeout=5)
            assert not alive
            assert b"killing" not in stderr and b"Traceback" not in stderr, stderr.decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await subscribed.aclose()


async def test_symbols_all_is_made_explicit_before_sharding() -> None:
    async with SimExchange(SimConfig(["BTCUSDT", "ETHUSDT", "SOLUSDT"])) as sim:
        config = Config(symbols=("all",), exchange_rest_url=sim.rest_base_url, health_port=0)
        resolved = await asyncio.to_thread(resolve_all_symbols, config)
    assert resolved.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert [c.symbols for c in shard_configs(resolved, 2)] == [
        ("BTCUSDT", "SOLUSDT"),
        ("ETHUSDT",),
    ]


def test_with_ha_each_shard_has_its_own_lease() -> None:
    config = Config(symbols=SYMBOLS, shm_name="md", health_port=9090, ha_group="desk")
    assert [s.ha_group for s in shard_configs(config, 2)] == ["desk-0", "desk-1"]
    assert shard_configs(config.with_overrides(ha_group=""), 2)[0].ha_group == ""
