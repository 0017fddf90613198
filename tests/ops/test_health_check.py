"""``market-data health`` as a subprocess against the running service."""

import asyncio
import sys
from pathlib import Path

import pytest

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.errors import MarketDataError
from market_data.ops.health_check import url_from_config
from tests.ops.ops_harness import running_app, wait_for_answer
from tests.support import free_port, wait_for


async def health_command(url: str, *options: str) -> tuple[int, list[str]]:
    where = ("--url", url) if url else ()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "market_data.cli",
        "health",
        *where,
        *options,
        "--timeout",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, out.decode().splitlines()


async def test_exit_codes_follow_the_service_state(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    async with running_app(redis_server.url, ("BTCUSDT", "ETHUSDT")) as run:
        service = run.app.service
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()), what="live"
        )
        await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        code, lines = await health_command(run.base_url)
        assert code == 0, lines
        assert [line.split(":")[0] for line in lines] == [
            "OK   health",
            "OK   ready",
            "OK   connections",
            "OK   redis",
            "OK   book BTCUSDT",
            "OK   book ETHUSDT",
        ]
        assert "2/2 exchange connections up" in lines[2]
        assert "live, updated" in lines[4]

        await asyncio.to_thread(redis_server.kill)
        await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 503)
        code, lines = await health_command(run.base_url)
        assert code == 1, lines
        checks = {line[5:].split(":")[0]: line for line in lines}
        redis_line = checks["redis"]
        assert redis_line.startswith("FAIL redis: ") and len(redis_line) > len("FAIL redis: ")
        assert checks["ready"].startswith("FAIL ready: redis: ")
        assert checks["connections"].startswith("OK   connections: ")
        assert lines[0].startswith("OK   health")
        # Liveness only: the process answers, so a container is not restarted for Redis.
        assert await health_command(run.base_url, "--liveness") == (0, [lines[0]])
        # Without --url the address comes from the config run reads.
        port = run.base_url.rsplit(":", 1)[1]
        config = tmp_path / "service.yaml"
        config.write_text(f"health_port: {port}\nhttp_host: 0.0.0.0\n")
        code, from_config = await health_command("", "--config", str(config))
        assert code == 1 and from_config[0].startswith("OK   health")
        await asyncio.to_thread(redis_server.restart)


async def test_unreachable_service_exits_2() -> None:
    code, lines = await health_command(f"http://127.0.0.1:{free_port()}")
    assert code == 2
    assert lines[0].startswith("FAIL health: service unreachable:")
    assert "refused" in lines[0].lower()


def test_a_config_with_health_port_0_asks_for_url(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("health_port: 0\n")
    with pytest.raises(MarketDataError, match="pass --url"):
        url_from_config(str(config))
