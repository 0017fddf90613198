"""The ``market-data`` command line: thin, it parses, sets up logging, delegates."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from market_data import __version__
from market_data.errors import MarketDataError

if TYPE_CHECKING:
    from market_data.config import Config

Runner = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def _load(args: argparse.Namespace) -> "Config":
    from market_data.config import load_config

    return load_config(args.config)


def _run_async(coro_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run with uvloop when it is installed (it is, on Linux)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - other platforms
        return asyncio.run(coro_factory())
    return uvloop.run(coro_factory())


# ------------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace) -> int:
    from market_data.app import serve
    from market_data.logs import setup_logging

    config = _load(args)
    setup_logging(json_lines=True if args.log_json else config.log_json or None)
    if args.workers > 1:
        from market_data.workers import run_workers

        return run_workers(config, args.workers)
    return _run_async(lambda: serve(config))


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args)
    print(f"configuration OK ({config.source})")
    for key, value in config.describe().items():
        print(f"  {key}: {value}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from market_data.demo import run_demo
    from market_data.logs import setup_logging

    config = _load(args)
    setup_logging(level=args.log_level or os.environ.get("LOG_LEVEL") or "WARNING")

    async def main() -> int:
        return await run_demo(
            config, symbol=args.symbol, rate_hz=args.rate, duration_s=args.duration
        )

    return _run_async(main)


def _cmd_health(args: argparse.Namespace) -> int:
    from market_data import health_check

    return health_check.run(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from market_data.capture import read_capture, read_snapshots
    from market_data.replay import Replayer, jsonl_trace

    items = list(read_capture(args.file, symbol=args.symbol))
    if args.snapshot:
        items.extend(read_snapshots(args.snapshot))
        items.sort(key=lambda item: item.recv_ns)
    trace_file = Path(args.book_trace).open("wb") if args.book_trace else None  # noqa: SIM115
    try:
        trace = jsonl_trace(trace_file) if trace_file else None
        replayer = Replayer(symbol=args.symbol, depth=args.depth, trace=trace)
        replayer.feed_all(items)
    finally:
        if trace_file:
            trace_file.close()
    print(replayer.report())
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "core":
        from market_data import bench_core

        return bench_core.run(args)
    if args.what == "shm":
        from market_data import bench_shm

        return bench_shm.run(args)
    if args.what == "e2e":
        from market_data import bench_e2e

        return bench_e2e.run(args)
    from market_data.io import bench_redis

    return bench_redis.run(args)


# ------------------------------------------------------------------- parsers


def _add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        help="YAML config (default: config.yaml, else config.example.yaml, else built-in "
        "defaults; MARKET_DATA_<KEY> environment variables override)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-data",
        description="Binance USD-M futures market data: order books, trades and 24h stats, "
        "published to Redis, shared memory and HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the service (production)")
    _add_config_option(p)
    p.add_argument("--log-json", action="store_true", help="JSON log lines (or LOG_JSON=1)")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, the symbols sharded across them (1)",
    )
    p.set_defaults(run=_cmd_run)

    p = sub.add_parser("check-config", help="validate the configuration and print it")
    _add_config_option(p)
    p.set_defaults(run=_cmd_check_config)

    p = sub.add_parser(
        "demo",
        help="offline demo: simulated exchange -> service -> Redis, with a live view",
    )
    _add_config_option(p)
    p.add_argument("--symbol", help="symbol to show (default: the first configured)")
    p.add_argument("--rate", type=float, default=20.0, help="simulated diffs/s per symbol (20)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument(
        "--log-level", help="log level during the view (default: LOG_LEVEL, else WARNING)"
    )
    p.set_defaults(run=_cmd_demo)

    from market_data import health_check

    p = sub.add_parser(
        "health",
        help="check a running service: health, readiness, connections, Redis, book freshness",
    )
    health_check.configure_parser(p)
    p.set_defaults(run=_cmd_health)

    from market_data.sim import cli as sim_cli

    p = sub.add_parser("sim", help="run the simulated Binance USD-M futures exchange")
    sim_cli.configure_parser(p)
    p.set_defaults(run=sim_cli.run)

    p = sub.add_parser(
        "replay",
        help="replay a recorded capture through the decoder and sync core",
        description="Replay a capture (cryptofeed text or hftbacktest gzip) and print a summary.",
    )
    p.add_argument("file", help="capture file")
    p.add_argument("--snapshot", help="separate REST snapshot file (cryptofeed '.http.' format)")
    p.add_argument("--symbol", help="only this symbol (also names an inline snapshot's owner)")
    p.add_argument(
        "--book-trace", metavar="OUT.jsonl", help="write the top levels after each event"
    )
    p.add_argument("--depth", type=int, default=20, help="levels per side in the trace (20)")
    p.set_defaults(run=_cmd_replay)

    from market_data import shm_tail

    p = sub.add_parser("shm-tail", help="watch the shared-memory ring from the terminal")
    shm_tail.configure_parser(p)
    p.set_defaults(run=shm_tail.run)

    bench = sub.add_parser("bench", help="benchmarks (print figures with a baseline)")
    bench_sub = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    from market_data import bench_core, bench_shm

    p = bench_sub.add_parser("core", help="decode + sync + apply, vs orjson + SortedDict")
    bench_core.configure_parser(p)
    p.set_defaults(run=_cmd_bench)
    p = bench_sub.add_parser("shm", help="shared-memory ring vs Redis pub/sub latency")
    bench_shm.configure_parser(p)
    p.set_defaults(run=_cmd_bench)
    from market_data.io import bench_redis

    p = bench_sub.add_parser("redis", help="Redis publisher vs one await per publish")
    bench_redis.configure_parser(p)
    p.set_defaults(run=_cmd_bench)
    from market_data import bench_e2e

    p = bench_sub.add_parser("e2e", help="load generator -> service -> Redis -> subscriber")
    bench_e2e.configure_parser(p)
    p.set_defaults(run=_cmd_bench)

    from market_data import view

    p = sub.add_parser("watch", help="live terminal view of one symbol, read from Redis")
    view.configure_parser(p)
    p.set_defaults(run=view.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Runner = args.run
    try:
        return run(args)
    except MarketDataError as exc:
        print(f"market-data {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
