"""Sharding symbols over worker processes, and the supervisor that keeps them running.

One Python process uses one core: past ~50-100k frames/s the symbols must be
split across processes. :func:`shard_configs` splits ``config.symbols``
round-robin (so the busiest symbols, usually listed first, land on different
workers); each shard is a full :class:`~market_data.service.app.App` with its own
shared-memory segment (``f"{shm_name}-{i}"``). A symbol lives in exactly one
worker, so its book, sequence checks and Redis channels stay where they were.
Workers serve HTTP on private loopback ports; the supervisor's
:class:`~market_data.service.front.Front` serves ``health_port`` for all of them.

:class:`Supervisor` starts one process per shard, restarts a worker that dies
(capped exponential backoff per worker, reset once it stayed up a while),
forwards SIGTERM on shutdown, kills what does not stop in time and returns 0.
Workers ignore SIGINT (a terminal's Ctrl-C reaches the whole process group:
the supervisor decides) and stop on their own if the supervisor disappears.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from market_data.binance.decode import DecodeError
from market_data.binance.instruments import all_perpetuals, decode_exchange_info
from market_data.core.backoff import backoff
from market_data.errors import MarketDataError
from market_data.ops.config import Config
from market_data.ops.ports import free_port
from market_data.service.front import Front, WorkerAddress
from market_data.wire.ring_index import remove_index, write_index

log = logging.getLogger(__name__)

_PARENT_CHECK_S = 1.0
_POLL_S = 0.2


def shard_symbols(symbols: tuple[str, ...], workers: int) -> list[tuple[str, ...]]:
    """``workers`` non-empty groups, round-robin; fewer when there are fewer symbols."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    count = min(workers, len(symbols))
    return [symbols[i::count] for i in range(count)]


def shard_configs(config: Config, workers: int, ports: Sequence[int] | None = None) -> list[Config]:
    """One config per worker: a subset of the symbols and its own shm segment.

    Worker ``i`` serves HTTP on 127.0.0.1:``ports[i]`` (an ephemeral port without
    ``ports``): the user-facing ``health_port`` belongs to the front. The REST
    weight budget is per IP address, which all workers share, so each gets its
    part of it. With ``ha_group``, each shard gets a lease of its own.
    """
    shards = shard_symbols(config.symbols, workers)
    if len(shards) == 1:
        return [config]
    return [
        config.with_overrides(
            symbols=group,
            shm_name=f"{config.shm_name}-{index}",
            http_host="127.0.0.1",
            health_port=ports[index] if ports is not None else 0,
            rest_weight_share=config.rest_weight_share / len(shards),
            # Each shard has its own lease: shard i of one instance pairs with shard i of
            # the other (both shard the same symbols the same way).
            ha_group=f"{config.ha_group}-{index}" if config.ha_group else "",
        )
        for index, group in enumerate(shards)
    ]


# ---------------------------------------------------------------------- worker side


def service_report(app: Any) -> dict[str, int]:
    """The figures a worker hands back when it stops (benchmarks read them)."""
    service = app.service
    counters = service.counters
    totals: dict[str, int] = {}
    for state in service.symbols.values():
        for name, value in state.sync.counters().items():
            totals[name] = totals.get(name, 0) + value
    redis = app.redis.stats
    return {
        "frames": counters.frames,
        "depth_frames": counters.by_type["depth"],
        "book_publishes": service.publisher.book_publishes,
        "resets": sum(counters.resets.values()),
        "malformed": counters.malformed,
        "snapshot_requests": totals.get("snapshots_requested", 0),
        "gaps": totals.get("gaps", 0),
        "crossed": totals.get("crossed", 0),
        "buffer_overflows": totals.get("buffer_overflows", 0),
        "applied": totals.get("applied", 0),
        "redis_published_books": redis.published_books,
        "redis_conflated_books": redis.conflated_books,
        "redis_errors": redis.errors,
    }


async def _serve(config: Config, report: Connection | None) -> None:
    from market_data.ops.gc_freeze import freeze_startup_objects
    from market_data.service.app import App

    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, shutdown.set)
    parent = os.getppid()

    async def watch_parent() -> None:
        while True:  # no event to wait on: a reparented process is only seen by polling
            await asyncio.sleep(_PARENT_CHECK_S)
            if os.getppid() != parent:
                break
        log.warning("supervisor %d is gone: stopping", parent)
        shutdown.set()

    watcher = asyncio.create_task(watch_parent(), name="watch-supervisor")
    app = App(config)
    freeze_startup_objects()
    try:
        await app.run(shutdown)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if report is not None:
        report.send(service_report(app))


def worker_main(
    config: Config, report: Connection | None = None, log_level: str | None = None
) -> None:
    """Process entry point: run one App until SIGTERM, then send its report if asked."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from market_data.ops.logs import setup_logging

    setup_logging(json_lines=config.log_json or None, level=log_level)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - other platforms
        asyncio.run(_serve(config, report))
    else:
        uvloop.run(_serve(config, report))
    if report is not None:
        report.close()


# ---------------------------------------------------------------------- supervisor


@dataclasses.dataclass
class _Slot:
    """One worker position: its config, current process and restart schedule."""

    index: int
    config: Config
    delays: Iterator[float]
    process: SpawnProcess | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Runs one worker process per shard until :meth:`stop`; restarts the ones that die."""

    def __init__(
        self,
        config: Config,
        workers: int,
        *,
        restart_initial_s: float = 0.5,
        restart_max_s: float = 30.0,
        stable_after_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        log_level: str | None = None,
        serve_front: bool = True,
    ) -> None:
        self._context: SpawnContext = multiprocessing.get_context("spawn")
        self._restart_initial_s = restart_initial_s
        self._restart_max_s = restart_max_s
        self._stable_after_s = stable_after_s
        self._stop_timeout_s = stop_timeout_s
        self._log_level = log_level
        self._stop = threading.Event()
        count = len(shard_symbols(config.symbols, workers))
        ports = [free_port() for _ in range(count)] if count > 1 else None
        self._slots = [
            _Slot(index, shard, self._delays())
            for index, shard in enumerate(shard_configs(config, workers, ports))
        ]
        self._running = [False] * len(self._slots)
        self._shm_name = config.shm_name
        self._shm_index = (
            {s: slot.config.shm_name for slot in self._slots for s in slot.config.symbols}
            if config.shm_enabled and len(self._slots) > 1
            else None
        )
        self.front: Front | None = None
        if ports is not None and serve_front:
            self.front = Front(
                config.http_host,
                config.health_port or free_port(),
                [
                    WorkerAddress(s.index, s.config.symbols, f"http://127.0.0.1:{port}")
                    for s, port in zip(self._slots, ports, strict=True)
                ],
                alive=lambda index: self._running[index],
                ui_token=config.ui_token,
            )

    @property
    def shards(self) -> list[Config]:
        return [slot.config for slot in self._slots]

    def pids(self) -> list[int | None]:
        """The running worker pids by shard (None while a worker waits for its restart)."""
        return [
            slot.process.pid if slot.process is not None and slot.process.is_alive() else None
            for slot in self._slots
        ]

    def restarts(self) -> list[int]:
        return [slot.restarts for slot in self._slots]

    def stop(self) -> None:
        """Ask :meth:`run` to stop the workers and return (safe from a signal handler)."""
        self._stop.set()

    def run(self) -> int:
        """Start the workers, keep them running until :meth:`stop`, stop them; returns 0."""
        log.info(
            "starting %d workers: %s",
            len(self._slots),
            "; ".join(",".join(slot.config.symbols) for slot in self._slots),
        )
        if self.front is not None:
            self.front.start()
        if self._shm_index is not None:
            write_index(self._shm_name, self._shm_index)
        for slot in self._slots:
            self._start(slot)
        try:
            while not self._stop.is_set():
                self._wait_for_event()
                now = time.monotonic()
                for slot in self._slots:
                    self._reap(slot, now)
                    if slot.restart_at is not None and now >= slot.restart_at:
                        self._start(slot)
        finally:
            self._stop_all()
            if self._shm_index is not None:
                remove_index(self._shm_name)
            if self.front is not None:
                self.front.stop()
        log.info("all workers stopped")
        return 0

    # -- internals --------------------------------------------------------------

    def _delays(self) -> Iterator[float]:
        return backoff(self._restart_initial_s, self._restart_max_s)

    def _start(self, slot: _Slot) -> None:
        process = self._context.Process(
            target=worker_main,
            args=(slot.config, None, self._log_level),
            name=f"market-data-worker-{slot.index}",
            daemon=False,
        )
        process.start()
        slot.process, slot.started_at, slot.restart_at = process, time.monotonic(), None
        self._running[slot.index] = True
        log.info("worker %d started (pid %d)", slot.index, process.pid)

    def _wait_for_event(self) -> None:
        """Sleep until a worker exits, a restart is due or the stop check comes round."""
        timeout = _POLL_S
        now = time.monotonic()
        for slot in self._slots:
            if slot.restart_at is not None:
                timeout = min(timeout, max(0.0, slot.restart_at - now))
        sentinels = [
            slot.process.sentinel
            for slot in self._slots
            if slot.process is not None and slot.process.exitcode is None
        ]
        if sentinels:
            wait(sentinels, timeout)
        else:
            self._stop.wait(timeout)

    def _reap(self, slot: _Slot, now: float) -> None:
        process = slot.process
        if process is None or process.is_alive() or self._stop.is_set():
            return
        process.join()
        exitcode = process.exitcode
        process.close()
        slot.process = None
        self._running[slot.index] = False
        if now - slot.started_at >= self._stable_after_s:
            slot.delays = self._delays()
        delay = next(slot.delays)
        slot.restart_at = now + delay
        slot.restarts += 1
        log.warning(
            "worker %d (%s) exited with %s: restarting in %.2fs",
            slot.index,
            ",".join(slot.config.symbols),
            exitcode,
            delay,
            extra={"worker": slot.index, "restart_s": round(delay, 3)},
        )

    def _stop_all(self) -> None:
        running = [slot.process for slot in self._slots if slot.process is not None]
        for process in running:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker shuts down cleanly
        deadline = time.monotonic() + self._stop_timeout_s
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker pid %d did not stop in time: killing it", process.pid)
                process.kill()
                process.join()
            process.close()
        for slot in self._slots:
            slot.process = None
            self._running[slot.index] = False


def resolve_all_symbols(config: Config, timeout_s: float = 10.0) -> Config:
    """``symbols: all`` made explicit from exchangeInfo, so it can be sharded over workers.

    New listings are not picked up while the workers run (a single process does).
    """
    if not config.all_symbols:
        return config
    url = f"{config.exchange_rest_url}/fapi/v1/exchangeInfo"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - config URL
            body = response.read()
        listed = decode_exchange_info(body)
    except (OSError, DecodeError) as exc:
        raise MarketDataError(f"symbols: all: cannot read {url}: {exc}") from exc
    symbols = all_perpetuals(listed, config.symbols_quote_asset)
    if not symbols:
        raise MarketDataError("symbols: all: no trading perpetual is listed")
    log.info("symbols: all: %d trading perpetuals", len(symbols))
    return config.with_overrides(symbols=symbols)


def run_workers(config: Config, workers: int, log_level: str | None = None) -> int:
    """``market-data run --workers N``: supervise N workers until SIGTERM or SIGINT; returns 0."""
    supervisor = Supervisor(resolve_all_symbols(config), workers, log_level=log_level)

    def on_signal(signum: int, frame: object) -> None:
        supervisor.stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return supervisor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
