"""Helpers shared by the tests that run the service against the simulator."""

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from market_data.ops.config import Config
from market_data.ops.ports import free_port as free_port
from market_data.sim.exchange import SimExchange


async def wait_for(predicate: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.02)


def service_config(
    sim: SimExchange, redis_url: str, symbols: tuple[str, ...], **overrides: Any
) -> Config:
    """A config pointing at ``sim`` and ``redis_url``, quick to reconnect, ephemeral ports."""
    settings: dict[str, Any] = {
        "symbols": symbols,
        "exchange_ws_url": sim.ws_base_url,
        "exchange_rest_url": sim.rest_base_url,
        "redis_url": redis_url,
        "health_port": 0,
        "http_host": "127.0.0.1",
        "shm_name": f"market_data_test_{uuid.uuid4().hex[:8]}",
        "reconnect_delay_ms": 50,
        "max_reconnect_delay_ms": 500,
    }
    settings.update(overrides)
    return Config(**settings)
