"""``market-data run`` as a child process of a benchmark, pointed at a simulator."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from market_data.ops.ports import free_port
from market_data.sim.exchange import SimExchange


class ServiceProcess:
    """One service process on its own HTTP port; started again on the same port after a kill."""

    def __init__(self, sim: SimExchange, redis_url: str, symbols: str, **settings: object) -> None:
        self.port = free_port()
        self._env = {
            **os.environ,
            "MARKET_DATA_SYMBOLS": symbols,
            "MARKET_DATA_EXCHANGE_WS_URL": sim.ws_base_url,
            "MARKET_DATA_EXCHANGE_REST_URL": sim.rest_base_url,
            "MARKET_DATA_REDIS_URL": redis_url,
            "MARKET_DATA_HEALTH_PORT": str(self.port),
            "MARKET_DATA_HTTP_HOST": "127.0.0.1",
            "MARKET_DATA_SHM_ENABLED": "false",
            "MARKET_DATA_RECONNECT_DELAY_MS": "50",
            "MARKET_DATA_MAX_RECONNECT_DELAY_MS": "500",
            **{f"MARKET_DATA_{key.upper()}": str(value) for key, value in settings.items()},
        }
        self._config = Path(tempfile.mkdtemp(prefix="market-data-bench-")) / "service.yaml"
        self._config.write_text("log_json: false\n")
        self.process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "market_data.cli", "run", "--config", str(self._config),
            env=self._env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                await self.kill()

    async def get(self, path: str) -> tuple[int, bytes] | None:
        """(status, body) of ``GET path`` on the service's HTTP port; None if it is not up."""
        return await asyncio.to_thread(_get, f"http://127.0.0.1:{self.port}{path}")


def _get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return None
