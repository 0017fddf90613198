"""The book payload's template gives exactly the bytes msgspec gives the same fields."""

import json

import msgspec
import pytest

from market_data.core.state import BookState
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
