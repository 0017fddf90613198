"""The ``market-data`` command line: thin, it parses and delegates."""

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from market_data import __version__
from market_data.errors import MarketDataError

Runner = Callable[[argparse.Namespace], int]


def _replay(args: argparse.Namespace) -> int:
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


def _add_replay(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
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
    p.set_defaults(run=_replay)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-data",
        description="Binance USD-M futures market data: order books, trades and 24h stats.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_replay(sub)
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


if __name__ == "__main__":
    sys.exit(main())
