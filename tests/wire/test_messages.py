"""The consumer Structs read exactly what the encoders write, field by field."""

import json

import msgspec

from market_data.core.state import BookState
from market_data.core.stats import Stats24h
from market_data.wire.messages import (
    MarketDataMessage,
    OrderBookMessage,
    TradeMessage,
    decode_book,
    decode_market_data,
    decode_trade,
)
from market_data.wire.payloads import market_data_payload, orderbook_payload, trade_payload

STATS = Stats24h(
    last_price=100.5,
    last_trade_ms=1_700_000_000_000,
    open_price=99.0,
    high=101.0,
    low=98.5,
    volume=12.5,
    quote_volume=1250.0,
    trade_count=42,
    window_start_ms=0,
    updated_ms=1_700_000_000_000,
)


def _fields(struct: type[msgspec.Struct]) -> set[str]:
    """The Struct's fields; ``epoch`` is only in payloads of active/standby publishers."""
    return set(struct.__struct_fields__) - {"epoch"}


def test_with_active_standby_every_payload_carries_the_epoch() -> None:
    book = orderbook_payload(
        "X", [], [], last_update_id=0, event_time_ms=0, now_ms=1, state=BookState.LIVE, epoch=7
    )
    trade = trade_payload(
        "X", trade_id=1, price=1.0, quantity=1.0, timestamp_ms=1, is_buyer_maker=False, epoch=7
    )
    market = market_data_payload("X", best_bid=1.0, best_ask=2.0, stats=STATS, now_ms=5, epoch=7)
    assert [decode_book(book).epoch, decode_trade(trade).epoch] == [7, 7]
    assert decode_market_data(market).epoch == 7
    assert "epoch" not in json.loads(
        trade_payload(
            "X", trade_id=1, price=1.0, quantity=1.0, timestamp_ms=1, is_buyer_maker=False
        )
    )


def test_book_keys_are_the_struct_fields_and_round_trip() -> None:
    raw = orderbook_payload(
        "BTCUSDT",
        [(100.0, 1.5), (99.5, 2.0)],
        [(100.5, 0.25)],
        last_update_id=77,
        event_time_ms=1_700_000_000_001,
        now_ms=1_700_000_000_002,
        state=BookState.LIVE,
    )
    assert set(json.loads(raw)) == _fields(OrderBookMessage)
    book = decode_book(raw)
    assert book.trusted and book.last_update_id == 77 and book.state == "live"
    assert book.bids == {"100.0": 1.5, "99.5": 2.0} and book.asks == {"100.5": 0.25}
    assert book.event_time == 1_700_000_000_001 and book.timestamp == 1_700_000_000_002


def test_a_book_that_is_not_live_is_not_trusted() -> None:
    raw = orderbook_payload(
        "BTCUSDT", [], [], last_update_id=0, event_time_ms=0, now_ms=1, state=BookState.SYNCING
    )
    book = decode_book(raw)
    assert not book.trusted and book.bids == {} and book.state == "syncing"


def test_market_data_keys_are_the_struct_fields_and_round_trip() -> None:
    raw = market_data_payload("ETHUSDT", best_bid=1.0, best_ask=2.0, stats=STATS, now_ms=5)
    assert set(json.loads(raw)) == _fields(MarketDataMessage)
    message = decode_market_data(raw)
    assert (message.bid_price, message.ask_price, message.last_price) == (1.0, 2.0, 100.5)
    assert (message.volume_24h, message.trade_count_24h, message.high_24h) == (12.5, 42, 101.0)


def test_trade_keys_are_the_struct_fields_and_round_trip() -> None:
    raw = trade_payload(
        "BTCUSDT", trade_id=9, price=100.25, quantity=0.5, timestamp_ms=3, is_buyer_maker=True
    )
    assert set(json.loads(raw)) == _fields(TradeMessage)
    trade = decode_trade(raw)
    assert (trade.trade_id, trade.price, trade.quantity, trade.is_buyer_maker) == (
        9,
        100.25,
        0.5,
        True,
    )
