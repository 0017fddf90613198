"""Is a published book the exchange's book? The check the tests and benchmarks share."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from market_data.sim.exchange import SimExchange


def book_matches_truth(sim: SimExchange, payload: dict[str, Any], depth: int = 20) -> str | None:
    """None when the published top ``depth`` levels equal the simulator's book at that id.

    ``payload`` is an ``orderbook:`` message as JSON decodes it; otherwise the
    first difference, in words.
    """
    bids, asks = sim.market.true_book(payload["symbol"], payload["last_update_id"])
    for side, published, truth in (
        ("bids", payload["bids"], bids),
        ("asks", payload["asks"], asks),
    ):
        if len(published) != min(depth, len(truth)):
            return f"{payload['symbol']} {side}: {len(published)} levels, expected {depth}"
        got = [(Decimal(p), Decimal(repr(q))) for p, q in published.items()]
        want = [(Decimal(p), Decimal(q)) for p, q in truth[:depth]]
        if got != want:
            where = f"{payload['symbol']} {side} at u={payload['last_update_id']}"
            return f"{where}: {got[:3]} != {want[:3]}"
    return None
