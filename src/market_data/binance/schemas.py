"""Wire schemas for Binance USD-M futures market streams and the REST snapshot.

Field names are the exchange's own (one letter each), with a comment saying
what they hold. Prices and quantities arrive as JSON strings; the decoders
(``decode.py``) are built with ``strict=False`` so msgspec converts them to
floats in C and checks their range there: NaN, infinities, negatives and
non-numbers are rejected before any book sees them. Unknown fields (such as
``nq`` on aggTrade) are ignored.
"""

from typing import Annotated

import msgspec

# A price must be a positive finite decimal; a quantity a non-negative one
# (zero deletes a level). The upper bound rejects "inf" and absurd values.
Price = Annotated[float, msgspec.Meta(gt=0.0, lt=1e15)]
Qty = Annotated[float, msgspec.Meta(ge=0.0, lt=1e15)]
#: A trade's quantity: something changed hands (a zero is a broken frame, not a trade).
TradeQty = Annotated[float, msgspec.Meta(gt=0.0, lt=1e15)]
Level = tuple[Price, Qty]
# Ids and millisecond times are non-negative and below 2**53: the exchange's
# ids are ~10**13 today and JSON consumers (JavaScript) lose integers above
# 2**53, so anything larger is a broken or hostile frame, not a real id. A
# plausible-looking id that is still wrong is the sync's to catch (core/sync.py).
Id = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]
Millis = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    """Diff depth (``<sym>@depth@100ms``) or partial depth (``<sym>@depth20``) event."""

    E: Millis  # event time, ms
    T: Millis  # transaction time, ms
    s: str  # symbol, upper case
    U: Id  # first update id in event
    u: Id  # final update id in event
    pu: Id  # final update id of the previous event on this stream
    b: list[Level]  # bids to update: absolute quantity, 0 removes the level
    a: list[Level]  # asks to update


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    """Aggregate trade (``<sym>@aggTrade``)."""

    E: Millis  # event time, ms
    s: str  # symbol
    a: Id  # aggregate trade id
    p: Price  # price
    q: TradeQty  # quantity
    f: Id  # first trade id
    l: Id  # last trade id  # noqa: E741 - the exchange's field name
    T: Millis  # trade time, ms
    m: bool  # is the buyer the market maker (true: the aggressor sold)


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", gc=False):
    """Best bid/ask (``<sym>@bookTicker``)."""

    u: Id  # order book update id
    E: Millis  # event time, ms
    T: Millis  # transaction time, ms
    s: str  # symbol
    b: Price  # best bid price
    B: Qty  # best bid quantity
    a: Price  # best ask price
    A: Qty  # best ask quantity


class Ticker24h(msgspec.Struct, tag_field="e", tag="24hrTicker", gc=False):
    """Rolling 24 h statistics (``<sym>@ticker``, every 2 s, route ``/market``)."""

    E: Millis  # event time, ms
    s: str  # symbol
    c: Price  # last price
    o: Price  # open price, 24 h ago
    h: Price  # high
    l: Price  # low  # noqa: E741 - the exchange's field name
    v: Qty  # base volume
    q: Qty  # quote volume
    O: Millis  # noqa: E741 - statistics open time, ms
    C: Millis  # statistics close time, ms
    n: Annotated[int, msgspec.Meta(ge=0, lt=2**53)]  # raw trades in the window
    # The last raw trade id (-1 where the exchange had none, as its spot API says).
    L: Annotated[int, msgspec.Meta(ge=-1, lt=2**53)] = 0

    def __post_init__(self) -> None:
        # The window's low and high bound its last price (the exchange's figures always
        # do): a ticker where they do not is broken, and is never published.
        if not self.l <= self.c <= self.h:
            raise ValueError("expected low <= last price <= high")


class Kline(msgspec.Struct, array_like=True, gc=False):
    """One row of ``GET /fapi/v1/klines``: a JSON array, numbers as strings."""

    open_time: Millis
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Qty  # base asset
    close_time: Millis
    quote_volume: Qty
    trades: Annotated[int, msgspec.Meta(ge=0, lt=2**53)]  # raw trades
    taker_buy_volume: Qty
    taker_buy_quote_volume: Qty
    ignore: str = ""


StreamData = DepthUpdate | AggTrade | BookTicker | Ticker24h


class CombinedFrame(msgspec.Struct, gc=False):
    """Combined-stream envelope: ``{"stream": "<name>", "data": {...}}``."""

    stream: str  # e.g. "btcusdt@depth@100ms"
    data: StreamData


class DepthSnapshot(msgspec.Struct, gc=False):
    """REST ``GET /fapi/v1/depth`` answer."""

    lastUpdateId: Id  # the book reflects every update up to this id
    bids: list[Level]  # best first
    asks: list[Level]  # best first
    E: Millis = 0  # message output time, ms
    T: Millis = 0  # transaction time, ms
