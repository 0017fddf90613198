"""One HTTP front for ``run --workers N``: the user sees one service on one port.

Workers serve HTTP on private loopback ports; the supervisor serves
``health_port`` itself, from a thread with its own event loop, and answers:

- ``/health``: the supervisor is up (and how many workers run);
- ``/ready``: every worker's ``/ready`` merged; a worker that does not answer
  makes it 503 with a reason naming the worker and its symbols;
- ``/metrics``: every worker's series in one scrape, each sample labelled
  ``worker="<index>"``, plus ``market_data_workers_up``;
- ``/book/{symbol}`` and ``/stats/{symbol}``: forwarded to the worker that owns
  the symbol.
- ``/ui`` (and ``/``): the web view over every worker (``web/front.py``).

Prometheus config, alert rules, dashboard and health checks stay as for one
process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry
from prometheus_client.samples import Sample

from market_data import __version__
from market_data.errors import MarketDataError
from market_data.web.front import FrontView

log = logging.getLogger(__name__)

_ASK_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class WorkerAddress:
    """Where one worker's HTTP listens, and what it carries."""

    index: int
    symbols: tuple[str, ...]
    url: str


def merge_metrics(scrapes: Sequence[tuple[int, str]]) -> list[Metric]:
    """Metric families of every worker's scrape, each sample labelled with its worker."""
    merged: dict[str, Metric] = {}
    for index, text in scrapes:
        for family in text_string_to_metric_families(text):
            target = merged.get(family.name)
            if target is None:
                target = merged[family.name] = Metric(
                    family.name, family.documentation, family.type, family.unit
                )
            for sample in family.samples:
                labels = {**sample.labels, "worker": str(index)}
                target.samples.append(
                    Sample(sample.name, labels, sample.value, sample.timestamp, sample.exemplar)
                )
    return list(merged.values())


class _Families:
    """A collector that yields a fixed list of families (one render of a merge)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


class Front:
    """The supervisor's HTTP server, run on a thread of its own."""

    def __init__(
        self,
        host: str,
        port: int,
        workers: Sequence[WorkerAddress],
        alive: Callable[[int], bool],
        *,
        ui_token: str = "",
    ) -> None:
        self.host = host
        self.ui_token = ui_token
        self.port = port
        self.workers = list(workers)
        self._alive = alive
        self._owner = {s: w for w in self.workers for s in w.symbols}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle (called from the supervisor's thread) ----------------------------

    def start(self) -> None:
        """Listen, or raise MarketDataError if the port cannot be had."""
        self._thread = threading.Thread(target=self._run, name="http-front", daemon=True)
        self._thread.start()
        if not self._started.wait(30):
            raise MarketDataError(f"HTTP front on {self.host}:{self.port}: no start in 30 s")
        if self._error is not None:
            raise MarketDataError(
                f"cannot listen on {self.host}:{self.port}: {self._error}"
            ) from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to start(), or logged once serving
            if not self._started.is_set():
                self._error = exc
                self._started.set()
            else:
                log.exception("the HTTP front stopped")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.ready)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/book/{symbol}", self.forward)
        app.router.add_get("/stats/{symbol}", self.forward)
        FrontView(self.workers, self.ui_token).mount(app)  # /, /ui: the workers' views merged
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        timeout = aiohttp.ClientTimeout(total=_ASK_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self._session = session
            try:
                site = web.TCPSite(runner, self.host, self.port)
                await site.start()
            except BaseException:
                await runner.cleanup()
                raise
            log.info("HTTP front on %s:%d for %d workers", self.host, self.port, len(self.workers))
            self._started.set()
            try:
                await self._stopped.wait()
            finally:
                await runner.cleanup()

    # -- asking the workers ----------------------------------------------------------

    async def _ask(self, worker: WorkerAddress, path: str) -> tuple[int, bytes, str]:
        """(status, body, content type) of a worker's answer; raises OSError-like errors."""
        assert self._session is not None
        async with self._session.get(worker.url + path) as response:
            body = await response.read()
            return response.status, body, response.headers.get("Content-Type", "")

    async def _ask_all(self, path: str) -> list[tuple[WorkerAddress, Any]]:
        results = await asyncio.gather(
            *(self._ask(w, path) for w in self.workers), return_exceptions=True
        )
        return list(zip(self.workers, results, strict=True))

    # -- handlers --------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        """Healthy while at least one worker runs: with none, a restart of the whole is due."""
        up = sum(1 for w in self.workers if self._alive(w.index))
        return web.json_response(
            {
                "status": "healthy" if up else "unhealthy",
                "version": __version__,
                "workers": len(self.workers),
                "workers_running": up,
            },
            status=200 if up else 503,
        )

    async def ready(self, request: web.Request) -> web.Response:
        """Every worker's readiness merged into the shape one process answers with."""
        reasons: list[str] = []
        books: dict[str, Any] = {}
        feeds: dict[str, Any] = {"up": 0, "total": 0, "down": []}
        redis: dict[str, Any] = {"ok": True, "reason": None, "url": None}
        workers: dict[str, Any] = {}
        quiet: list[str] = []
        skipped: dict[str, str] = {}
        max_age: Any = None
        for worker, result in await self._ask_all("/ready"):
            answer: dict[str, Any] = {}
            if not isinstance(result, BaseException):
                status, body, _ = result
                try:
                    answer = _decode_json(body)
                except ValueError:
                    answer = {}
            if "checks" not in answer:
                why = (
                    f"{type(result).__name__} {result}".strip()
                    if isinstance(result, BaseException)
                    else f"HTTP {result[0]}"
                )
                workers[str(worker.index)] = {"ok": False, "reason": why}
                for symbol in worker.symbols:
                    reasons.append(f"{symbol}: worker {worker.index} not answering ({why})")
                    books[symbol] = {"state": "unknown", "age_s": None, "last_update_id": 0}
                continue
            workers[str(worker.index)] = {"ok": status == 200, "reason": None}
            reasons.extend(answer.get("reasons", []))
            checks = answer["checks"]
            books.update(checks.get("books", {}))
            quiet.extend(checks.get("quiet", []))
            skipped.update(checks.get("skipped", {}))
            worker_feeds = checks.get("feeds", {})
            feeds["up"] += worker_feeds.get("up", 0)
            feeds["total"] += worker_feeds.get("total", 0)
            feeds["down"].extend(worker_feeds.get("down", []))
            worker_redis = checks.get("redis", {})
            redis["url"] = redis["url"] or worker_redis.get("url")
            if not worker_redis.get("ok", False) and redis["ok"]:
                redis["ok"], redis["reason"] = False, worker_redis.get("reason")
            max_age = checks.get("max_book_age_s", max_age)
        ready = not reasons
        checks_out = {
            "redis": redis,
            "feeds": feeds,
            "books": books,
            "quiet": quiet,
            "skipped": skipped,
            "max_book_age_s": max_age,
            "workers": workers,
        }
        return web.json_response(
            {"status": "ready" if ready else "not ready", "reasons": reasons, "checks": checks_out},
            status=200 if ready else 503,
        )

    async def metrics(self, request: web.Request) -> web.Response:
        scrapes: list[tuple[int, str]] = []
        up = Metric("market_data_workers_up", "Worker processes answering a scrape", "gauge")
        for worker, result in await self._ask_all("/metrics"):
            ok = not isinstance(result, BaseException) and result[0] == 200
            if ok:
                scrapes.append((worker.index, result[1].decode()))
            up.add_sample("market_data_workers_up", {"worker": str(worker.index)}, float(ok))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([*merge_metrics(scrapes), up]))
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def forward(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"].upper()
        worker = self._owner.get(symbol)
        if worker is None:
            return web.json_response(
                {"error": f"unknown symbol {symbol}", "symbols": sorted(self._owner)},
                status=404,
            )
        path = request.rel_url.path_qs
        try:
            status, body, content_type = await self._ask(worker, path)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return web.json_response(
                {"error": f"worker {worker.index} for {symbol} is not answering: {exc}"},
                status=503,
            )
        return web.Response(
            status=status, body=body, headers={"Content-Type": content_type or "application/json"}
        )


def _decode_json(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("not an object")
    return value
