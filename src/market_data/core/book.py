"""A price-level order book: exact keys, cheap updates, cheap top-N reads.

Each side is a dict ``price -> quantity`` plus a sorted list of its prices, the
cheapest layout measured for ~1000-level books (DESIGN.md: 4.2 μs to apply 20
changes against 7.9 μs for ``sortedcontainers.SortedDict``). Prices are the
floats that msgspec parsed from the exchange's decimal strings: the same string
always gives the same float, distinct exchange prices (at most 15 significant
digits) always give distinct floats, and no arithmetic is ever done on a key,
so a key prints back (``format_decimal``) as exactly the exchange's decimal
value. Changing a quantity costs one dict store; only a new or removed price
touches the sorted list.

Depth bound, and why it is the exchange's window: each side keeps at most
``max_levels`` prices (1000 by default). The exchange maintains, and sends
diffs for, about the top 1000 levels per side; a level that is deleted while
outside that window never gets a delete (BINANCE_FUTURES.md §5). A book that
kept such levels would hold them for good, and after a large move they would
reach the top: depth-cache rot (only 24% of bid levels still matched REST after
25 h in a public study; cryptofeed #604). So the book keeps no more levels than
the window: when an event leaves a side beyond it, the levels farthest from the
top are dropped, and one comes back if the exchange updates it again
(quantities are absolute). What the bound cannot catch (a level that left the window while
still within our count) the periodic re-base on a fresh snapshot removes, and
the audit at that re-base measures (``core/sync.py``).
"""

from bisect import bisect_left, insort
from collections.abc import Sequence
from decimal import Decimal

Level = tuple[float, float]

#: Levels in one event beyond which a side is re-sorted once instead of taking each
#: level by binary insertion: an insertion moves the prices after it, so a huge event
#: (200,000 levels, best first, took 6 s) would hold the event loop for seconds.
BULK_LEVELS = 256

#: The depth window the exchange maintains per side (BINANCE_FUTURES.md §5): see above.
DEFAULT_MAX_LEVELS = 1000


def format_decimal(value: float) -> str:
    """The shortest decimal string equal to ``value``, never in exponent form."""
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


class BookSide:
    """One side of a book. ``prices`` is ascending on both sides."""

    __slots__ = ("qty", "prices", "is_bid", "max_levels")

    def __init__(self, is_bid: bool, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        self.qty: dict[float, float] = {}
        self.prices: list[float] = []
        self.is_bid = is_bid
        self.max_levels = max_levels

    def __len__(self) -> int:
        return len(self.prices)

    def clear(self) -> None:
        self.qty.clear()
        self.prices.clear()

    def apply(self, levels: Sequence[Level]) -> None:
        """Apply absolute quantities; zero removes, removing an absent level is fine.

        The depth bound is enforced once the whole event is applied, never in
        the middle: an event that inserts a new best level and deletes another
        one leaves the exchange's window as large as before, and trimming after
        the insert alone would drop a level the exchange still maintains.
        """
        qty = self.qty
        prices = self.prices
        if len(levels) > BULK_LEVELS:  # one sort, not an insertion each (quadratic)
            for price, size in levels:
                if size:
                    qty[price] = size
                else:
                    qty.pop(price, None)
            prices[:] = sorted(qty)
        else:
            for price, size in levels:
                if size:
                    if price not in qty:
                        insort(prices, price)
                    qty[price] = size
                elif qty.pop(price, None) is not None:
                    del prices[bisect_left(prices, price)]
        excess = len(prices) - self.max_levels
        if excess > 0:
            dropped = prices[:excess] if self.is_bid else prices[-excess:]
            if self.is_bid:
                del prices[:excess]
            else:
                del prices[-excess:]
            for price in dropped:
                del qty[price]

    def best(self) -> Level | None:
        prices = self.prices
        if not prices:
            return None
        price = prices[-1] if self.is_bid else prices[0]
        return price, self.qty[price]

    def best_price(self) -> float | None:
        prices = self.prices
        if not prices:
            return None
        return prices[-1] if self.is_bid else prices[0]

    def top(self, n: int) -> list[Level]:
        """The best ``n`` levels, best first."""
        qty = self.qty
        keys = self.prices[: -n - 1 : -1] if self.is_bid else self.prices[:n]
        return [(p, qty[p]) for p in keys]


class OrderBook:
    """Both sides of one symbol's book, plus the last update id applied."""

    __slots__ = ("symbol", "bids", "asks", "last_update_id")

    def __init__(self, symbol: str, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        self.symbol = symbol
        self.bids = BookSide(is_bid=True, max_levels=max_levels)
        self.asks = BookSide(is_bid=False, max_levels=max_levels)
        self.last_update_id = 0

    def clear(self) -> None:
        """Forget everything: a resync always rebuilds from empty."""
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = 0

    def load(self, bids: Sequence[Level], asks: Sequence[Level], last_update_id: int) -> None:
        """Replace the whole book (a REST snapshot)."""
        self.clear()
        self.bids.apply(bids)
        self.asks.apply(asks)
        self.last_update_id = last_update_id

    def apply(self, bids: Sequence[Level], asks: Sequence[Level], update_id: int) -> None:
        self.bids.apply(bids)
        self.asks.apply(asks)
        self.last_update_id = update_id

    def is_crossed(self) -> bool:
        """Best bid at or above best ask: impossible on a correct book."""
        bids = self.bids.prices
        asks = self.asks.prices
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]

    def mid(self) -> float | None:
        bid = self.bids.best_price()
        ask = self.asks.best_price()
        if bid is None or ask is None:
            return None
        return (bid + ask) / 2.0

    def spread(self) -> float | None:
        bid = self.bids.best_price()
        ask = self.asks.best_price()
        if bid is None or ask is None:
            return None
        return ask - bid

    def spread_bps(self) -> float | None:
        """Spread in basis points of the mid."""
        mid = self.mid()
        spread = self.spread()
        if mid is None or spread is None or mid <= 0.0:
            return None
        return spread / mid * 10_000.0

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        return self.bids.top(n), self.asks.top(n)
