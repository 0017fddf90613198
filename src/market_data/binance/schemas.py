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
Level = tuple[Price, Qty]


class DepthUpdate(msgspec.Struct, tag_field="e", tag="depthUpdate", gc=False):
    """Diff depth (``<sym>@depth@100ms``) or partial depth (``<sym>@depth20``) event."""

    E: int  # event time, ms
    T: int  # transaction time, ms
    s: str  # symbol, upper case
    U: int  # first update id in event
    u: int  # final update id in event
    pu: int  # final update id of the previous event on this stream
    b: list[Level]  # bids to update: absolute quantity, 0 removes the level
    a: list[Level]  # asks to update


class AggTrade(msgspec.Struct, tag_field="e", tag="aggTrade", gc=False):
    """Aggregate trade (``<sym>@aggTrade``)."""

    E: int  # event time, ms
    s: str  # symbol
    a: int  # aggregate trade id
    p: Price  # price
    q: Qty  # quantity
    f: int  # first trade id
    l: int  # last trade id  # noqa: E741 - the exchange's field name
    T: int  # trade time, ms
    m: bool  # is the buyer the market maker (true: the aggressor sold)


class BookTicker(msgspec.Struct, tag_field="e", tag="bookTicker", gc=False):
    """Best bid/ask (``<sym>@bookTicker``)."""

    u: int  # order book update id
    E: int  # event time, ms
    T: int  # transaction time, ms
    s: str  # symbol
    b: Price  # best bid price
    B: Qty  # best bid quantity
    a: Price  # best ask price
    A: Qty  # best ask quantity


StreamData = DepthUpdate | AggTrade | BookTicker


class CombinedFrame(msgspec.Struct, gc=False):
    """Combined-stream envelope: ``{"stream": "<name>", "data": {...}}``."""

    stream: str  # e.g. "btcusdt@depth@100ms"
    data: StreamData


class DepthSnapshot(msgspec.Struct, gc=False):
    """REST ``GET /fapi/v1/depth`` answer."""

    lastUpdateId: int  # the book reflects every update up to this id
    bids: list[Level]  # best first
    asks: list[Level]  # best first
    E: int = 0  # message output time, ms
    T: int = 0  # transaction time, ms
