"""The published messages as consumers decode them: one schema beside its encoders.

:mod:`market_data.wire.payloads` writes these shapes; these Structs read them
(msgspec, in C). A test encodes with one and decodes with the other, field by
field, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import msgspec

from market_data.core.state import BookState

_TRUSTED_STATES = (BookState.LIVE.label, BookState.PARTIAL.label)


class OrderBookMessage(msgspec.Struct, kw_only=True):
    """``orderbook:{SYMBOL}``: price strings to quantities, best first."""

    symbol: str = ""
    bids: dict[str, float] = msgspec.field(default_factory=dict)
    asks: dict[str, float] = msgspec.field(default_factory=dict)
    last_update_id: int = 0
    timestamp: int = 0
    initialized: bool = False
    state: str = BookState.WAITING.label
    event_time: int = 0
    epoch: int = 0  # the publisher's fencing epoch (active/standby; 0 without)

    @property
    def trusted(self) -> bool:
        """Whether its levels may be shown as current (live or partial depth)."""
        return self.initialized and self.state in _TRUSTED_STATES


class MarketDataMessage(msgspec.Struct, kw_only=True):
    """``market_data:{SYMBOL}``: last price, best bid/ask and 24h figures."""

    symbol: str = ""
    last_price: float | None = None
    bid_price: float | None = None
    ask_price: float | None = None
    volume_24h: float = 0.0
    quote_volume_24h: float = 0.0
    high_24h: float | None = None
    low_24h: float | None = None
    trade_count_24h: int = 0
    updated_at: int = 0
    #: The figures cover the whole 24 h (False: since the service started, or a gap).
    window_complete: bool = False
    #: "trades" (the service's own window) or "ticker" (the exchange's @ticker figures).
    window_source: str = "trades"
    epoch: int = 0  # the publisher's fencing epoch (active/standby; 0 without)


class TradeMessage(msgspec.Struct, kw_only=True):
    """``trades:{SYMBOL}``: one aggregate trade (buyer maker = the seller hit the bid)."""

    symbol: str = ""
    trade_id: int = 0
    price: float
    quantity: float
    timestamp: int = 0
    is_buyer_maker: bool = False
    epoch: int = 0  # the publisher's fencing epoch (active/standby; 0 without)


decode_book = msgspec.json.Decoder(OrderBookMessage).decode
decode_market_data = msgspec.json.Decoder(MarketDataMessage).decode
decode_trade = msgspec.json.Decoder(TradeMessage).decode


class Channels(NamedTuple):
    """The three Redis channels of one symbol (the market data one is also a key)."""

    orderbook: str
    market_data: str
    trades: str

    @classmethod
    def of(cls, symbol: str) -> Channels:
        name = symbol.upper()
        return cls(f"orderbook:{name}", f"market_data:{name}", f"trades:{name}")


PublishedMessage = OrderBookMessage | MarketDataMessage | TradeMessage
_DECODERS: dict[str, Callable[[bytes | str], PublishedMessage]] = {
    "orderbook": decode_book,
    "market_data": decode_market_data,
    "trades": decode_trade,
}


def decode_channel(channel: str, data: bytes | str) -> PublishedMessage:
    """Decode a message by the channel it came on (``orderbook:``, ``market_data:``, ...).

    Raises ``msgspec.ValidationError`` for a channel of another kind and
    ``msgspec.DecodeError`` for a malformed message.
    """
    decoder = _DECODERS.get(channel.partition(":")[0])
    if decoder is None:
        raise msgspec.ValidationError(f"not a channel of this service: {channel!r}")
    return decoder(data)
