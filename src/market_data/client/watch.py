"""Live terminal view of one symbol: its book ladder, spread, 24h figures and trades.

Reads what the service publishes to Redis (the payloads of
``market_data.wire.payloads``): the ``orderbook:``, ``market_data:`` and
``trades:`` channels of one symbol. Decoding and accumulation
(:class:`ViewState`) and drawing (:func:`render`, :func:`plain_line`) take the
time as an argument, so they are tested without a clock or a terminal;
:func:`watch` is the thin I/O loop around them.

A book that is not live (waiting, syncing, unknown, or Redis unreachable) is
shown as such in big letters and without levels: old levels are never drawn as
if they were current.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from market_data import arg_types
from market_data.client.redis import (
    ConnectionChange,
    Message,
    PublisherStatus,
    RedisSubscriber,
    TradeGap,
)
from market_data.core.book import format_decimal
from market_data.core.state import BookState
from market_data.outputs.redis_url import parse_redis_url, redact_url
from market_data.wire.messages import (
    Channels,
    MarketDataMessage,
    OrderBookMessage,
    TradeMessage,
    decode_channel,
)

DEFAULT_DEPTH = 10
TRADES_SHOWN = 12
TRADE_HISTORY = 50
RATE_WINDOW_S = 5.0
STALE_AFTER_S = 5.0
BAR_WIDTH = 20

_STATE_STYLES = {
    BookState.LIVE.label: "bold white on green",
    BookState.PARTIAL.label: "bold black on yellow",
}
_NOT_LIVE_STYLE = "bold white on red"
_BAR_EIGHTHS = " ▏▎▍▌▋▊▉"
_BIG_NOT_LIVE = (
    "█▀▄ █▀█ █▀█ █▄▀   █▄ █ █▀█ ▀█▀   █   █ █ █ █▀▀",
    "█▀▄ █ █ █ █ █▀▄   █ ▀█ █ █  █    █   █ ▀▄▀ █▀▀",
    "▀▀  ▀▀▀ ▀▀▀ ▀ ▀   ▀  ▀ ▀▀▀  ▀    ▀▀▀ ▀  ▀  ▀▀▀",
)


# -- accumulated state --------------------------------------------------------


class RateMeter:
    """Messages per second over the last ``window_s`` seconds, in whole-second buckets.

    Memory is bounded by the window (one counter per second), whatever the rate.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self.total = 0
        self._buckets: deque[list[int]] = deque()  # [second, count], oldest first
        self._first_seen: float | None = None

    def add(self, now: float, count: int = 1) -> None:
        self.total += count
        if self._first_seen is None:
            self._first_seen = now
        second = math.floor(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
        self._expire(now)

    def rate(self, now: float) -> float:
        """Average rate since the start of the oldest second still in the window."""
        self._expire(now)
        if not self._buckets or self._first_seen is None:
            return 0.0
        start = max(math.floor(now) - self.window_s + 1, self._first_seen)
        span = max(now - start, 1.0)  # a single early message is not a spike of 1000/s
        return sum(count for _, count in self._buckets) / span

    def _expire(self, now: float) -> None:
        oldest_kept = math.floor(now) - self.window_s + 1
        while self._buckets and self._buckets[0][0] < oldest_kept:
            self._buckets.popleft()


class ViewState:
    """Everything the view knows, accumulated from decoded messages.

    Times are monotonic seconds passed in by the caller. Books are dropped when
    Redis disconnects: after a reconnect nothing is shown until a fresh one comes.
    """

    def __init__(self, trade_history: int = TRADE_HISTORY, rate_window_s: float = RATE_WINDOW_S):
        self.trade_history = trade_history
        self.rate_window_s = rate_window_s
        self.books: dict[str, OrderBookMessage] = {}
        self.book_received_at: dict[str, float] = {}
        self.market_data: dict[str, MarketDataMessage] = {}
        self.trades: dict[str, deque[TradeMessage]] = {}
        self.rates: dict[str, RateMeter] = {}
        self.malformed = 0
        self.trade_gaps = 0  # trades the subscriber reported missing
        self.connected = False
        self.connection_note = "connecting"
        self.source = ""  # the redacted Redis URL, for display
        #: When the service's heartbeat was first heard since the last silence (None:
        #: not heard): a book still missing long after is probably of a symbol not served.
        self.publisher_heard_at: float | None = None

    # -- feeding ----------------------------------------------------------------

    def apply(self, channel: str, data: bytes, now: float) -> bool:
        """Decode one pub/sub message by its channel; False (and counted) if malformed."""
        try:
            message = decode_channel(channel, data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self.malformed += 1
            return False
        symbol = channel.partition(":")[2]
        if isinstance(message, OrderBookMessage):
            self.add_book(symbol, message, now)
        elif isinstance(message, MarketDataMessage):
            self.add_market_data(symbol, message)
        else:
            self.add_trade(symbol, message)
        self.count(channel, now)
        return True

    def take(self, message: Message, now: float) -> None:
        """One message from :class:`~market_data.client.redis.RedisSubscriber`."""
        if isinstance(message, PublisherStatus):  # a dead publisher's last book is not live
            if message.alive:
                self.set_connected()
                self.publisher_heard_at = now
            else:
                self.publisher_heard_at = None
                self.set_disconnected(f"publisher silent ({message.reason})")
            return
        if isinstance(message, ConnectionChange):
            if message.connected:
                self.set_connected()
            else:
                self.set_disconnected(f"disconnected ({message.reason}), retrying")
            return
        if isinstance(message, TradeGap):
            self.trade_gaps += message.count
            return
        symbol = message.symbol
        if isinstance(message, OrderBookMessage):
            self.add_book(symbol, message, now)
            self.count(f"orderbook:{symbol}", now)
        elif isinstance(message, MarketDataMessage):
            self.add_market_data(symbol, message)
            if self.connected:  # the stored key, read before subscribing, is not a message
                self.count(f"market_data:{symbol}", now)
        else:
            self.add_trade(symbol, message)
            self.count(f"trades:{symbol}", now)

    def add_book(self, symbol: str, book: OrderBookMessage, now: float) -> None:
        self.books[symbol] = book
        self.book_received_at[symbol] = now

    def add_market_data(self, symbol: str, market_data: MarketDataMessage) -> None:
        self.market_data[symbol] = market_data

    def add_trade(self, symbol: str, trade: TradeMessage) -> None:
        history = self.trades.get(symbol)
        if history is None:
            history = self.trades[symbol] = deque(maxlen=self.trade_history)
        history.append(trade)

    def count(self, channel: str, now: float) -> None:
        meter = self.rates.get(channel)
        if meter is None:
            meter = self.rates[channel] = RateMeter(self.rate_window_s)
        meter.add(now)

    def set_connected(self) -> None:
        self.connected, self.connection_note = True, "connected"

    def set_disconnected(self, reason: str) -> None:
        """Redis is gone: forget the books (they can no longer be known to be current)."""
        self.connected, self.connection_note = False, reason
        self.books.clear()
        self.book_received_at.clear()

    # -- reading ----------------------------------------------------------------

    def received(self, channel: str) -> int:
        meter = self.rates.get(channel)
        return meter.total if meter is not None else 0

    def rate(self, channel: str, now: float) -> float:
        meter = self.rates.get(channel)
        return meter.rate(now) if meter is not None else 0.0

    def book_age(self, symbol: str, now: float) -> float | None:
        """Seconds since the last book of ``symbol`` arrived, None before the first."""
        received_at = self.book_received_at.get(symbol)
        return None if received_at is None else max(now - received_at, 0.0)

    def book_state(self, symbol: str) -> str:
        """The latest book's state label (``waiting`` before the first book)."""
        book = self.books.get(symbol)
        return book.state if book is not None else BookState.WAITING.label

    def last_trades(self, symbol: str, count: int = TRADES_SHOWN) -> list[TradeMessage]:
        """The newest ``count`` trades, newest first."""
        history = self.trades.get(symbol, ())
        return list(reversed(list(history)[-count:]))


# -- rendering ----------------------------------------------------------------


class Ladder(NamedTuple):
    """Top levels as floats, best first: what the view and the plain line compute from."""

    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]

    @classmethod
    def of(cls, book: OrderBookMessage, depth: int) -> Ladder:
        bids = sorted(((float(p), q) for p, q in book.bids.items()), reverse=True)[:depth]
        asks = sorted((float(p), q) for p, q in book.asks.items())[:depth]
        return cls(bids, asks)

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None


class Spread(NamedTuple):
    absolute: float
    bps: float
    mid: float


def spread_of(best_bid: float | None, best_ask: float | None) -> Spread | None:
    """Absolute spread, spread in basis points of the mid, and the mid."""
    if best_bid is None or best_ask is None:
        return None
    mid = (best_bid + best_ask) / 2.0
    absolute = best_ask - best_bid
    return Spread(absolute, absolute / mid * 10_000.0 if mid else 0.0, mid)


def _num(value: float | None) -> str:
    """Shortest exact decimal, rounded to 10 places so sums show no float residue."""
    return "-" if value is None else format_decimal(round(value, 10))


def _volume(value: float) -> str:
    return f"{value:,.3f}" if value < 1_000_000 else f"{value:,.0f}"


def _bar(size: float, largest: float) -> str:
    if largest <= 0 or size <= 0:
        return ""
    eighths = max(round(size / largest * BAR_WIDTH * 8), 1)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_BAR_EIGHTHS[rest] if rest else "")


def _clock(timestamp_ms: int) -> str:
    moment = datetime.fromtimestamp(timestamp_ms / 1000.0, tz=UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _trade_side(trade: TradeMessage) -> tuple[str, str]:
    """(label, style): a buyer maker means the aggressor sold."""
    return ("SELL", "red") if trade.is_buyer_maker else ("BUY", "green")


#: Seconds of heartbeats without a book of the symbol before the view asks whether
#: the service serves it (a book, even one not live, is published within seconds).
UNSERVED_AFTER_S = 10.0


def _not_live_reason(state: ViewState, symbol: str, now: float) -> str | None:
    """Why the book cannot be shown, or None when it can."""
    if not state.connected:
        return f"redis {state.connection_note}"
    book = state.books.get(symbol)
    if book is None:
        heard = state.publisher_heard_at
        if heard is not None and now - heard >= UNSERVED_AFTER_S:
            return (
                f"no book of {symbol} in {now - heard:.0f}s while the service is alive: "
                "is it one of its symbols? (market-data health lists them)"
            )
        return "no book received yet"
    if not book.trusted:
        return f"state {book.state}, levels hidden until it is live again"
    return None


def _header(state: ViewState, symbol: str, now: float) -> Text:
    label = state.book_state(symbol)
    shown = label if state.connected else "disconnected"
    style = _STATE_STYLES.get(label, _NOT_LIVE_STYLE) if state.connected else _NOT_LIVE_STYLE
    header = Text.assemble((f" {symbol} ", "bold"), (f" {shown.upper()} ", style))
    book = state.books.get(symbol)
    age = state.book_age(symbol, now)
    if book is not None and age is not None:
        if book.trusted:
            header.append(f"  update id {book.last_update_id}")
        header.append("  last book ")
        header.append(f"{age:.1f} s ago", "yellow" if age > STALE_AFTER_S else "")
    note_style = "green" if state.connected else "bold red"
    header.append(f"  redis {state.source or '?'} ")
    header.append(state.connection_note, note_style)
    return header


def _not_live_panel(reason: str) -> Panel:
    big = Text("\n".join(_BIG_NOT_LIVE), style="bold red", no_wrap=True, overflow="crop")
    return Panel(
        Group(big, Text(f"book not live: {reason}", style="red")),
        border_style="red",
        expand=False,
    )


def _ladder_table(ladder: Ladder, stale: bool, *, bars: bool = True) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    levels = (*ladder.bids, *ladder.asks)
    # Columns as wide as their widest figure: a squeezed layout never cuts a price.
    price_width = max((len(_num(p)) for p, _ in levels), default=5)
    size_width = max((len(_num(q)) for _, q in levels), default=4)
    total_width = len(_num(sum(q for _, q in levels))) + 2
    table.add_column("price", justify="right", no_wrap=True, min_width=price_width)
    table.add_column("size", justify="right", no_wrap=True, min_width=size_width)
    table.add_column("total", justify="right", no_wrap=True, min_width=total_width)
    table.add_column("", min_width=BAR_WIDTH if bars else 0, no_wrap=True)
    largest = max((q for _, q in (*ladder.bids, *ladder.asks)), default=0.0)
    dim = " dim" if stale else ""

    ask_totals: list[float] = []
    running = 0.0
    for _, qty in ladder.asks:
        running += qty
        ask_totals.append(running)
    for (price, qty), total in reversed(list(zip(ladder.asks, ask_totals, strict=True))):
        style = "red" + dim
        table.add_row(
            _num(price),
            _num(qty),
            _num(total),
            Text(_bar(qty, largest) if bars else "", style),
            style=style,
        )

    spread = spread_of(ladder.best_bid, ladder.best_ask)
    if spread is not None:
        table.add_row(
            Text("spread", "bold"),
            _num(spread.absolute),
            f"{spread.bps:.2f} bps",
            f"mid {_num(spread.mid)}" if bars else "",
            style="bold" + dim,
        )
    else:
        table.add_row(Text("spread", "bold"), "-", "-", "one side empty")

    running = 0.0
    for price, qty in ladder.bids:
        running += qty
        style = "green" + dim
        table.add_row(
            _num(price),
            _num(qty),
            _num(running),
            Text(_bar(qty, largest) if bars else "", style),
            style=style,
        )
    return table


def _stats_table(market_data: MarketDataMessage | None) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    md = market_data
    rows = [
        ("last", _num(md.last_price) if md else "-"),
        ("24h high", _num(md.high_24h) if md else "-"),
        ("24h low", _num(md.low_24h) if md else "-"),
        ("24h volume", _volume(md.volume_24h) if md else "-"),
        ("24h quote volume", _volume(md.quote_volume_24h) if md else "-"),
        ("24h trades", f"{md.trade_count_24h:,}" if md else "-"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _trades_table(trades: list[TradeMessage]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for name, justify in (("time", "left"), ("side", "left"), ("price", "right"), ("qty", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for trade in trades:
        label, style = _trade_side(trade)
        table.add_row(
            _clock(trade.timestamp), label, _num(trade.price), _num(trade.quantity), style=style
        )
    if not trades:
        table.add_row("no trades yet", "", "", "")
    return table


def _rates_line(state: ViewState, symbol: str, now: float) -> Text:
    channels = Channels.of(symbol)
    parts = [
        f"books {state.rate(channels.orderbook, now):.1f}/s",
        f"trades {state.rate(channels.trades, now):.1f}/s",
        f"market data {state.rate(channels.market_data, now):.1f}/s",
        f"received {state.received(channels.orderbook)} books, "
        f"{state.received(channels.trades)} trades, "
        f"{state.received(channels.market_data)} market data",
    ]
    if state.malformed:
        parts.append(f"{state.malformed} malformed")
    return Text("  ".join(parts), style="dim")


#: Rows the view uses besides the ladder's levels (header, borders, column
#: names, spread, rates, one note), and the widths below which it sheds parts.
_FIXED_ROWS = 10
_WIDTH_FOR_BARS = 110
_WIDTH_FOR_SIDE_PANELS = 72


def render(
    state: ViewState,
    symbol: str,
    depth: int = DEFAULT_DEPTH,
    *,
    now: float | None = None,
    width: int | None = None,
    height: int | None = None,
) -> RenderableType:
    """The whole view of ``symbol``: header, ladder (or why not), 24h figures, trades, rates.

    Given the terminal's ``width`` and ``height`` it fits them: columns first
    (size bars, then the side panels give way before any price is cut), then
    as many levels as fit, the same number on each side.
    """
    symbol = symbol.upper()
    now = time.monotonic() if now is None else now
    if height is not None:
        depth = max(1, min(depth, (height - _FIXED_ROWS) // 2))
    bars = width is None or width >= _WIDTH_FOR_BARS
    side_panels = width is None or width >= _WIDTH_FOR_SIDE_PANELS
    trades_shown = TRADES_SHOWN if height is None else max(1, min(TRADES_SHOWN, height - 15))
    reason = _not_live_reason(state, symbol, now)
    book_part: RenderableType
    if reason is not None:
        book_part = _not_live_panel(reason)
    else:
        book = state.books[symbol]
        age = state.book_age(symbol, now) or 0.0
        stale = age > STALE_AFTER_S
        parts: list[RenderableType] = []
        if book.state == BookState.PARTIAL.label:
            parts.append(Text("partial depth: top levels only", style="yellow"))
        if stale:
            parts.append(Text(f"stale: no book update for {age:.0f} s", style="bold yellow"))
        parts.append(_ladder_table(Ladder.of(book, depth), stale, bars=bars))
        book_part = Group(*parts)

    body = Table.grid(padding=(0, 3))
    body.add_column()
    if side_panels:
        right = Group(
            Panel(_stats_table(state.market_data.get(symbol)), title="24h", expand=False),
            Panel(
                _trades_table(state.last_trades(symbol, trades_shown)),
                title="trades",
                expand=False,
            ),
        )
        body.add_column()
        body.add_row(Panel(book_part, title="book", expand=False), right)
    else:
        body.add_row(Panel(book_part, title="book", expand=False))
    return Group(_header(state, symbol, now), body, _rates_line(state, symbol, now))


def plain_line(state: ViewState, symbol: str, *, now: float | None = None) -> str:
    """One compact line for logs and CI: state, best bid/ask, spread, last trade, 24h
    figures, rates."""
    symbol = symbol.upper()
    now = time.monotonic() if now is None else now
    reason = _not_live_reason(state, symbol, now)
    parts = [symbol]
    if reason is None:
        book = state.books[symbol]
        ladder = Ladder.of(book, 1)
        spread = spread_of(ladder.best_bid, ladder.best_ask)
        parts += [
            book.state,
            f"bid {_num(ladder.best_bid)} ask {_num(ladder.best_ask)}",
            f"spread {spread.bps:.2f} bps" if spread else "spread -",
            f"u={book.last_update_id}",
        ]
    else:
        parts.append(f"NOT LIVE ({reason})")
    trades = state.last_trades(symbol, 1)
    if trades:
        label, _ = _trade_side(trades[0])
        parts.append(f"last {label} {_num(trades[0].quantity)}@{_num(trades[0].price)}")
    else:
        parts.append("last -")
    md = state.market_data.get(symbol)
    if md is not None:
        parts.append(
            f"24h high {_num(md.high_24h)} low {_num(md.low_24h)} "
            f"vol {_volume(md.volume_24h)} trades {md.trade_count_24h:,}"
        )
    channels = Channels.of(symbol)
    parts.append(
        f"books {state.rate(channels.orderbook, now):.1f}/s "
        f"trades {state.rate(channels.trades, now):.1f}/s"
    )
    return " | ".join(parts)


# -- I/O ----------------------------------------------------------------------


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def follow(
    redis_url: str,
    symbol: str,
    state: ViewState,
    stop: asyncio.Event,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Feed ``state`` from Redis until ``stop`` is set; the subscriber reconnects by itself."""
    state.source = redact_url(redis_url)
    subscriber = RedisSubscriber(redis_url, [symbol], connection_events=True, publisher_events=True)
    async with subscriber:
        async for message in subscriber.until(stop):
            state.take(message, clock())
            state.malformed = subscriber.malformed


def _fit(console: Console) -> dict[str, int]:
    """The terminal's size now (it may have been resized since the last frame)."""
    width, height = console.size
    return {"width": width, "height": height}


async def watch(
    redis_url: str,
    symbol: str,
    *,
    depth: int = DEFAULT_DEPTH,
    stop: asyncio.Event | None = None,
    console: Console | None = None,
    refresh_hz: float = 8.0,
    plain_interval_s: float = 1.0,
) -> None:
    """Show ``symbol`` live until ``stop`` is set (or the task is cancelled, e.g. Ctrl+C).

    On a terminal: a ``rich`` live view redrawn ``refresh_hz`` times a second.
    Otherwise (pipes, logs, CI): one :func:`plain_line` every ``plain_interval_s``.
    Raises ``RedisUrlError`` for an unusable URL; Redis outages are shown, not raised.
    """
    parse_redis_url(redis_url)  # fail fast on a bad URL, before drawing anything
    symbol = symbol.upper()
    stop = stop if stop is not None else asyncio.Event()
    console = console if console is not None else Console()
    state = ViewState()
    state.source = redact_url(redis_url)
    feeder = asyncio.create_task(follow(redis_url, symbol, state, stop))
    try:
        if console.is_terminal:
            with Live(
                render(state, symbol, depth, **_fit(console)),
                console=console,
                auto_refresh=False,
            ) as live:  # redrawn from this loop: the state is never read from another thread
                while not stop.is_set() and not feeder.done():
                    await _wait(stop, 1.0 / max(refresh_hz, 0.1))
                    live.update(render(state, symbol, depth, **_fit(console)), refresh=True)
        else:
            while not stop.is_set() and not feeder.done():
                await _wait(stop, plain_interval_s)
                console.print(plain_line(state, symbol), highlight=False, soft_wrap=True)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder  # re-raises what ended the feeder, if anything did


# -- command line -------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of a ``watch`` subcommand; defaults come from the config ``run`` reads."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the service's YAML config, for redis_url and symbols (default: as for run)",
    )
    parser.add_argument(
        "--redis-url", help="the Redis the service publishes to (default: the config's redis_url)"
    )
    parser.add_argument(
        "--symbol",
        type=arg_types.symbol,
        help="the symbol to show (default: the config's first symbol)",
    )
    parser.add_argument(
        "--depth", type=arg_types.positive_int, default=DEFAULT_DEPTH, help="levels per side"
    )
    parser.add_argument(
        "--refresh-hz", type=arg_types.positive_float, default=8.0, help="redraws per second"
    )


def run(args: argparse.Namespace) -> int:
    """Watch until Ctrl+C; 0 on a clean exit."""
    redis_url, symbol = args.redis_url, args.symbol
    if redis_url is None or symbol is None:
        from market_data.ops.config import load_config

        config = load_config(args.config)
        redis_url = redis_url or config.redis_url
        symbol = symbol or config.symbols[0]
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(watch(redis_url, symbol, depth=args.depth, refresh_hz=args.refresh_hz))
    return 0
