"""Turn raw combined-stream frames and REST bodies into typed events.

Decoders are built once. A frame is decoded in one pass (the ``data`` object is
a tagged union on its ``"e"`` field); the stream-name suffix then decides what
the event means, because a partial-depth message and a diff carry the same
``depthUpdate`` payload but must never be confused (BINANCE_FUTURES.md §1).

Every failure, whatever its cause, surfaces as :class:`DecodeError` with the
reason, so a caller can count and skip the frame without catching foreign
exceptions.
"""

import enum
from typing import Literal

import msgspec

from market_data.binance.schemas import (
    AggTrade,
    BookTicker,
    CombinedFrame,
    DepthSnapshot,
    DepthUpdate,
    Kline,
    Ticker24h,
)
from market_data.errors import MarketDataError


class DecodeError(MarketDataError):
    """A frame or body that does not follow the exchange's schema."""


class UnsupportedStreamError(DecodeError):
    """A well-formed frame of a stream this service does not consume (e.g. kline)."""


class StreamKind(enum.Enum):
    """What a stream carries, decided by its name suffix."""

    DIFF_DEPTH = "diff_depth"
    PARTIAL_DEPTH = "partial_depth"
    AGG_TRADE = "agg_trade"
    BOOK_TICKER = "book_ticker"
    TICKER = "ticker"


#: A decoded frame: its kind and payload. A caller dispatches on ``frame[0]`` and
#: the type checker knows ``frame[1]``'s type in each branch (no casts needed).
Frame = (
    tuple[Literal[StreamKind.DIFF_DEPTH, StreamKind.PARTIAL_DEPTH], DepthUpdate]
    | tuple[Literal[StreamKind.AGG_TRADE], AggTrade]
    | tuple[Literal[StreamKind.BOOK_TICKER], BookTicker]
    | tuple[Literal[StreamKind.TICKER], Ticker24h]
)


def _suffix_kinds() -> dict[str, StreamKind]:
    kinds = {
        "aggTrade": StreamKind.AGG_TRADE,
        "bookTicker": StreamKind.BOOK_TICKER,
        "ticker": StreamKind.TICKER,
    }
    for speed in ("", "@0ms", "@100ms", "@250ms", "@500ms"):
        kinds["depth" + speed] = StreamKind.DIFF_DEPTH
    for levels in (5, 10, 20):
        for speed in ("", "@100ms", "@250ms", "@500ms"):
            kinds[f"depth{levels}{speed}"] = StreamKind.PARTIAL_DEPTH
    return kinds


#: Stream-name suffix (after ``<symbol>@``) -> kind. Unknown suffixes are errors.
SUFFIX_KINDS: dict[str, StreamKind] = _suffix_kinds()

_EXPECTED_TYPE: dict[StreamKind, type] = {
    StreamKind.DIFF_DEPTH: DepthUpdate,
    StreamKind.PARTIAL_DEPTH: DepthUpdate,
    StreamKind.AGG_TRADE: AggTrade,
    StreamKind.BOOK_TICKER: BookTicker,
    StreamKind.TICKER: Ticker24h,
}

_frame_decoder = msgspec.json.Decoder(CombinedFrame, strict=False)
_snapshot_decoder = msgspec.json.Decoder(DepthSnapshot, strict=False)
_klines_decoder = msgspec.json.Decoder(list[Kline], strict=False)


def decode_frame(raw: bytes | str) -> Frame:
    """Decode one combined-stream frame into its kind and typed payload."""
    try:
        frame = _frame_decoder.decode(raw)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise _explain(raw, exc) from None
    except RecursionError:  # thousands of nested brackets: msgspec's own depth guard
        raise DecodeError("malformed frame: nested too deeply") from None
    data = frame.data
    route = _routes.get(frame.stream) or _route(frame.stream)
    kind, expected_type, symbol = route
    if type(data) is not expected_type:
        raise DecodeError(f"stream {frame.stream!r} carries an unexpected {type(data).__name__}")
    if data.s != symbol:
        raise DecodeError(f"stream {frame.stream!r} carries symbol {data.s!r}")
    if type(data) is DepthUpdate and data.U > data.u:
        raise DecodeError(f"depth event with U={data.U} > u={data.u}")
    if type(data) is AggTrade and data.f > data.l:
        raise DecodeError(f"aggTrade with first trade id f={data.f} > last l={data.l}")
    return (kind, data)  # type: ignore[return-value]  # the route pairs kind and type


_Route = tuple[StreamKind, type, str]
_routes: dict[str, _Route] = {}
_MAX_ROUTES = 10_000  # streams seen so far; bounded against junk stream names


def _route(stream: str) -> _Route:
    """Kind, payload type and upper-case symbol of a stream name, cached."""
    symbol, _, suffix = stream.partition("@")
    kind = SUFFIX_KINDS.get(suffix)
    if kind is None:
        raise UnsupportedStreamError(f"unknown stream {stream!r}")
    route = (kind, _EXPECTED_TYPE[kind], symbol.upper())
    if len(_routes) < _MAX_ROUTES:
        _routes[stream] = route
    return route


def decode_depth(raw: bytes | str) -> DepthUpdate:
    """Decode a frame that must be a depth event (diff or partial)."""
    data = decode_frame(raw)[1]
    if type(data) is not DepthUpdate:  # a type check: cheaper than two enum look-ups
        raise DecodeError(f"expected a depth event, got {type(data).__name__}")
    return data


def decode_snapshot(raw: bytes | str) -> DepthSnapshot:
    """Decode a REST depth snapshot body."""
    try:
        return _snapshot_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"malformed depth snapshot: {exc}") from None
    except RecursionError:
        raise DecodeError("malformed depth snapshot: nested too deeply") from None


def decode_klines(raw: bytes | str) -> list[Kline]:
    """Decode a ``GET /fapi/v1/klines`` body (rows as the exchange documents them)."""
    try:
        rows = _klines_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise DecodeError(f"malformed klines: {exc}") from None
    for row in rows:
        if not row.low <= row.high or row.close_time < row.open_time:
            raise DecodeError(f"kline at {row.open_time}: low above high or closing before open")
    return rows


class _Envelope(msgspec.Struct):
    stream: str


_envelope_decoder = msgspec.json.Decoder(_Envelope)


def _explain(raw: bytes | str, exc: msgspec.DecodeError) -> DecodeError:
    """Tell an unsupported stream (e.g. kline) from a broken frame."""
    try:
        stream = _envelope_decoder.decode(raw).stream
    except (msgspec.DecodeError, RecursionError):
        return DecodeError(f"malformed frame: {exc}")
    if stream.partition("@")[2] not in SUFFIX_KINDS:
        return UnsupportedStreamError(f"unknown stream {stream!r}")
    return DecodeError(f"malformed {stream!r} frame: {exc}")
