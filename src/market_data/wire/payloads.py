"""JSON payloads published to consumers (Redis channels, HTTP, shared memory).

The shapes are kept stable for existing consumers; every payload also says
whether the book can be trusted (``initialized`` and the more precise
``state``), so a stale book is never presented as live.

With active/standby (``ha_group``) every payload also carries ``epoch``, the
publisher's fencing epoch: a consumer drops messages of an older epoch.

Prices are JSON object keys (strings) holding the shortest decimal that reads
back as the same double, as msgspec writes it (e.g. ``"2681.1"``, ``"100.0"``,
``"8e-7"``): equal to the exchange's decimal value, never rounded. Every
output spells prices this way (:func:`price_text`; ``/book`` too). Quantities
and figures are JSON numbers. Keys are formatted by msgspec in C: formatting
40 prices in Python cost ~17 μs per book, more than everything else. The book
payload is encoded for every published frame, so around its two level objects it
is filled into a fixed template instead of encoding a dict built only to be
encoded (the same bytes; ``tests/wire/test_payloads.py`` holds them equal). Time is
passed in (``now_ms``): this module never reads a clock.
"""

from collections.abc import Sequence
from typing import Protocol

import msgspec

from market_data.core.book import Level
from market_data.core.precision import Precision
from market_data.core.state import BookState
from market_data.core.stats import Stats24h

_encode = msgspec.json.Encoder().encode
_DEFAULT_PRECISION = Precision()


def price_text(price: float) -> str:
    """A price as every payload spells it (the form msgspec gives object keys)."""
    return _encode(price).decode()


def _side(levels: Sequence[Level]) -> bytes:
    """Price -> quantity as a JSON object; msgspec writes the float keys as strings, in C.

    Keeping each level's text from one publication to the next, so that only
    changed levels are formatted, was measured and lost: looking 40 levels up
    (two float hashes each) and finding the missing ones cost what formatting
    saved. ``bench e2e --symbols 100 --rates 10000``, runs alternated: 66-73 μs
    of CPU a frame without it, 80-88 with it.
    """
    return _encode(dict(levels))


#: ``orderbook:{SYMBOL}``'s fields in their published order, around the parts that vary.
_BOOK_TEMPLATE = (
    b'{"symbol":%b,"bids":%b,"asks":%b,"last_update_id":%d,"timestamp":%d,'
    b'"initialized":%b,"state":%b,"event_time":%d%b}'
)
#: Per state, its ``initialized`` and ``state`` values, encoded once.
_STATE_FIELDS = {s: (_encode(s.trusted), _encode(s.label)) for s in BookState}


def orderbook_payload(
    symbol: str,
    bids: Sequence[Level],
    asks: Sequence[Level],
    *,
    last_update_id: int,
    event_time_ms: int,
    now_ms: int,
    state: BookState,
    epoch: int | None = None,
) -> bytes:
    """``orderbook:{SYMBOL}``: the top levels, best first, and the book's state.

    ``initialized`` says whether the book can be trusted. The caller passes no
    levels for a book that cannot (the service decides that once, for every
    output), so no consumer can read stale levels as current.
    """
    initialized, label = _STATE_FIELDS[state]
    return _BOOK_TEMPLATE % (
        _encode(symbol),
        _side(bids),
        _side(asks),
        last_update_id,
        now_ms,
        initialized,
        label,
        event_time_ms,
        b"" if epoch is None else b',"epoch":%d' % epoch,
    )


class Ticker(Protocol):
    """The exchange's own 24 h figures (a ``@ticker`` event)."""

    v: float
    q: float
    h: float
    l: float  # noqa: E741 - the exchange's field name
    n: int


def market_data_payload(
    symbol: str,
    *,
    best_bid: float | None,
    best_ask: float | None,
    stats: Stats24h,
    now_ms: int,
    precision: Precision = _DEFAULT_PRECISION,
    ticker: Ticker | None = None,
    epoch: int | None = None,
) -> bytes:
    """``market_data:{SYMBOL}``: last price, best bid/ask and real 24h figures.

    The sums are rounded to the exchange's own decimals (:mod:`core.precision`).
    ``window_complete`` says whether the figures cover the whole 24 h; while
    they do not, the exchange's ``@ticker`` figures are published if given.
    """
    volume, quote = stats.volume, stats.quote_volume
    high, low, count = stats.high, stats.low, stats.trade_count
    if not stats.complete and ticker is not None:
        volume, quote, high, low, count = ticker.v, ticker.q, ticker.h, ticker.l, ticker.n
    body = {
        "symbol": symbol,
        "last_price": stats.last_price,
        "bid_price": best_bid,
        "ask_price": best_ask,
        "volume_24h": precision.qty(volume),
        "quote_volume_24h": precision.quote(quote),
        "high_24h": high,
        "low_24h": low,
        "trade_count_24h": count,
        "updated_at": now_ms,
        "window_complete": stats.complete,
        "window_source": "trades" if stats.complete or ticker is None else "ticker",
    }
    if epoch is not None:
        body["epoch"] = epoch
    return _encode(body)


def trade_payload(
    symbol: str,
    *,
    trade_id: int,
    price: float,
    quantity: float,
    timestamp_ms: int,
    is_buyer_maker: bool,
    epoch: int | None = None,
) -> bytes:
    """``trades:{SYMBOL}``: one aggregate trade."""
    body = {
        "symbol": symbol,
        "trade_id": trade_id,
        "price": price,
        "quantity": quantity,
        "timestamp": timestamp_ms,
        "is_buyer_maker": is_buyer_maker,
    }
    if epoch is not None:
        body["epoch"] = epoch
    return _encode(body)
