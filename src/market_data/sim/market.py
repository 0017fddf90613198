"""Pure model of a Binance USD-M futures market: books, depth diffs, trades.

No I/O and no clock: every call that stamps an event takes ``now_ms``. The
exchange server (``sim/exchange.py``) drives it and turns its dicts into frames.

Prices and quantities are integers internally (ticks and lots) and become
fixed-decimal strings on the way out, exactly as the exchange writes them
(``"2681.10"``, ``"0.170"``, ``"0.000"`` for a delete).

Update ids follow the futures rules: one counter shared by all symbols, so a
symbol's ``U``/``u`` are not contiguous; ``pu`` is that symbol's previous ``u``.

Depth window: like the exchange, the model keeps a deep book but sends diffs
only for levels inside the top ``window_levels`` of a side (about 1000 on the
real exchange, BINANCE_FUTURES.md §5, from unicorn-binance-local-depth-cache's
forensic study and cryptofeed #604): a change further out, deletes included,
is applied to the true book and never sent, so a client book that keeps such
levels rots here exactly as it does against the exchange.

Ground truth: ``true_book(symbol, update_id)`` rebuilds the book after any
update id still covered by the history. The history keeps a full checkpoint
every ``checkpoint_every`` diffs and the diffs since the oldest kept checkpoint;
at least ``history_diffs`` diffs per symbol stay reachable.
"""

from __future__ import annotations

import bisect
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

Level = tuple[str, str]
BookSides = tuple[list[Level], list[Level]]
Changes = dict[int, int]  # price ticks -> quantity lots (0 = delete)


@dataclass(frozen=True)
class SymbolSpec:
    """Static facts of one contract: price/quantity decimals and where it trades."""

    symbol: str
    price_decimals: int = 2
    qty_decimals: int = 3
    start_price: float = 2681.10
    typical_qty: float = 5.0  # mean quantity at a level, in contracts


DEFAULT_SPECS: dict[str, SymbolSpec] = {
    "BTCUSDT": SymbolSpec("BTCUSDT", 1, 3, 64000.0, 2.0),
    "ETHUSDT": SymbolSpec("ETHUSDT", 2, 3, 2681.10, 5.0),
    "SOLUSDT": SymbolSpec("SOLUSDT", 3, 0, 150.0, 60.0),
    "XRPUSDT": SymbolSpec("XRPUSDT", 4, 1, 0.55, 5000.0),
    "DOGEUSDT": SymbolSpec("DOGEUSDT", 6, 0, 0.12, 20000.0),
}


def spec_for(symbol: str) -> SymbolSpec:
    """Known contract facts, or a plausible default for any other symbol."""
    upper = symbol.upper()
    known = DEFAULT_SPECS.get(upper)
    if known is not None:
        return known
    return SymbolSpec(upper, 4, 1, 10.0 + (sum(map(ord, upper)) % 90), 500.0)


@dataclass(frozen=True)
class MarketConfig:
    """Shape of the simulated books and of each diff."""

    levels_per_side: int = 1000
    window_levels: int = 1000  # diffs are sent only for levels ranked inside this
    sweep_probability: float = 0.0  # a large move in this diff (bench rot)
    sweep_ticks: int = 0  # how far a large move goes
    deep_changes: int = 0  # cancels per diff among the levels beyond the window (never sent)
    min_changes: int = 5
    max_changes: int = 30
    absent_delete_probability: float = 0.05  # a delete of a level not in the book
    drift_probability: float = 0.3  # the best price moves in this diff
    history_diffs: int = 2000
    checkpoint_every: int = 100


def format_fixed(value: int, decimals: int) -> str:
    """Integer units -> the exchange's fixed-decimal string (``1700, 3`` -> ``"1.700"``)."""
    if decimals == 0:
        return str(value)
    scale = 10**decimals
    return f"{value // scale}.{value % scale:0{decimals}d}"


def parse_fixed(text: str, decimals: int) -> int:
    """The exchange's decimal string -> integer units (inverse of ``format_fixed``)."""
    whole, _, frac = text.partition(".")
    frac = (frac + "0" * decimals)[:decimals]
    return int(whole + frac)


@dataclass
class _Side:
    """One side of a book: level dict plus its sorted price list."""

    levels: dict[int, int] = field(default_factory=dict)
    prices: list[int] = field(default_factory=list)  # ascending

    def set(self, price: int, qty: int) -> None:
        if qty == 0:
            if self.levels.pop(price, None) is not None:
                del self.prices[bisect.bisect_left(self.prices, price)]
            return
        if price not in self.levels:
            bisect.insort(self.prices, price)
        self.levels[price] = qty


@dataclass
class _History:
    """Checkpoints and diffs for ``true_book``: (u, bids copy, asks copy) and (u, b, a)."""

    checkpoints: deque[tuple[int, dict[int, int], dict[int, int]]] = field(default_factory=deque)
    diffs: deque[tuple[int, Changes, Changes]] = field(default_factory=deque)


@dataclass
class _SymbolState:
    spec: SymbolSpec
    rng: random.Random
    bids: _Side = field(default_factory=_Side)
    asks: _Side = field(default_factory=_Side)
    last_first_u: int = 0  # U, u and pu of the last diff
    last_u: int = 0
    last_pu: int = 0
    last_e_ms: int = 0
    last_t_ms: int = 0
    diff_count: int = 0
    agg_id: int = 0
    trade_id: int = 0
    pending_bids: Changes = field(default_factory=dict)  # consumed by trades, next diff
    pending_asks: Changes = field(default_factory=dict)
    history: _History = field(default_factory=_History)
    price_cache: dict[int, str] = field(default_factory=dict)

    def price_text(self, price: int) -> str:
        """Formatted price, cached: the same few thousand prices recur all the time."""
        text = self.price_cache.get(price)
        if text is None:
            if len(self.price_cache) > 100_000:
                self.price_cache.clear()
            text = self.price_cache[price] = format_fixed(price, self.spec.price_decimals)
        return text


class SimMarket:
    """Random-walk books for several symbols, emitting Binance-shaped events."""

    def __init__(
        self,
        symbols: list[str],
        seed: int = 0,
        config: MarketConfig | None = None,
        specs: dict[str, SymbolSpec] | None = None,
        start_update_id: int = 1_000_000,
        now_ms: int = 0,
    ) -> None:
        self.config = config or MarketConfig()
        self._update_id = start_update_id
        self._symbols: dict[str, _SymbolState] = {}
        for name in symbols:
            spec = (specs or {}).get(name.upper()) or spec_for(name)
            state = _SymbolState(spec, random.Random(f"{seed}:{spec.symbol}"))
            self._symbols[spec.symbol] = state
            self._seed_book(state)
            self._bump_update_id(state)
            state.last_pu = state.last_u
            state.last_e_ms = state.last_t_ms = now_ms
            self._checkpoint(state)

    # ----------------------------------------------------------------- queries

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def spec(self, symbol: str) -> SymbolSpec:
        return self._state(symbol).spec

    def has_symbol(self, symbol: str) -> bool:
        return symbol.upper() in self._symbols

    def current_update_id(self, symbol: str) -> int:
        """The ``u`` of the last diff produced for ``symbol``."""
        return self._state(symbol).last_u

    def oldest_update_id(self, symbol: str) -> int:
        """The oldest update id ``true_book`` can still rebuild."""
        return self._state(symbol).history.checkpoints[0][0]

    def true_book(self, symbol: str, update_id: int) -> BookSides:
        """Full book after every diff with ``u <= update_id`` (bids and asks best-first)."""
        state = self._state(symbol)
        checkpoints = state.history.checkpoints
        if update_id < checkpoints[0][0]:
            raise KeyError(f"update id {update_id} is older than the kept history of {symbol}")
        start = max(i for i, (u, _, _) in enumerate(checkpoints) if u <= update_id)
        base_u, base_bids, base_asks = checkpoints[start]
        bids, asks = dict(base_bids), dict(base_asks)
        for u, diff_bids, diff_asks in state.history.diffs:
            if u <= base_u:
                continue
            if u > update_id:
                break
            _apply(bids, diff_bids)
            _apply(asks, diff_asks)
        return self._format_sides(state, bids, asks, None)

    def snapshot(self, symbol: str, limit: int, now_ms: int) -> dict[str, Any]:
        """REST ``/fapi/v1/depth`` body: top ``limit`` levels at the last emitted diff."""
        state = self._state(symbol)
        bids, asks = self._format_sides(state, state.bids.levels, state.asks.levels, limit)
        return {
            "lastUpdateId": state.last_u,
            "E": now_ms,
            "T": max(now_ms - 2, state.last_t_ms),
            "bids": [list(level) for level in bids],
            "asks": [list(level) for level in asks],
        }

    def partial_depth(self, symbol: str, depth: int, now_ms: int) -> dict[str, Any]:
        """Partial depth message: the whole top ``depth``, with the last diff's ids."""
        state = self._state(symbol)
        bids, asks = self._format_sides(state, state.bids.levels, state.asks.levels, depth)
        return {
            "e": "depthUpdate",
            "E": now_ms,
            "T": state.last_t_ms,
            "s": state.spec.symbol,
            "U": state.last_first_u,
            "u": state.last_u,
            "pu": state.last_pu,
            "b": [list(level) for level in bids],
            "a": [list(level) for level in asks],
        }

    def book_ticker(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """``bookTicker`` payload for the current best bid and ask."""
        state = self._state(symbol)
        spec = state.spec
        bid = state.bids.prices[-1]
        ask = state.asks.prices[0]
        return {
            "e": "bookTicker",
            "u": state.last_u,
            "E": now_ms,
            "T": state.last_t_ms,
            "s": spec.symbol,
            "b": format_fixed(bid, spec.price_decimals),
            "B": format_fixed(state.bids.levels[bid], spec.qty_decimals),
            "a": format_fixed(ask, spec.price_decimals),
            "A": format_fixed(state.asks.levels[ask], spec.qty_decimals),
        }

    # ----------------------------------------------------------------- events

    def step(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """Advance one symbol's book and return its ``depthUpdate`` payload."""
        state = self._state(symbol)
        rng = state.rng
        cfg = self.config
        changes_b: Changes = {}
        changes_a: Changes = {}
        for price, qty in state.pending_bids.items():
            self._set(state.bids, changes_b, price, qty)
        for price, qty in state.pending_asks.items():
            self._set(state.asks, changes_a, price, qty)
        state.pending_bids.clear()
        state.pending_asks.clear()

        if rng.random() < cfg.drift_probability:
            self._drift(state, changes_b, changes_a, rng.choice((-1, 1)))
        if cfg.sweep_ticks and rng.random() < cfg.sweep_probability:
            self._sweep(state, changes_b, changes_a, rng.choice((-1, 1)) * cfg.sweep_ticks)
        for _ in range(cfg.deep_changes):
            self._deep_cancel(state, changes_b, changes_a)
        target = rng.randint(cfg.min_changes, cfg.max_changes)
        attempts = 0
        while len(changes_b) + len(changes_a) < target and attempts < target * 4:
            attempts += 1
            self._random_change(state, changes_b, changes_a)
        self._tighten_spread(state, changes_b, changes_a)
        self._keep_depth(state, changes_b, changes_a)
        if rng.random() < cfg.absent_delete_probability:
            self._delete_absent(state, changes_b, changes_a)

        pu = state.last_u
        first_u = self._bump_update_id(state, len(changes_b) + len(changes_a))
        state.last_e_ms = now_ms
        state.last_t_ms = max(now_ms - rng.randint(0, 5), state.last_t_ms)
        self._record(state, changes_b, changes_a)
        spec = state.spec
        window = cfg.window_levels
        return {
            "e": "depthUpdate",
            "E": now_ms,
            "T": state.last_t_ms,
            "s": spec.symbol,
            "U": first_u,
            "u": state.last_u,
            "pu": pu,
            "b": _format_changes(state, _in_window(state.bids, changes_b, True, window), True),
            "a": _format_changes(state, _in_window(state.asks, changes_a, False, window), False),
        }

    def trade(self, symbol: str, now_ms: int) -> dict[str, Any]:
        """An ``aggTrade`` at the best bid or ask; the liquidity it took leaves the next diff."""
        state = self._state(symbol)
        rng = state.rng
        spec = state.spec
        buyer_is_maker = rng.random() < 0.5  # aggressor sold: hits the best bid
        side, pending = (
            (state.bids, state.pending_bids) if buyer_is_maker else (state.asks, state.pending_asks)
        )
        ordered = reversed(side.prices) if buyer_is_maker else iter(side.prices)
        price = qty_left = 0
        for price in ordered:
            qty_left = pending.get(price, side.levels[price])
            if qty_left > 0:
                break
        qty = max(1, min(qty_left, int(qty_left * rng.uniform(0.05, 0.6))))
        pending[price] = qty_left - qty
        trades = rng.randint(1, 4)
        state.agg_id += 1
        first_trade = state.trade_id + 1
        state.trade_id += trades
        quantity = format_fixed(qty, spec.qty_decimals)
        return {
            "e": "aggTrade",
            "E": now_ms,
            "s": spec.symbol,
            "a": state.agg_id,
            "p": format_fixed(price, spec.price_decimals),
            "q": quantity,
            "nq": quantity,
            "f": first_trade,
            "l": state.trade_id,
            "T": max(now_ms - rng.randint(0, 3), state.last_t_ms),
            "m": buyer_is_maker,
        }

    # ----------------------------------------------------------------- internals

    def _state(self, symbol: str) -> _SymbolState:
        try:
            return self._symbols[symbol.upper()]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}") from None

    def _bump_update_id(self, state: _SymbolState, span: int = 1) -> int:
        """Allocate this diff's ids from the shared counter; returns its ``U``."""
        first = self._update_id + 1 + state.rng.randint(0, 3)
        self._update_id = first + state.rng.randint(0, max(0, span - 1))
        state.last_pu = state.last_u
        state.last_first_u = first
        state.last_u = self._update_id
        return first

    def _random_qty(self, state: _SymbolState) -> int:
        spec = state.spec
        lots = spec.typical_qty * state.rng.expovariate(1.0) * 10**spec.qty_decimals
        return max(1, int(lots))

    def _seed_book(self, state: _SymbolState) -> None:
        spec = state.spec
        mid = round(spec.start_price * 10**spec.price_decimals)
        best_bid, best_ask = mid - 1, mid + 1
        for side, start, direction in ((state.bids, best_bid, -1), (state.asks, best_ask, 1)):
            price = start
            for _ in range(self.config.levels_per_side):
                side.set(price, self._random_qty(state))
                price += direction * (1 + int(state.rng.expovariate(2.0)))

    def _set(self, side: _Side, changes: Changes, price: int, qty: int) -> None:
        side.set(price, qty)
        changes[price] = qty

    def _drift(self, state: _SymbolState, changes_b: Changes, changes_a: Changes, up: int) -> None:
        """Move the top: take out the best level on one side, improve the other."""
        if min(len(state.bids.prices), len(state.asks.prices)) < 3:
            return
        if up > 0:
            old_bid = state.bids.prices[-1]
            self._set(state.asks, changes_a, state.asks.prices[0], 0)
            if old_bid + 1 < state.asks.prices[0]:
                self._set(state.bids, changes_b, old_bid + 1, self._random_qty(state))
        else:
            old_ask = state.asks.prices[0]
            self._set(state.bids, changes_b, state.bids.prices[-1], 0)
            if old_ask - 1 > state.bids.prices[-1]:
                self._set(state.asks, changes_a, old_ask - 1, self._random_qty(state))

    def _sweep(
        self, state: _SymbolState, changes_b: Changes, changes_a: Changes, ticks: int
    ) -> None:
        """A large move: take out every level ``ticks`` deep on one side, fill the other."""
        bids, asks = state.bids, state.asks
        if ticks > 0:
            new_bid = bids.prices[-1] + ticks
            while asks.prices and asks.prices[0] <= new_bid:
                self._set(asks, changes_a, asks.prices[0], 0)
            for price in range(bids.prices[-1] + 1, new_bid + 1):
                self._set(bids, changes_b, price, self._random_qty(state))
        else:
            new_ask = asks.prices[0] + ticks
            while bids.prices and bids.prices[-1] >= new_ask:
                self._set(bids, changes_b, bids.prices[-1], 0)
            for price in range(max(1, new_ask), asks.prices[0]):
                self._set(asks, changes_a, price, self._random_qty(state))

    def _deep_cancel(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        """Cancel a level beyond the window: the exchange applies it and sends nothing."""
        window = self.config.window_levels
        is_bid = state.rng.random() < 0.5
        side, changes = (state.bids, changes_b) if is_bid else (state.asks, changes_a)
        count = len(side.prices)
        if count <= window + 1:
            return
        rank = state.rng.randint(window, count - 1)
        price = side.prices[count - 1 - rank] if is_bid else side.prices[rank]
        self._set(side, changes, price, 0)

    def _tighten_spread(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        """Refill a wide spread with improving orders, so the book stays tight but never crosses."""
        rng = state.rng
        while state.asks.prices[0] - state.bids.prices[-1] > 1 + int(rng.random() * 3):
            if rng.random() < 0.5:
                self._set(state.bids, changes_b, state.bids.prices[-1] + 1, self._random_qty(state))
            else:
                self._set(state.asks, changes_a, state.asks.prices[0] - 1, self._random_qty(state))

    def _random_change(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        """Modify, delete or insert a level, mostly near the top of the book."""
        rng = state.rng
        is_bid = rng.random() < 0.5
        side, changes = (state.bids, changes_b) if is_bid else (state.asks, changes_a)
        count = len(side.prices)
        depth = min(count - 1, int(rng.expovariate(1 / 25.0)))
        if depth < 0:
            return
        price = side.prices[count - 1 - depth] if is_bid else side.prices[depth]
        roll = rng.random()
        if roll < 0.55:
            self._set(side, changes, price, self._random_qty(state))
        elif roll < 0.75:
            if count > 10:
                self._set(side, changes, price, 0)
        else:
            gap = price - 1 if is_bid else price + 1  # a free tick next to it, if any
            other = state.asks.prices[0] if is_bid else state.bids.prices[-1]
            crosses = gap >= other if is_bid else gap <= other
            if gap not in side.levels and not crosses and gap > 0:
                self._set(side, changes, gap, self._random_qty(state))

    def _keep_depth(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        """Hold each side at ``levels_per_side``: trim the deepest or extend the tail."""
        wanted = self.config.levels_per_side
        for side, changes, direction in ((state.bids, changes_b, -1), (state.asks, changes_a, 1)):
            while len(side.prices) > wanted:
                deepest = side.prices[0] if direction < 0 else side.prices[-1]
                self._set(side, changes, deepest, 0)
            while len(side.prices) < wanted:
                deepest = side.prices[0] if direction < 0 else side.prices[-1]
                price = deepest + direction * (1 + int(state.rng.expovariate(2.0)))
                if price <= 0:
                    break
                self._set(side, changes, price, self._random_qty(state))

    def _delete_absent(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        """A delete for a price the book does not hold (the exchange sends these).

        The price is a free tick near the top, inside the window, so it is sent.
        """
        rng = state.rng
        is_bid = rng.random() < 0.5
        side, changes = (state.bids, changes_b) if is_bid else (state.asks, changes_a)
        count = len(side.prices)
        for _ in range(20):
            depth = rng.randint(0, min(50, count - 1))
            price = side.prices[count - 1 - depth] if is_bid else side.prices[depth]
            probe = price - 1 if is_bid else price + 1
            if probe > 0 and probe not in side.levels and probe not in changes:
                changes[probe] = 0
                return

    def _record(self, state: _SymbolState, changes_b: Changes, changes_a: Changes) -> None:
        history = state.history
        history.diffs.append((state.last_u, changes_b, changes_a))
        state.diff_count += 1
        if state.diff_count % self.config.checkpoint_every == 0:
            self._checkpoint(state)

    def _checkpoint(self, state: _SymbolState) -> None:
        history = state.history
        history.checkpoints.append((state.last_u, dict(state.bids.levels), dict(state.asks.levels)))
        keep = self.config.history_diffs // self.config.checkpoint_every + 1
        while len(history.checkpoints) > keep + 1:
            history.checkpoints.popleft()
        oldest = history.checkpoints[0][0]
        while history.diffs and history.diffs[0][0] <= oldest:
            history.diffs.popleft()

    @staticmethod
    def _format_sides(
        state: _SymbolState, bids: dict[int, int], asks: dict[int, int], limit: int | None
    ) -> BookSides:
        spec = state.spec
        pd, qd = spec.price_decimals, spec.qty_decimals
        bid_prices = sorted(bids, reverse=True)[:limit]
        ask_prices = sorted(asks)[:limit]
        return (
            [(format_fixed(p, pd), format_fixed(bids[p], qd)) for p in bid_prices],
            [(format_fixed(p, pd), format_fixed(asks[p], qd)) for p in ask_prices],
        )


def _in_window(side: _Side, changes: Changes, is_bid: bool, window: int) -> Changes:
    """The changes the exchange sends: those of levels ranked inside its window.

    A level's rank is the number of better prices on its side after the change
    (for a delete: the better prices left), so the ``window`` best levels are sent.
    """
    if len(side.prices) < window:
        return changes
    prices = side.prices
    if is_bid:
        edge = prices[len(prices) - window]  # the window's worst bid
        return {p: q for p, q in changes.items() if p >= edge}
    edge = prices[window - 1]
    return {p: q for p, q in changes.items() if p <= edge}


def _apply(levels: dict[int, int], changes: Changes) -> None:
    for price, qty in changes.items():
        if qty:
            levels[price] = qty
        else:
            levels.pop(price, None)


def _format_changes(state: _SymbolState, changes: Changes, reverse: bool) -> list[list[str]]:
    qd = state.spec.qty_decimals
    price_text = state.price_text
    return [[price_text(p), format_fixed(changes[p], qd)] for p in sorted(changes, reverse=reverse)]
