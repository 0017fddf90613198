"""SIGTERM and SIGINT: readiness first, feeds closed, publications flushed, bounded exit."""

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig, SimExchange
from tests.ops.ops_harness import get, parse_metrics, wait_for_answer
from tests.support import free_port

SYMBOLS = ("BTCUSDT", "ETHUSDT")

# serve() with a chosen grace period, the way `market-data run` uses it.
SERVE = """
import asyncio, sys
from market_data.service.app import serve
from market_data.ops.config import load_config
from market_data.ops.logs import setup_logging
setup_logging(json_lines=True)
sys.exit(asyncio.run(serve(load_config(sys.argv[1]), grace_s=float(sys.argv[2]))))
"""


def write_config(
    directory: Path, sim: SimExchange, redis_url: str, port: int, shm_name: str
) -> Path:
    path = directory / "config.yaml"
    settings = {
        "symbols": list(SYMBOLS),
        "exchange_ws_url": sim.ws_base_url,
        "exchange_rest_url": sim.rest_base_url,
        "redis_url": redis_url,
        "http_host": "127.0.0.1",
        "health_port": port,
        "shm_name": shm_name,  # the fixture's: removed after, even when the process was killed
        "reconnect_delay_ms": 50,
        "max_reconnect_delay_ms": 500,
    }
    path.write_text(yaml.safe_dump(settings))
    return path


@asynccontextmanager
async def service_process(*argv: str, cwd: Path) -> AsyncIterator[tuple[Any, list[str]]]:
    """The process and its stderr lines, read as they come (the pipe never fills)."""
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    lines: list[str] = []

    async def read() -> None:
        assert process.stderr is not None
        async for line in process.stderr:
            lines.append(line.decode().rstrip("\n"))

    reader = asyncio.create_task(read())
    try:
        yield process, lines
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await asyncio.wait_for(reader, 5)


def json_logs(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_sigterm_exits_0_after_publishing_the_last_state(
    redis_server: EmbeddedRedis, tmp_path: Path, shm_name: str
) -> None:
    sim_config = SimConfig(list(SYMBOLS), diff_rate_hz=100, trade_rate_hz=20)
    async with SimExchange(sim_config) as sim:
        port = free_port()
        config = write_config(tmp_path, sim, redis_server.url, port, shm_name)
        client = aioredis.from_url(redis_server.url)
        pubsub = client.pubsub()
        await pubsub.subscribe(*(f"orderbook:{s}" for s in SYMBOLS))
        command = (sys.executable, "-m", "market_data.cli", "run", "--config", str(config))
        try:
            async with service_process(*command, "--log-json", cwd=tmp_path) as (process, lines):
                base = f"http://127.0.0.1:{port}"
                await wait_for_answer(base, "/ready", lambda a: a.status == 200, within=20)
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(process.wait(), 10)
                elapsed = time.monotonic() - started
            assert code == 0, lines[-10:]
            assert elapsed < 5.0
            logs = json_logs(lines)
            messages = [entry["msg"] for entry in logs]
            requested = next(i for i, m in enumerate(messages) if m.startswith("shutdown req"))
            stopped = next(i for i, m in enumerate(messages) if m.startswith("stopped"))
            assert requested < stopped
            # Start-up's objects were frozen out of the collector's walks (ops/gc_freeze.py).
            frozen = next(e for e in logs if e["msg"].startswith("froze"))
            assert frozen["frozen_objects"] > 10_000
            final_books = logs[stopped]["final_books"]

            last: dict[str, dict[str, Any]] = {}
            last_live: dict[str, dict[str, Any]] = {}
            while (message := await pubsub.get_message(timeout=0.5)) is not None:
                if message["type"] == "message":
                    book = json.loads(message["data"])
                    last[book["symbol"]] = book
                    if book["initialized"]:
                        last_live[book["symbol"]] = book
            for symbol in SYMBOLS:
                assert final_books[symbol]["state"] == "live"
                # The final publication says nobody maintains the book any more...
                assert last[symbol]["state"] == "waiting" and not last[symbol]["initialized"]
                assert last[symbol]["bids"] == {}
                # ... after live ones, none newer than the book the service stopped with
                # (the publisher conflates: the final one may replace a queued live one).
                uid = last_live[symbol]["last_update_id"]
                assert 0 < uid <= final_books[symbol]["last_update_id"]
                assert await client.exists(f"market_data:{symbol}") == 1
        finally:
            await pubsub.aclose()
            await client.aclose()


async def test_second_signal_exits_at_once_and_grace_is_bounded(
    tmp_path: Path, shm_name: str
) -> None:
    sim_config = SimConfig(list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=5)
    async with SimExchange(sim_config) as sim:
        # Nobody listens on this Redis port: the final flush waits its full timeout (2 s).
        unreachable_redis = f"redis://127.0.0.1:{free_port()}/0"
        for grace_s, signals, expected_code, within_s in (
            (30.0, (signal.SIGTERM, signal.SIGINT), 128 + signal.SIGINT, 1.5),
            (0.5, (signal.SIGTERM,), 1, 1.8),
        ):
            port = free_port()
            config = write_config(tmp_path, sim, unreachable_redis, port, shm_name)
            command = (sys.executable, "-c", SERVE, str(config), str(grace_s))
            async with service_process(*command, cwd=tmp_path) as (process, lines):
                base = f"http://127.0.0.1:{port}"

                def has_backlog(answer: Any) -> bool:
                    if answer.status != 200:
                        return False
                    samples, _ = parse_metrics(answer.body)
                    return samples[("redis_publish_queue_depth", frozenset())] > 0

                await wait_for_answer(base, "/metrics", has_backlog, within=20)
                started = time.monotonic()
                process.send_signal(signals[0])
                await asyncio.sleep(0.2)
                assert process.returncode is None  # still flushing
                assert (await get(base, "/ready")).body["reasons"][0] == "shutting down"
                for signum in signals[1:]:
                    process.send_signal(signum)
                code = await asyncio.wait_for(process.wait(), 10)
                elapsed = time.monotonic() - started
            assert code == expected_code, lines[-10:]
            assert elapsed < within_s, elapsed
