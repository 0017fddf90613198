"""``market-data record``: record the exchange without publishing anywhere.

The same engine as ``market-data run`` (sync, snapshots, reconnects) with the
history pipeline as its only output: no Redis, no shared memory, no HTTP.
``--dir`` sets ``recording_dir``; ``parquet_dir`` from the config is written too.
"""

import argparse
import asyncio
import logging
import signal

from market_data.arg_types import positive_float
from market_data.errors import ConfigError
from market_data.history.wiring import attach, build_history, check_history_folders
from market_data.ops.logs import LEVELS

log = logging.getLogger(__name__)


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML config (as for run)")
    p.add_argument("--dir", metavar="DIR", help="recording folder (default: recording_dir)")
    p.add_argument("--parquet-dir", metavar="DIR", help="also write the Parquet store here")
    p.add_argument(
        "--duration",
        type=positive_float,
        metavar="S",
        help="stop after this many seconds (default: never)",
    )
    p.add_argument("--log-level", type=str.upper, choices=LEVELS)


def run(args: argparse.Namespace) -> int:
    from market_data.ops.config import load_config
    from market_data.ops.logs import setup_logging

    config = load_config(args.config)
    changes = {"ha_group": ""}
    if args.dir:
        changes["recording_dir"] = args.dir
    if args.parquet_dir:
        changes["parquet_dir"] = args.parquet_dir
    config = config.with_overrides(**changes)
    if not config.recording_dir:
        raise ConfigError("recording_dir: empty: give --dir DIR or set recording_dir")
    check_history_folders(config)
    setup_logging(json_lines=config.log_json or None, level=args.log_level)
    return asyncio.run(record(config, args.duration))


async def record(config: "object", duration_s: float | None) -> int:
    from market_data.ops.config import Config
    from market_data.service.engine import MarketDataService

    assert isinstance(config, Config)
    pipeline = build_history(config)
    assert pipeline is not None
    service = MarketDataService(config, [pipeline])
    attach(service, pipeline)
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, shutdown.set)
    if duration_s:
        loop.call_later(duration_s, shutdown.set)
    log.info("recording %d symbols to %s", len(config.symbols), config.recording_dir)
    try:
        await service.run(shutdown)
    finally:
        await pipeline.aclose()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0
