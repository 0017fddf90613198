"""The book payload's template gives exactly the bytes msgspec gives the same fields."""

import json
import random

import msgspec
import pytest

from market_data.core.state import BookState
from market_data.wire import payloads
from market_data.wire.payloads import orderbook_payload, price_text

BIDS = [(2681.1, 1.5), (2681.0, 0.001), (100.0, 2.0), (8e-7, 3e-8), (1e16, 123456789.0)]
ASKS = [(2681.2, 0.25), (2681.25, 10.0)]


def _reference(state: BookState, epoch: int | None, symbol: str = "ETHUSDT") -> bytes:
    """The payload as a dict handed to msgspec: what consumers have always read."""
    body: dict[str, object] = {
        "symbol": symbol,
        "bids": dict(BIDS if state.trusted else []),
        "asks": dict(ASKS if state.trusted else []),
        "last_update_id": 4_500_000_000_123,
        "timestamp": 1_700_000_000_002,
        "initialized": state.trusted,
        "state": state.label,
        "event_time": 1_700_000_000_001,
    }
    if epoch is not None:
        body["epoch"] = epoch
    return msgspec.json.encode(body)


@pytest.mark.parametrize("state", list(BookState))
@pytest.mark.parametrize("epoch", [None, 0, 7, 2**40])
def test_the_template_writes_the_bytes_of_the_encoded_fields(
    state: BookState, epoch: int | None
) -> None:
    raw = orderbook_payload(
        "ETHUSDT",
        BIDS if state.trusted else [],
        ASKS if state.trusted else [],
        last_update_id=4_500_000_000_123,
        event_time_ms=1_700_000_000_001,
        now_ms=1_700_000_000_002,
        state=state,
        epoch=epoch,
    )
    assert raw == _reference(state, epoch)


def test_prices_are_keys_spelled_as_every_output_spells_them() -> None:
    raw = orderbook_payload(
        "ETHUSDT", BIDS, ASKS, last_update_id=1, event_time_ms=1, now_ms=1, state=BookState.LIVE
    )
    assert list(json.loads(raw)["bids"]) == [price_text(price) for price, _ in BIDS]
    assert list(json.loads(raw)["bids"])[:4] == ["2681.1", "2681.0", "100.0", "8e-7"]


def test_a_symbol_is_a_json_string_even_with_characters_to_escape() -> None:
    raw = orderbook_payload(
        'A"B\\C',
        [],
        [],
        last_update_id=4_500_000_000_123,
        event_time_ms=1_700_000_000_001,
        now_ms=1_700_000_000_002,
        state=BookState.WAITING,
    )
    assert raw == _reference(BookState.WAITING, None, symbol='A"B\\C')
    assert json.loads(raw)["symbol"] == 'A"B\\C'


def _side_reference(levels: list[tuple[float, float]]) -> bytes:
    return msgspec.json.encode({"bids": dict(levels)})[len(b'{"bids":') : -1]


def test_cached_level_texts_give_the_bytes_of_a_fresh_encoding_as_books_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Levels come and go and change quantity; the cache starts again when full."""
    monkeypatch.setattr(payloads, "LEVEL_TEXT_MAX", 50)
    monkeypatch.setattr(payloads, "_LEVEL_TEXT", {})
    rng = random.Random(3)
    book = {round(2600 + rng.randrange(400) * 0.1, 1): float(rng.randint(1, 9)) for _ in range(30)}
    for _ in range(300):
        for _ in range(rng.randint(1, 4)):
            price = round(2600 + rng.randrange(400) * 0.1, 1)
            if rng.random() < 0.3:
                book.pop(price, None)
            else:
                book[price] = rng.choice([0.001, 1.5, 2.0, 1e-8, 123456789.0])
        levels = sorted(book.items(), reverse=True)[:20]
        raw = orderbook_payload(
            "ETHUSDT", levels, [], last_update_id=1, event_time_ms=1, now_ms=1, state=BookState.LIVE
        )
        assert raw.partition(b'"bids":')[2].startswith(_side_reference(levels))
        assert len(payloads._LEVEL_TEXT) <= 50 + 20


def test_a_level_given_as_integers_is_spelled_as_its_float() -> None:
    """(100, 2) and (100.0, 2.0) are the same cached level: both print the float."""
    as_ints = orderbook_payload(
        "X", [(100, 2)], [], last_update_id=1, event_time_ms=1, now_ms=1, state=BookState.LIVE
    )
    as_floats = orderbook_payload(
        "X", [(100.0, 2.0)], [], last_update_id=1, event_time_ms=1, now_ms=1, state=BookState.LIVE
    )
    assert as_ints == as_floats
    assert json.loads(as_ints)["bids"] == {"100.0": 2.0}
