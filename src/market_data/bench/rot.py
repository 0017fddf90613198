"""``market-data bench rot``: depth-cache rot, side by side, in an accelerated run.

One simulated symbol whose exchange keeps a deep book (``--levels``) but sends
diffs only inside its window (``--window``), with large moves and cancels
beyond the window (BINANCE_FUTURES.md §5). The same frames feed three books:

- naive: keeps every level it ever learnt (no bound, no re-base), as peers do;
- bounded: keeps the window (the service's ``max_levels_per_side``), no re-base;
- service: bounded, and re-based on a fresh snapshot every ``--refresh`` diffs,
  with the audit the service runs.

Every ``--check-every`` diffs each book's top ``--depth`` levels per side are
compared with the exchange's true book. The default run is one hour of a
10 diffs/s stream (36,000 diffs) in a few seconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field

import msgspec

from market_data.binance.decode import decode_depth, decode_snapshot
from market_data.core.book import BookSide
from market_data.core.sync import BookAudit, DepthSync
from market_data.sim.market import MarketConfig, SimMarket

_encode = msgspec.json.Encoder().encode
SYMBOL = "BTCUSDT"


@dataclass
class Tally:
    """How one book compared with the true book over the run."""

    name: str
    sync: DepthSync
    refresh_every: int = 0
    checks_wrong: int = 0  # checks at which the top differed
    levels_wrong: int = 0  # differing top levels, summed over the checks
    audits: list[BookAudit] = field(default_factory=list)


def _differing(side: BookSide, truth: dict[float, float], depth: int, is_bid: bool) -> int:
    ours = dict(side.top(depth))
    best = sorted(truth, reverse=is_bid)[:depth]
    theirs = {p: truth[p] for p in best}
    return sum(1 for p in set(ours) | set(theirs) if ours.get(p) != theirs.get(p))


def run_rot(
    diffs: int = 36_000,
    *,
    levels: int = 1500,
    window: int = 1000,
    depth: int = 20,
    refresh_every: int = 3000,
    check_every: int = 10,
    seed: int = 7,
) -> list[Tally]:
    """The accelerated run; returns one tally per book."""
    config = MarketConfig(
        levels_per_side=levels,
        window_levels=window,
        sweep_probability=0.02,
        sweep_ticks=60,
        deep_changes=3,
        history_diffs=200,
    )
    market = SimMarket([SYMBOL], seed=seed, config=config, now_ms=0)
    tallies = [
        Tally("naive (no bound, no re-base)", DepthSync(SYMBOL, max_levels=10**9)),
        Tally(f"bounded to the {window}-level window", DepthSync(SYMBOL, max_levels=window)),
        Tally(
            f"service (bounded, re-based every {refresh_every} diffs)",
            DepthSync(SYMBOL, max_levels=window, audit_depth=depth),
            refresh_every,
        ),
    ]

    def snapshot() -> object:
        return decode_snapshot(_encode(market.snapshot(SYMBOL, window, 0)))

    for step in range(1, diffs + 1):
        payload = market.step(SYMBOL, step * 100)
        event = decode_depth(b'{"stream":"btcusdt@depth@100ms","data":' + _encode(payload) + b"}")
        for tally in tallies:
            sync = tally.sync
            sync.on_depth(event)
            if tally.refresh_every and step % tally.refresh_every == 0:
                sync.request_refresh()
            if sync.snapshot_pending:
                sync.on_snapshot(snapshot())  # type: ignore[arg-type]
            tally.audits.extend(o for o in sync.drain() if isinstance(o, BookAudit))
        if step % check_every:
            continue
        bids, asks = market.true_book(SYMBOL, market.current_update_id(SYMBOL))
        true_bids = {float(p): float(q) for p, q in bids}
        true_asks = {float(p): float(q) for p, q in asks}
        for tally in tallies:
            book = tally.sync.book
            wrong = _differing(book.bids, true_bids, depth, True)
            wrong += _differing(book.asks, true_asks, depth, False)
            tally.checks_wrong += wrong > 0
            tally.levels_wrong += wrong
    return tallies


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--diffs", type=int, default=36_000, help="diffs (36000: 1 h at 10/s)")
    parser.add_argument("--levels", type=int, default=1500, help="exchange book levels per side")
    parser.add_argument("--window", type=int, default=1000, help="levels the exchange sends")
    parser.add_argument("--depth", type=int, default=20, help="top levels compared")
    parser.add_argument("--refresh", type=int, default=3000, help="diffs between re-bases")
    parser.add_argument("--check-every", type=int, default=10, help="diffs between checks")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    tallies = run_rot(
        args.diffs,
        levels=args.levels,
        window=args.window,
        depth=args.depth,
        refresh_every=args.refresh,
        check_every=args.check_every,
    )
    checks = args.diffs // args.check_every
    print(
        f"{args.diffs} diffs ({args.diffs / 36_000:.1f} h at 10/s), exchange book {args.levels} "
        f"levels, window {args.window}, top {args.depth} compared {checks} times "
        f"({time.perf_counter() - started:.1f} s)"
    )
    print(f"{'book':<48} {'checks wrong':>13} {'levels wrong':>13}")
    for tally in tallies:
        print(f"{tally.name:<48} {tally.checks_wrong:>13} {tally.levels_wrong:>13}")
    service = tallies[-1]
    top = sum(a.top_differences for a in service.audits)
    window = sum(a.window_differences for a in service.audits)
    print(
        f"service audits: {len(service.audits)}, differing levels found: {top} in the top "
        f"{args.depth}, {window} in the whole book"
    )
    return 0
