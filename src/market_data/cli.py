"""The ``market-data`` command line: thin, it parses, sets up logging, delegates."""

import argparse
import asyncio
import importlib
import os
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from market_data import __version__, arg_types
from market_data.errors import ConfigError, MarketDataError
from market_data.ops.logs import LEVELS

if TYPE_CHECKING:
    from market_data.ops.config import Config

Runner = Callable[[argparse.Namespace], int]
T = TypeVar("T")


def _load(args: argparse.Namespace) -> "Config":
    from market_data.ops.config import load_config

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
    from market_data.ops.logs import setup_logging
    from market_data.service.app import serve

    config = _load(args)
    json_lines = True if args.log_json else config.log_json or None
    setup_logging(json_lines=json_lines, level=args.log_level)
    if config.recording_dir or config.parquet_dir:
        from market_data.history.wiring import check_history_folders

        check_history_folders(config)  # before the ring, the workers or anything else
    if args.workers > 1:
        from market_data.service.supervisor import run_workers

        return run_workers(config, args.workers, log_level=args.log_level)
    return _run_async(lambda: serve(config))


def _cmd_check_config(args: argparse.Namespace) -> int:
    if args.config_file:
        if args.config and args.config != args.config_file:
            raise ConfigError(f"two configs given: {args.config} and {args.config_file}")
        args.config = args.config_file
    config = _load(args)
    import yaml

    print(f"# configuration OK ({config.source})")
    print(yaml.safe_dump(config.describe(), sort_keys=False), end="")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from market_data.demo import run_demo
    from market_data.ops.logs import setup_logging
    from market_data.outputs.redis_url import parse_redis_url

    config = _load(args)
    if args.redis_url:
        parse_redis_url(args.redis_url)  # a URL without its scheme is not "no Redis answers"
    setup_logging(level=args.log_level or os.environ.get("LOG_LEVEL") or "WARNING")

    async def main() -> int:
        return await run_demo(
            config,
            symbol=args.symbol,
            rate_hz=args.rate,
            duration_s=args.duration,
            redis_url=args.redis_url,
        )

    return _run_async(main)


def _cmd_health(args: argparse.Namespace) -> int:
    from market_data.ops import health_check

    return health_check.run(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from market_data.capture import CaptureError, CaptureItem, read_capture, read_snapshots
    from market_data.replay import Replayer, jsonl_trace, with_progress

    # A recording streams through (a day of them does not fit in memory); a separate
    # snapshot file is merged in by receive time, which needs the capture in a list.
    items: Iterable[CaptureItem] = read_capture(args.file, symbol=args.symbol, events=True)
    if args.snapshot:
        items = sorted([*items, *read_snapshots(args.snapshot)], key=lambda i: i.recv_ns)
    if sys.stderr.isatty():  # a status line, rewritten in place; in logs, one a minute
        items = with_progress(items, _status_line, every_s=0.5)
    else:
        items = with_progress(items, lambda line: print(line, file=sys.stderr), every_s=60.0)
    trace_file = args.book_trace.open("wb") if args.book_trace else None  # noqa: SIM115
    try:
        trace = jsonl_trace(trace_file) if trace_file else None
        replayer = Replayer(
            symbol=args.symbol, depth=args.depth, trace=trace, max_levels=args.max_levels
        )
        replayer.feed_all(items)
    finally:
        if trace_file:
            trace_file.close()
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr, flush=True)  # clear the status line
    summary = replayer.summary
    if not summary.frames:
        raise CaptureError(f"{args.file}: no frame to replay")
    if args.symbol and not (
        summary.depth_events + summary.partial_events + summary.trades + summary.book_tickers
    ):
        raise CaptureError(
            f"{args.file}: no frame of {args.symbol} to replay (check --symbol: "
            f"{summary.frames:,} frames of other symbols)"
        )
    print(replayer.report())
    return 0


def _status_line(line: str) -> None:
    print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)


def _bench_module(what: str) -> ModuleType:
    """Benchmarks need the ``bench`` extra; without it, say so instead of a traceback."""
    try:
        return importlib.import_module(f"market_data.bench.{what}")
    except ImportError as exc:
        raise MarketDataError(
            f"the {what} benchmark needs {exc.name!r}: pip install 'market-data[bench]'"
        ) from exc


def _cmd_bench(args: argparse.Namespace) -> int:
    result: int = _bench_module(args.what).run(args)
    return result


# ------------------------------------------------------------------- parsers

#: Subcommands whose options live in their own module: ``(help, module)``. The
#: module is imported only when its command is the one being run (or its
#: ``--help`` asked for), so a runtime command never imports what another needs.
_DELEGATED: dict[str, tuple[str, str]] = {
    "health": (
        "check a running service: health, readiness, connections, Redis, book freshness",
        "market_data.ops.health_check",
    ),
    "sim": ("run the simulated Binance USD-M futures exchange", "market_data.sim.cli"),
    "shm-tail": ("watch the shared-memory ring from the terminal", "market_data.client.shm_tail"),
    "watch": ("live terminal view of one symbol, read from Redis", "market_data.client.watch"),
    "record": (
        "record the exchange without publishing (recording_dir)",
        "market_data.history.record",
    ),
    "history": ("summary of the stored history: dates, rows, bytes", "market_data.history.summary"),
}

_BENCHES: dict[str, str] = {
    "core": "decode + sync + apply, vs orjson + SortedDict",
    "shm": "shared-memory ring vs Redis pub/sub latency",
    "redis": "Redis publisher vs one await per publish",
    "e2e": "load generator -> service -> Redis -> subscriber",
    "growth": "CPU per frame and RSS as symbols, book depth and subscribers grow",
    "rot": "depth-cache rot: naive vs bounded vs re-based books, accelerated",
    "lines": "one feed line vs two (A/B): latency under jitter, resets under kills",
    "cluster": "fan-out to N subscribers: one Valkey server vs a 3-shard cluster",
    "failover": "kill -9 of the publisher: active/standby takeover vs a plain restart",
    "soak": "1,000 forced disconnects of a feed line: RSS, fds, tasks vs an undisturbed run",
    "ui": "CPU and publication p99 at 10k msg/s with 0, 1 and 20 open web pages",
    "history": "cost of recording + Parquet at 10k msg/s and 100 symbols x 20 msg/s",
    "replay": "whole-process replay of one capture vs cryptofeed 2.4.1's futures book",
}


def _add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="PATH",
        help="YAML config (default: config.yaml, else config.example.yaml, else built-in "
        "defaults; MARKET_DATA_<KEY> environment variables override)",
    )


def _add_log_level_option(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--log-level",
        choices=LEVELS,
        type=str.upper,
        help=f"log level (default: LOG_LEVEL, else {default})",
    )


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the subcommand named in ``argv`` has its module imported."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    chosen = words[0] if words else None
    parser = argparse.ArgumentParser(
        prog="market-data",
        description="Binance USD-M futures market data: order books, trades and 24h stats, "
        "published to Redis, shared memory and HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the service (production)")
    _add_config_option(p)
    _add_log_level_option(p, "INFO")
    p.add_argument("--log-json", action="store_true", help="JSON log lines (or LOG_JSON=1)")
    p.add_argument(
        "--workers",
        type=arg_types.positive_int,
        default=1,
        help="worker processes, the symbols sharded across them (1)",
    )
    p.set_defaults(run=_cmd_run)

    p = sub.add_parser("check-config", help="validate the configuration and print it as YAML")
    _add_config_option(p)
    p.add_argument("config_file", nargs="?", metavar="PATH", help="the same as --config PATH")
    p.set_defaults(run=_cmd_check_config)

    p = sub.add_parser(
        "demo",
        help="offline demo: simulated exchange -> service -> Redis, with a live view",
    )
    _add_config_option(p)
    p.add_argument(
        "--symbol", type=arg_types.symbol, help="symbol to show (default: the first configured)"
    )
    p.add_argument(
        "--rate",
        type=arg_types.positive_float,
        default=20.0,
        help="simulated diffs/s per symbol (20)",
    )
    p.add_argument("--duration", type=arg_types.positive_float, help="stop after this many seconds")
    p.add_argument(
        "--redis-url",
        help="publish to this Redis instead of a private embedded redis-server",
    )
    _add_log_level_option(p, "WARNING")
    p.set_defaults(run=_cmd_demo)

    for name, (help_text, module_name) in _DELEGATED.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.configure_parser(p)
            p.set_defaults(run=module.run)

    p = sub.add_parser(
        "replay",
        help="replay a recorded capture through the decoder and sync core",
        description="Replay a capture (cryptofeed text or hftbacktest gzip) and print a summary.",
    )
    p.add_argument("file", help="capture file, or a recording's folder (recording_dir)")
    p.add_argument("--snapshot", help="separate REST snapshot file (cryptofeed '.http.' format)")
    p.add_argument(
        "--symbol",
        type=arg_types.symbol,
        help="only this symbol (also names an inline snapshot's owner)",
    )
    p.add_argument(
        "--book-trace",
        metavar="OUT.jsonl",
        type=arg_types.output_file,
        help="write the top levels after each event",
    )
    p.add_argument(
        "--depth", type=arg_types.positive_int, default=20, help="levels per side in the trace (20)"
    )
    p.add_argument(
        "--max-levels",
        type=arg_types.positive_int,
        default=5000,
        help="levels kept per side (5000; a recording replays exactly with the service's "
        "max_levels_per_side)",
    )
    p.set_defaults(run=_cmd_replay)

    bench = sub.add_parser(
        "bench",
        help="benchmarks (print figures with a baseline; pip install 'market-data[bench]')",
    )
    bench_sub = bench.add_subparsers(dest="what", required=True, metavar="WHAT")
    bench_chosen = words[1] if chosen == "bench" and len(words) > 1 else None
    for what, help_text in _BENCHES.items():
        p = bench_sub.add_parser(what, help=help_text)
        p.set_defaults(run=_cmd_bench)
        if what == bench_chosen:
            _bench_module(what).configure_parser(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser(argv)
    except MarketDataError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        return 2
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
