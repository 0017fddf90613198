"""``market-data sim``: run the simulated exchange until SIGINT/SIGTERM.

Default address 127.0.0.1:9443 (Binance's own WebSocket port, easy to recognise);
``--port 0`` picks a free one. The URLs to point a client at are printed on start.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from market_data.arg_types import (
    non_negative_float,
    port,
    positive_float,
    positive_int,
    symbol_list,
)
from market_data.sim.capture_source import CaptureError
from market_data.sim.exchange import PeriodicFaults, SimConfig, SimExchange, SimExchangeError
from market_data.sim.market import MarketConfig

DEFAULT_PORT = 9443
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=DEFAULT_PORT, help="port (default 9443)")
    parser.add_argument(
        "--symbols",
        type=symbol_list,
        help="comma-separated symbols of the random market (default BTCUSDT,ETHUSDT)",
    )
    parser.add_argument(
        "--rate", type=positive_float, default=10.0, help="depth diffs/s per symbol"
    )
    parser.add_argument(
        "--trade-rate", type=non_negative_float, default=2.0, help="aggTrades/s per symbol"
    )
    parser.add_argument("--levels", type=positive_int, default=1000, help="book levels per side")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the market")
    parser.add_argument(
        "--ping-interval", type=positive_float, default=180.0, help="seconds between server pings"
    )
    parser.add_argument(
        "--weight-limit", type=positive_int, default=2400, help="REST request weight per minute"
    )
    parser.add_argument("--geo-blocked", action="store_true", help="answer 451 to every REST call")
    parser.add_argument("--replay", type=Path, help="replay this capture instead of a market")
    parser.add_argument("--replay-http", type=Path, help="REST snapshots of the capture")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="replay pace factor (<= 0: as fast as possible)"
    )
    faults = parser.add_argument_group("periodic faults (seconds between injections)")
    faults.add_argument("--drop-every", type=float, help="drop one diff per symbol (a gap)")
    faults.add_argument("--disconnect-every", type=float, help="cut every connection")
    faults.add_argument("--malformed-every", type=float, help="send a malformed depth frame")
    faults.add_argument("--pause-every", type=float, help="go silent for --pause-seconds")
    faults.add_argument("--pause-seconds", type=float, default=2.0)
    faults.add_argument("--burst-every", type=float, help="emit --burst-size diffs at once")
    faults.add_argument("--burst-size", type=int, default=100)


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The ``SimConfig`` described by parsed ``sim`` arguments."""
    if args.replay_http and not args.replay:
        raise SimExchangeError(
            "--replay-http gives the snapshots of a --replay capture: add --replay"
        )
    if args.symbols and args.replay:
        raise SimExchangeError("--symbols makes a random market; a --replay serves its own")
    return SimConfig(
        symbols=args.symbols or list(DEFAULT_SYMBOLS),
        host=args.host,
        port=args.port,
        diff_rate_hz=args.rate,
        trade_rate_hz=args.trade_rate,
        seed=args.seed,
        market=MarketConfig(levels_per_side=args.levels),
        ping_interval_s=args.ping_interval,
        rest_weight_limit=args.weight_limit,
        geo_blocked=args.geo_blocked,
        replay=args.replay,
        replay_http=args.replay_http,
        speed=args.speed,
        replay_waits_for_subscriber=True,
        periodic=PeriodicFaults(
            drop_every_s=args.drop_every,
            disconnect_every_s=args.disconnect_every,
            malformed_every_s=args.malformed_every,
            pause_every_s=args.pause_every,
            pause_seconds=args.pause_seconds,
            burst_every_s=args.burst_every,
            burst_size=args.burst_size,
        ),
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    try:
        config = config_from_args(args)
        return asyncio.run(_serve(config))
    except (SimExchangeError, CaptureError) as exc:
        print(f"market-data sim: {exc}", file=sys.stderr)
        return 1


async def _serve(config: SimConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with SimExchange(config) as sim:
        source = f"replaying {config.replay}" if config.replay else ", ".join(config.symbols)
        print(f"simulated Binance USD-M futures exchange ({source})")
        print(f"  WebSocket: {sim.ws_base_url}/stream?streams=ethusdt@depth@100ms")
        print(f"             {sim.ws_base_url}/public/stream, {sim.ws_base_url}/market/stream")
        print(f"  REST:      {sim.rest_base_url}/fapi/v1/depth?symbol=ETHUSDT&limit=1000")
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    return 0
