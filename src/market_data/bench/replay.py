"""``market-data bench replay``: whole-process replay against cryptofeed's Binance futures book.

Both sides read the same capture files (cryptofeed's own text format: frames in
one file, the REST snapshots in an ``.http.`` file) in a process of their own,
from start to exit: ``market-data replay`` (decode, sync, apply, summary) and a
driver that feeds every frame to cryptofeed 2.4.1's ``BinanceFutures.message_handler``
(stdlib ``json`` with ``Decimal``, its update-id checks, its order book), with
its snapshot request answered from the same file. Wall and CPU time come from the
child's resource usage, so start-up (imports) counts on both sides.

cryptofeed is not a dependency of this project: it runs from a virtualenv of its
own (``--cryptofeed-python``, or one made once under ``~/.cache`` with pip).
"""

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from market_data.bench.core import synthetic

CRYPTOFEED = "cryptofeed==2.4.1"
DEFAULT_VENV = Path.home() / ".cache" / "market-data" / "bench" / "cryptofeed-2.4.1"

# Run by cryptofeed's interpreter: argv = frames file, snapshot file, symbols (comma list).
_CRYPTOFEED_DRIVER = r"""
import asyncio, json, sys
from urllib.parse import parse_qs, urlsplit
from cryptofeed.defines import L2_BOOK
from cryptofeed.exchanges import BinanceFutures
from cryptofeed.symbols import Symbols

frames_path, snapshots_path, names = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
# exchangeInfo, as cryptofeed reads it (no network): one perpetual per symbol.
info = {"symbols": [
    {"symbol": n, "baseAsset": n[:-4], "quoteAsset": "USDT", "contractType": "PERPETUAL",
     "status": "TRADING", "filters": [{"tickSize": "0.01"}]} for n in names]}
Symbols.set(BinanceFutures.id, *BinanceFutures._parse_symbol_data(info))
snapshots = {}
with open(snapshots_path, "rb") as f:
    for line in f:
        head, _, body = line.rstrip(b"\n").partition(b": ")
        url = head.rpartition(b" -> ")[0].decode()
        snapshots[parse_qs(urlsplit(url).query)["symbol"][0].upper()] = body.decode()
books = [0]

async def on_book(book, receipt_timestamp):
    books[0] += 1

async def main():
    feed = BinanceFutures(symbols=[f"{n[:-4]}-USDT-PERP" for n in names],
                          channels=[L2_BOOK], callbacks={L2_BOOK: on_book})

    async def read(address, *args, **kwargs):
        return snapshots[parse_qs(urlsplit(address).query)["symbol"][0].upper()]

    feed.http_conn.read = read
    handler = feed.message_handler
    with open(frames_path, "rb") as f:
        next(f)  # the connection line
        for line in f:
            ts, _, body = line.partition(b": ")
            await handler(body.decode(), None, float(ts))
    print(books[0])

asyncio.run(main())
"""


@dataclass
class Run:
    """One child process: wall seconds, CPU seconds (user + system)."""

    wall_s: float
    cpu_s: float
    output: str


def write_capture(directory: Path, symbols: int, frames: int) -> tuple[Path, Path, list[str]]:
    """Synthetic frames (``bench core``'s) as a cryptofeed text capture plus its snapshots."""
    work = synthetic(symbols, max(1, frames // symbols))
    names = sorted(work.snapshots)
    streams = "/".join(f"{name.lower()}@depth@100ms" for name in names)
    frames_path = directory / "depth.txt"
    snapshots_path = directory / "depth.http.txt"
    with snapshots_path.open("wb") as out:
        for name in names:
            url = f"https://fapi.binance.com/fapi/v1/depth?symbol={name}&limit=1000"
            out.write(f"{url} -> 1699999999.000000: ".encode() + work.snapshots[name] + b"\n")
    with frames_path.open("wb") as out:
        out.write(f"wss://fstream.binance.com/stream?streams={streams} <-> 1700000000.0\n".encode())
        for index, frame in enumerate(work.frames):
            out.write(b"%.6f: %s\n" % (1_700_000_000.0 + index / 1e4, frame))
    return frames_path, snapshots_path, names


def timed(command: list[str]) -> Run:
    """Run ``command`` to its end; its own wall and CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, done.stdout)


def applied(run: Run, side: str, symbols: int) -> int:
    """Depth events the side applied, from its output (both must apply every frame)."""
    if side == "ours":
        return sum(int(n) for n in re.findall(r" applied=(\d+)", run.output))
    return int(run.output.split()[-1]) - symbols  # book callbacks, less one per snapshot


def project_command(frames: Path, snapshots: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "market_data.cli",
        "replay",
        str(frames),
        "--snapshot",
        str(snapshots),
    ]


def cryptofeed_command(python: str, frames: Path, snapshots: Path, names: list[str]) -> list[str]:
    return [python, "-c", _CRYPTOFEED_DRIVER, str(frames), str(snapshots), ",".join(names)]


def cryptofeed_python(given: str | None) -> str:
    """The interpreter with cryptofeed 2.4.1: ``given``, or a virtualenv made once with pip."""
    if given:
        return given
    python = DEFAULT_VENV / "bin" / "python"
    if not python.exists():
        print(f"making a virtualenv with {CRYPTOFEED} in {DEFAULT_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DEFAULT_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", CRYPTOFEED], check=True)
    return str(python)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=200_000, help="frames in all (200000)")
    parser.add_argument("--symbols", type=int, default=10, help="symbols (10)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, best kept (3)")
    parser.add_argument(
        "--cryptofeed-python",
        metavar="PATH",
        help=f"a Python with {CRYPTOFEED} (default: a virtualenv under ~/.cache, made once)",
    )


def run(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.symbols < 1 or args.repeat < 1:
        print("bench replay: --frames, --symbols and --repeat must be >= 1", file=sys.stderr)
        return 2
    python = cryptofeed_python(args.cryptofeed_python)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as folder:
        frames, snapshots, names = write_capture(Path(folder), args.symbols, args.frames)
        count = args.symbols * max(1, args.frames // args.symbols)
        size_mb = os.path.getsize(frames) / 1e6
        print(
            f"{count} frames over {args.symbols} symbols ({size_mb:.0f} MB), best of {args.repeat}"
        )
        ours: list[Run] = []
        theirs: list[Run] = []
        for _ in range(args.repeat):  # interleaved: both sides see the same machine
            ours.append(timed(project_command(frames, snapshots)))
            theirs.append(timed(cryptofeed_command(python, frames, snapshots, names)))
    for side, runs in (("ours", ours), ("cryptofeed", theirs)):
        for one in runs:
            if (got := applied(one, side, args.symbols)) != count:
                raise RuntimeError(f"{side}: applied {got} of {count} frames: not comparable")
    best_ours = min(ours, key=lambda r: r.cpu_s)
    best_theirs = min(theirs, key=lambda r: r.cpu_s)
    for name, best in (("market-data replay", best_ours), ("cryptofeed 2.4.1", best_theirs)):
        print(
            f"  {name:<20} wall {best.wall_s:6.2f} s  cpu {best.cpu_s:6.2f} s  "
            f"{count / best.cpu_s:>9,.0f} frames/s of CPU"
        )
    print(
        f"  every frame applied on both sides; CPU ratio (cryptofeed / ours): "
        f"{best_theirs.cpu_s / best_ours.cpu_s:.2f}x"
    )
    return 0
