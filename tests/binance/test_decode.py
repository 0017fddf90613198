"""Decoding: every kind of stream, and a clear error for every kind of bad frame."""

import json

import pytest

from market_data.binance.decode import (
    DecodeError,
    StreamKind,
    UnsupportedStreamError,
    decode_depth,
    decode_frame,
    decode_snapshot,
)
from market_data.binance.schemas import AggTrade, BookTicker, DepthUpdate

DEPTH = {
    "e": "depthUpdate",
    "E": 1700000000123,
    "T": 1700000000120,
    "s": "BTCUSDT",
    "U": 157,
    "u": 160,
    "pu": 149,
    "b": [["50000.0", "1.5"], ["49999.9", "0"]],
    "a": [["50001.0", "1.000"]],
}
TRADE = {
    "e": "aggTrade",
    "E": 1700000000123,
    "s": "BTCUSDT",
    "a": 5933014,
    "p": "50000.5",
    "q": "0.010",
    "f": 100,
    "l": 105,
    "T": 1700000000120,
    "m": True,
    "nq": "0.010",
}
TICKER = {
    "e": "bookTicker",
    "u": 400900217,
    "E": 1568014460893,
    "T": 1568014460891,
    "s": "BTCUSDT",
    "b": "25.35190000",
    "B": "31.21000000",
    "a": "25.36520000",
    "A": "40.66000000",
}


def frame(stream: str, data: dict[str, object]) -> bytes:
    return json.dumps({"stream": stream, "data": data}).encode()


@pytest.mark.parametrize("speed", ["", "@0ms", "@100ms", "@500ms"])
def test_diff_depth(speed: str) -> None:
    kind, data = decode_frame(frame("btcusdt@depth" + speed, DEPTH))
    assert kind is StreamKind.DIFF_DEPTH and isinstance(data, DepthUpdate)
    assert (data.U, data.u, data.pu) == (157, 160, 149)
    assert data.b == [(50000.0, 1.5), (49999.9, 0.0)] and data.a == [(50001.0, 1.0)]


@pytest.mark.parametrize("stream", ["btcusdt@depth5", "btcusdt@depth10@100ms", "btcusdt@depth20"])
def test_partial_depth_is_a_different_kind(stream: str) -> None:
    kind, _ = decode_frame(frame(stream, DEPTH))
    assert kind is StreamKind.PARTIAL_DEPTH


def test_agg_trade_accepts_unknown_fields() -> None:
    kind, data = decode_frame(frame("btcusdt@aggTrade", TRADE))
    assert kind is StreamKind.AGG_TRADE and isinstance(data, AggTrade)
    assert (data.a, data.p, data.q, data.m, data.T) == (5933014, 50000.5, 0.01, True, 1700000000120)


def test_decode_depth_takes_depth_events_only() -> None:
    assert decode_depth(frame("btcusdt@depth@0ms", DEPTH)).u == 160
    assert decode_depth(frame("btcusdt@depth5", DEPTH)).u == 160
    with pytest.raises(DecodeError, match="expected a depth event, got AggTrade"):
        decode_depth(frame("btcusdt@aggTrade", TRADE))


def test_book_ticker() -> None:
    kind, data = decode_frame(frame("btcusdt@bookTicker", TICKER))
    assert kind is StreamKind.BOOK_TICKER and isinstance(data, BookTicker)
    assert data.b == 25.3519 and data.A == 40.66


def test_snapshot() -> None:
    body = b'{"lastUpdateId":1027024,"E":1589436922972,"T":1589436922959,'
    body += b'"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}'
    snap = decode_snapshot(body)
    assert (
        snap.lastUpdateId == 1027024 and snap.bids == [(4.0, 431.0)] and snap.asks[0][0] == 4.000002
    )


def _with(**changes: object) -> dict[str, object]:
    return {**DEPTH, **changes}


BAD = [
    (b"not json", "malformed frame"),
    (b'{"stream":"btcusdt@depth"}', "missing required field `data`"),
    (frame("btcusdt@depth", _with(U="x")), "Expected `int`"),
    (frame("btcusdt@depth", {k: v for k, v in DEPTH.items() if k != "pu"}), "`pu`"),
    (frame("btcusdt@depth", _with(b=[["-1", "1"]])), "> 0.0"),
    (frame("btcusdt@depth", _with(b=[["1", "-1"]])), ">= 0.0"),
    (frame("btcusdt@depth", _with(b=[["abc", "1"]])), "Expected `float`"),
    (frame("btcusdt@depth", _with(b=[["NaN", "1"]])), "> 0.0"),
    (frame("btcusdt@depth", _with(a=[["1", "nan"]])), ">= 0.0"),
    (frame("btcusdt@depth", _with(a=[["Infinity", "1"]])), "Expected `float` <"),
    (frame("btcusdt@depth", _with(a=[["1"]])), "Expected `array` of length 2"),
    (frame("btcusdt@depth", _with(U=200)), "U=200 > u=160"),
    (frame("ethusdt@depth", DEPTH), "carries symbol 'BTCUSDT'"),
    (frame("btcusdt@aggTrade", DEPTH), "unexpected DepthUpdate"),
    (frame("btcusdt@depth", TRADE), "unexpected AggTrade"),
    (frame("btcusdt@aggTrade", {**TRADE, "p": "0"}), "> 0.0"),
    (frame("btcusdt@depth", {"e": "somethingElse"}), "somethingElse"),
    (frame("btcusdt@depth", _with(u=2**62)), "Expected `int` <= 9007199254740991"),
    (frame("btcusdt@depth", _with(u=10**40)), "Expected `int` <= 9007199254740991"),
    (frame("btcusdt@depth", _with(pu=-1)), "Expected `int` >= 0"),
    (frame("btcusdt@aggTrade", {**TRADE, "a": 2**60}), "Expected `int` <= 9007199254740991"),
    (frame("btcusdt@aggTrade", {**TRADE, "T": 2**60}), "Expected `int` <= 9007199254740991"),
    (frame("btcusdt@aggTrade", {**TRADE, "f": 106}), "f=106 > last l=105"),
    (b'{"stream":"btcusdt@depth","data":' + b"[" * 5000, "malformed frame"),
    (
        b'{"stream":"btcusdt@depth","data":{"e":"depthUpdate","x":' + b"[" * 5000 + b"]" * 5000,
        "nested too deeply",
    ),
    (b"[" * 5000, "malformed frame"),
    (b'{"a":' * 5000, "malformed frame"),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_malformed_frames_raise_decode_error_with_the_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_frame(raw)
    assert reason in str(info.value)
    assert not isinstance(info.value, UnsupportedStreamError)


@pytest.mark.parametrize(
    "raw",
    [
        frame("btcusdt@kline_1m", {"e": "kline", "s": "BTCUSDT"}),
        frame("btcusdt@depth@42ms", DEPTH),
        frame("btcusdt@markPrice", {"e": "markPriceUpdate"}),
    ],
)
def test_unknown_streams_are_told_apart(raw: bytes) -> None:
    with pytest.raises(UnsupportedStreamError, match="unknown stream"):
        decode_frame(raw)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"lastUpdateId":1,"bids":[["1","x"]],"asks":[]}',
        b'{"lastUpdateId":1,"bids":' + b"[" * 5000,
        b'{"lastUpdateId":18446744073709551616,"bids":[],"asks":[]}',
    ],
)
def test_bad_snapshot(body: bytes) -> None:
    with pytest.raises(DecodeError, match="malformed depth snapshot"):
        decode_snapshot(body)
