"""The supervisor's HTTP front on its own: health without workers, a port it cannot have."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from market_data.errors import MarketDataError
from market_data.service.front import Front, WorkerAddress
from tests.support import free_port


def _health(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_health_is_503_while_no_worker_runs() -> None:
    alive = {0: False, 1: False}
    workers = [WorkerAddress(i, (f"S{i}USDT",), f"http://127.0.0.1:{free_port()}") for i in (0, 1)]
    front = Front("127.0.0.1", free_port(), workers, alive=lambda index: alive[index])
    front.start()
    try:
        status, body = _health(front.port)
        assert (status, body["status"], body["workers_running"]) == (503, "unhealthy", 0)
        alive[1] = True
        status, body = _health(front.port)
        assert (status, body["status"], body["workers_running"]) == (200, "healthy", 1)
    finally:
        front.stop()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        front = Front("127.0.0.1", port, [], alive=lambda index: True)
        with pytest.raises(MarketDataError, match=f"cannot listen on 127.0.0.1:{port}"):
            front.start()
