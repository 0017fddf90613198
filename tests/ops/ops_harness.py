"""Run the app in-process with its shutdown event exposed, and talk to its HTTP port."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange
from tests.support import service_config, wait_for


@dataclass
class Running:
    app: App
    sim: SimExchange
    shutdown: asyncio.Event
    task: "asyncio.Task[None]"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@contextlib.asynccontextmanager
async def running_app(
    redis_url: str,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    *,
    sim_config: SimConfig | None = None,
    **overrides: Any,
) -> AsyncIterator[Running]:
    sim_cfg = sim_config or SimConfig(symbols=list(symbols), diff_rate_hz=40, trade_rate_hz=10)
    async with SimExchange(sim_cfg) as sim:
        app = App(service_config(sim, redis_url, symbols, **overrides))
        shutdown = asyncio.Event()
        task = asyncio.create_task(app.run(shutdown))
        try:
            await wait_for(lambda: app.http_port is not None or task.done(), what="HTTP port")
            if task.done():
                task.result()  # raises what stopped the app
            yield Running(app, sim, shutdown, task)
        finally:
            shutdown.set()
            await asyncio.wait_for(task, 10)


async def get(base_url: str, path: str) -> Answer:
    async with aiohttp.ClientSession() as session, session.get(base_url + path) as response:
        text = await response.text()
        try:
            body: Any = await response.json(content_type=None)
        except ValueError:
            body = text
        return Answer(response.status, body, dict(response.headers))


async def wait_for_answer(
    base_url: str, path: str, accept: Callable[[Answer], bool], within: float = 10.0
) -> Answer:
    """Poll ``path`` until ``accept`` says yes (a refused connection means: not yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    answer: Answer | str = "no answer"
    while True:
        try:
            answer = await get(base_url, path)
        except aiohttp.ClientConnectionError as error:
            answer = f"connection failed: {error}"
        else:
            if accept(answer):
                return answer
        if loop.time() > deadline:
            raise AssertionError(f"{path} never gave the awaited answer; last: {answer}")
        await asyncio.sleep(0.05)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_metrics(text: str) -> tuple[Samples, set[str]]:
    """(value of every sample, every metric name exposed, including empty families)."""
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, names


async def scrape(base_url: str) -> Samples:
    answer = await get(base_url, "/metrics")
    assert answer.status == 200, answer
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return parse_metrics(answer.body)[0]


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]
