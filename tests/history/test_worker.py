"""The history process's reading of a batch: typed items, frames as their bytes."""

import msgspec
import pytest

from market_data.history.recorder import OTHER
from market_data.history.worker import (
    TRADE,
    Frame,
    _frame_bytes,
    _symbol_of,
    decode_items,
    encode_item,
    encode_items,
)


@pytest.mark.parametrize("size", [0, 31, 32, 255, 256, 65_535, 65_536])
@pytest.mark.parametrize("kind", [str, bytes])
def test_a_frame_reads_back_as_the_bytes_received_whatever_its_length(
    size: int, kind: type
) -> None:
    text = ("é" + "x" * size)[:size] if size else ""  # non-ASCII: its UTF-8 is recorded
    raw = text if kind is str else text.encode()
    (item,), unreadable = decode_items(encode_items([encode_item((0, 1, raw, 2))]))
    assert unreadable == 0 and type(item) is Frame
    assert _frame_bytes(item.raw) == text.encode()


def test_the_symbol_is_the_stream_name_and_a_frame_naming_none_goes_to_other() -> None:
    assert _symbol_of(b'{"stream":"btcusdt@depth@100ms","data":{}}') == "BTCUSDT"
    assert _symbol_of(b'{"stream":"btcusdt@aggTrade","data":{}}') == "BTCUSDT"  # cached
    assert _symbol_of(b'{"stream":"../x@depth","data":{}}') == OTHER
    assert _symbol_of(b'{"code":-1,"msg":"no"}') == OTHER


def test_a_batch_with_an_unreadable_item_keeps_every_other_item() -> None:
    good = (TRADE, 1, "BTCUSDT", 7, 100.5, 0.5, 1_700_000_000_000, True)
    bad = (TRADE, 1, "BTCUSDT", 8, "not a price", 0.5, 1_700_000_000_000, True)
    batch = [msgspec.msgpack.encode(item) for item in (good, bad, (99, 1), good)]
    items, unreadable = decode_items(encode_items(batch))
    assert unreadable == 2
    assert [item.id for item in items] == [7, 7]  # type: ignore[union-attr]
