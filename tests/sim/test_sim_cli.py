"""``market-data sim`` options, and the command serving until SIGTERM."""

import argparse
import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from market_data.sim.cli import DEFAULT_PORT, config_from_args, configure_parser
from market_data.sim.exchange import SimExchangeError
from tests.sim.sim_client import receive_until

LAUNCH = (
    "import argparse, sys\n"
    "from market_data.sim.cli import configure_parser, run\n"
    "parser = argparse.ArgumentParser()\n"
    "configure_parser(parser)\n"
    "sys.exit(run(parser.parse_args(sys.argv[1:])))\n"
)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(argv)


def test_options_become_a_config() -> None:
    defaults = config_from_args(_parse())
    assert defaults.port == DEFAULT_PORT and defaults.symbols == ["BTCUSDT", "ETHUSDT"]
    assert defaults.periodic.drop_every_s is None and not defaults.geo_blocked
    config = config_from_args(
        _parse(
            "--symbols", "solusdt, xrpusdt", "--rate", "500", "--levels", "200",
            "--geo-blocked",
            "--drop-every", "5", "--pause-every", "7", "--pause-seconds", "3",
        )
    )  # fmt: skip
    assert config.symbols == ["SOLUSDT", "XRPUSDT"]
    assert config.diff_rate_hz == 500 and config.market.levels_per_side == 200
    assert config.geo_blocked
    replay = config_from_args(_parse("--replay", "capture.gz", "--speed", "0"))
    assert replay.replay == Path("capture.gz") and replay.speed == 0
    assert config.periodic.drop_every_s == 5 and config.periodic.pause_seconds == 3


async def test_command_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", LAUNCH, "--port", "0", "--rate", "50", "--symbols", "ETHUSDT",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(10):
            output = b""
            while b"/fapi/v1/depth" not in output:
                output += await process.stdout.readline()
        ws_url = re.search(rb"(ws://[0-9.]+:\d+)/stream", output)
        assert ws_url is not None
        async with aiohttp.ClientSession() as session:
            url = f"{ws_url.group(1).decode()}/stream?streams=ethusdt@depth"
            async with session.ws_connect(url) as ws:
                assert len(await receive_until(ws, 3, "ethusdt@depth")) == 3
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_replay_http_without_a_replay_is_refused() -> None:
    with pytest.raises(SimExchangeError, match="add --replay"):
        config_from_args(_parse("--replay-http", "snapshots.http"))
    with pytest.raises(SimExchangeError, match="a --replay serves its own"):
        config_from_args(_parse("--replay", "capture.gz", "--symbols", "BTCUSDT"))
