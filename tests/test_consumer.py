"""examples/consumer.py as a user runs it: a subprocess against a real redis-server."""

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis

from market_data.core.state import BookState
from market_data.embedded_cluster import EmbeddedCluster
from market_data.embedded_redis import EmbeddedRedis
from market_data.outputs.redis_cluster import RedisClusterSink
from market_data.wire.payloads import orderbook_payload, trade_payload

CONSUMER = Path(__file__).resolve().parents[1] / "examples" / "consumer.py"


@asynccontextmanager
async def consumer(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """The example running with ``args``; killed if the test did not stop it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CONSUMER),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def wait_for_subscriber(url: str, channel: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        async with asyncio.timeout(10):
            while (await client.pubsub_numsub(channel))[0][1] < 1:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


async def publish(url: str, channel: str, payload: bytes) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await client.publish(channel, payload)
    finally:
        await client.aclose()


async def stop_with_sigint(process: asyncio.subprocess.Process) -> tuple[int, bytes]:
    process.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        _, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stderr


async def test_raw_mode_prints_published_messages_and_exits_cleanly_on_sigint(
    redis_server: EmbeddedRedis,
) -> None:
    payload = trade_payload(
        "ETHUSDT",
        trade_id=123456,
        price=3456.78,
        quantity=1.5,
        timestamp_ms=1_700_000_000_000,
        is_buyer_maker=False,
    )
    async with consumer("--raw", "--redis-url", redis_server.url, "--symbol", "ethusdt") as proc:
        await wait_for_subscriber(redis_server.url, "trades:ETHUSDT")
        await publish(redis_server.url, "trades:ETHUSDT", payload)
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            line = await proc.stdout.readline()
        assert line.decode().rstrip("\n") == f"trades:ETHUSDT {payload.decode()}"
        returncode, stderr = await stop_with_sigint(proc)
    assert returncode == 0, stderr.decode()
    assert "Traceback" not in stderr.decode()


async def test_view_mode_prints_plain_lines_when_not_on_a_terminal(
    redis_server: EmbeddedRedis,
) -> None:
    book = orderbook_payload(
        "BTCUSDT",
        [(64000.5, 2.0)],
        [(64001.0, 1.0)],
        last_update_id=55,
        event_time_ms=1,
        now_ms=2,
        state=BookState.LIVE,
    )
    client = aioredis.Redis.from_url(redis_server.url)
    # The service's heartbeat, which the view needs to trust a book it is shown.
    await client.set("market_data:heartbeat", b'{"epoch":0}', px=10_000)
    await client.aclose()
    async with consumer("--redis-url", redis_server.url, "--symbol", "BTCUSDT") as proc:
        await wait_for_subscriber(redis_server.url, "orderbook:BTCUSDT")
        await publish(redis_server.url, "market_data:heartbeat", b'{"epoch":0}')
        await publish(redis_server.url, "orderbook:BTCUSDT", book)
        assert proc.stdout is not None
        async with asyncio.timeout(10):
            while b"| live |" not in (line := await proc.stdout.readline()):
                assert line, "the consumer exited early"
        assert "bid 64000.5 ask 64001" in line.decode()
        returncode, stderr = await stop_with_sigint(proc)
    assert returncode == 0, stderr.decode()


async def test_raw_mode_reads_a_cluster_with_sharded_pub_sub(
    redis_cluster: EmbeddedCluster,
) -> None:
    payload = b'{"symbol":"ETHUSDT","trade_id":7}'
    async with (
        consumer("--raw", "--redis-url", redis_cluster.url, "--symbol", "ETHUSDT") as proc,
        RedisClusterSink(redis_cluster.url) as sink,
    ):
        assert proc.stdout is not None
        line = b""
        async with asyncio.timeout(20):
            while not line:  # published until the consumer has subscribed and prints it
                sink.publish_trade("ETHUSDT", payload)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        line = await proc.stdout.readline()
        assert sink.sharded is True  # so the line came through SSUBSCRIBE
        assert line.decode().rstrip("\n") == f"trades:ETHUSDT {payload.decode()}"
        returncode, stderr = await stop_with_sigint(proc)
    assert returncode == 0, stderr.decode()
