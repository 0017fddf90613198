"""The terminal view: decoding, accumulation, rendering, and ``watch`` against a real Redis."""

import asyncio
import contextlib
import io
import re
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from rich.console import Console

from market_data.client.redis import HEARTBEAT_CHANNEL, PublisherStatus
from market_data.client.watch import (
    STALE_AFTER_S,
    UNSERVED_AFTER_S,
    Channels,
    RateMeter,
    ViewState,
    follow,
    plain_line,
    render,
    spread_of,
    watch,
)
from market_data.core.state import BookState
from market_data.core.stats import Stats24h
from market_data.embedded_redis import EmbeddedRedis
from market_data.outputs.redis_url import RedisUrlError
from market_data.wire.payloads import market_data_payload, orderbook_payload, trade_payload

SYMBOL = "BTCUSDT"
CHANNELS = Channels.of(SYMBOL)
ASKS = [(101.0, 0.75), (101.25, 2.5), (101.5, 4.0)]
BIDS = [(100.75, 1.25), (100.5, 3.0), (100.25, 0.5)]
NOW = 1000.0


def book(
    state: BookState = BookState.LIVE,
    bids: list[tuple[float, float]] = BIDS,
    asks: list[tuple[float, float]] = ASKS,
    update_id: int = 777,
) -> bytes:
    return orderbook_payload(
        SYMBOL,
        bids,
        asks,
        last_update_id=update_id,
        event_time_ms=1_700_000_000_000,
        now_ms=1_700_000_000_005,
        state=state,
    )


def stats(last: float = 100.9, high: float = 104.5, low: float = 97.25) -> Stats24h:
    return Stats24h(
        last_price=last,
        last_trade_ms=1_700_000_000_000,
        open_price=99.0,
        high=high,
        low=low,
        volume=4321.5,
        quote_volume=432_150.0,
        trade_count=8765,
        window_start_ms=0,
        updated_ms=1_700_000_000_000,
    )


def trade(trade_id: int, price: float, qty: float, buyer_maker: bool) -> bytes:
    return trade_payload(
        SYMBOL,
        trade_id=trade_id,
        price=price,
        quantity=qty,
        timestamp_ms=1_700_000_000_000 + trade_id,
        is_buyer_maker=buyer_maker,
    )


def connected_state() -> ViewState:
    state = ViewState()
    state.set_connected()
    return state


def text_of(state: ViewState, depth: int = 10, now: float = NOW + 0.5) -> str:
    console = Console(record=True, width=160, file=io.StringIO())
    console.print(render(state, SYMBOL, depth, now=now))
    return console.export_text()


def styled_of(state: ViewState) -> str:
    console = Console(
        record=True, width=160, file=io.StringIO(), force_terminal=True, color_system="standard"
    )
    console.print(render(state, SYMBOL, now=NOW + 0.5))
    return console.export_text(styles=True)


def line_index(lines: list[str], needle: str) -> int:
    matches = [
        i
        for i, line in enumerate(lines)
        if re.search(rf"(?<![\d.]){re.escape(needle)}(?!\.?\d)", line)
    ]
    assert len(matches) == 1, (needle, matches)
    return matches[0]


# -- rendering ----------------------------------------------------------------


def test_ladder_has_asks_above_best_ask_nearest_the_middle_then_bids_best_first() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    lines = text_of(state).splitlines()
    rows = [
        line_index(lines, price)
        for price in ("101.5", "101.25", "101", "100.75", "100.5", "100.25")
    ]
    spread_row = line_index(lines, "spread")
    assert rows[:3] == sorted(rows[:3]) and rows[3:] == sorted(rows[3:])
    assert rows[2] < spread_row < rows[3]
    # cumulative sizes grow away from the middle on both sides
    assert "7.25" in lines[rows[0]]  # 0.75 + 2.5 + 4
    assert "4.75" in lines[rows[5]]  # 1.25 + 3 + 0.5


def test_spread_in_basis_points_of_the_mid() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    best_bid, best_ask = BIDS[0][0], ASKS[0][0]
    mid = (best_bid + best_ask) / 2
    expected_bps = (best_ask - best_bid) / mid * 10_000
    text = text_of(state)
    assert f"{expected_bps:.2f} bps" in text
    assert f"mid {mid:g}" in text
    spread = spread_of(best_bid, best_ask)
    assert spread is not None and spread.bps == pytest.approx(expected_bps)
    assert f"spread {expected_bps:.2f} bps" in plain_line(state, SYMBOL, now=NOW)


def test_depth_limits_the_levels_shown() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    text = text_of(state, depth=2)
    assert "101.25" in text and "100.5" in text
    assert "101.5" not in text and "100.25" not in text


def test_bars_are_proportional_to_size() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    lines = text_of(state).splitlines()
    largest = lines[line_index(lines, "101.5")].count("█")  # size 4, the largest
    half = lines[line_index(lines, "100.5")].count("█")  # size 3
    assert largest == 20 and half == 15


def test_syncing_book_is_shown_as_not_live_without_any_level() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(BookState.LIVE), NOW)
    state.apply(CHANNELS.orderbook, book(BookState.SYNCING), NOW + 0.1)
    text = text_of(state)
    assert "SYNCING" in text and "book not live" in text
    for price, _ in (*ASKS, *BIDS):
        assert str(price) not in text
    assert "NOT LIVE" in plain_line(state, SYMBOL, now=NOW)


def test_levels_of_a_book_claiming_not_live_are_never_drawn() -> None:
    """A publisher that sends levels with a waiting state still gets no ladder."""
    payload = msgspec.json.encode(
        {"bids": {"100.75": 1.0}, "asks": {"101": 1.0}, "initialized": True, "state": "waiting"}
    )
    state = connected_state()
    state.apply(CHANNELS.orderbook, payload, NOW)
    text = text_of(state)
    assert "book not live" in text and "100.75" not in text


def test_live_state_is_green_partial_yellow_syncing_red() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(BookState.LIVE), NOW)
    assert re.search(r"\x1b\[[\d;]*42m LIVE ", styled_of(state))
    state.apply(CHANNELS.orderbook, book(BookState.PARTIAL), NOW)
    styled = styled_of(state)
    assert re.search(r"\x1b\[[\d;]*43m PARTIAL ", styled) and "101.25" in styled
    state.apply(CHANNELS.orderbook, book(BookState.SYNCING), NOW)
    assert re.search(r"\x1b\[[\d;]*41m SYNCING ", styled_of(state))


def test_disconnected_redis_hides_the_book_even_after_reconnecting() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    state.set_disconnected("disconnected (ConnectionError: gone)")
    text = text_of(state)
    assert "book not live" in text and "ConnectionError: gone" in text and "101.25" not in text
    state.set_connected()
    assert "101.25" not in text_of(state)  # no fresh book yet
    state.apply(CHANNELS.orderbook, book(), NOW)
    assert "101.25" in text_of(state)


def test_stale_book_is_flagged() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(), NOW)
    assert "stale" not in text_of(state, now=NOW + 1)
    assert "stale" in text_of(state, now=NOW + STALE_AFTER_S + 2)


def test_update_id_age_and_24h_figures() -> None:
    state = connected_state()
    state.apply(CHANNELS.orderbook, book(update_id=424242), NOW)
    state.apply(
        CHANNELS.market_data,
        market_data_payload(SYMBOL, best_bid=100.75, best_ask=101.0, stats=stats(), now_ms=1),
        NOW,
    )
    text = text_of(state, now=NOW + 2.5)
    assert "update id 424242" in text and "2.5 s ago" in text
    assert "104.5" in text and "97.25" in text and "100.9" in text
    assert "4,321.500" in text and "8,765" in text
    line = plain_line(state, SYMBOL, now=NOW)  # logs and CI get the 24h figures too
    assert "24h high 104.5 low 97.25 vol 4,321.500 trades 8,765" in line


def test_trades_newest_first_labelled_and_coloured_by_aggressor() -> None:
    state = connected_state()
    state.apply(CHANNELS.trades, trade(1, 99.11, 0.5, buyer_maker=True), NOW)
    state.apply(CHANNELS.trades, trade(2, 99.22, 0.25, buyer_maker=False), NOW)
    text = text_of(state)
    sell_line = text.splitlines()[line_index(text.splitlines(), "99.11")]
    buy_line = text.splitlines()[line_index(text.splitlines(), "99.22")]
    assert "SELL" in sell_line and "BUY" in buy_line
    assert text.index("99.22") < text.index("99.11")
    styled = styled_of(state)
    assert re.search(r"\x1b\[31m[^\n]*SELL[^\n]*99\.11", styled)
    assert re.search(r"\x1b\[32m[^\n]*BUY[^\n]*99\.22", styled)
    assert "last BUY 0.25@99.22" in plain_line(state, SYMBOL, now=NOW)


def test_rates_are_shown() -> None:
    state = connected_state()
    for i in range(30):
        state.apply(CHANNELS.orderbook, book(update_id=i), NOW + i * 0.1)
    now = NOW + 3.0
    text = text_of(state, now=now)
    assert f"books {state.rate(CHANNELS.orderbook, now):.1f}/s" in text
    assert "books 10.0/s" in text
    assert "received 30 books" in text


# -- accumulation -------------------------------------------------------------


def test_trade_history_is_bounded_and_newest_first() -> None:
    state = ViewState(trade_history=5)
    for i in range(12):
        state.apply(CHANNELS.trades, trade(i, 100 + i, 1.0, buyer_maker=False), NOW)
    assert len(state.trades[SYMBOL]) == 5
    assert [t.trade_id for t in state.last_trades(SYMBOL, 3)] == [11, 10, 9]
    assert state.received(CHANNELS.trades) == 12


def test_rate_meter_averages_over_its_window_and_decays() -> None:
    meter = RateMeter(window_s=5.0)
    for i in range(20):
        meter.add(100.0 + i * 0.1)  # 20 messages over 2 s
    assert meter.rate(102.0) == pytest.approx(20 / 2.0)
    assert meter.rate(110.0) == 0.0
    assert meter.total == 20


def test_rate_meter_counts_only_the_recent_window() -> None:
    meter = RateMeter(window_s=2.0)
    for i in range(100):
        meter.add(100.0 + i * 0.01)  # 100 in second 100
    for i in range(10):
        meter.add(105.0 + i * 0.1)  # 10 in second 105
    # the window keeps whole seconds 105..106: the 10 messages of the last second
    assert meter.rate(106.0) == pytest.approx(10 / 1.0)


def test_malformed_and_unknown_messages_are_counted_not_fatal() -> None:
    state = ViewState()
    assert not state.apply(CHANNELS.orderbook, b"{not json", NOW)
    assert not state.apply(CHANNELS.trades, b'{"price": "x"}', NOW)
    assert not state.apply("other:BTCUSDT", b"{}", NOW)
    assert state.malformed == 3 and not state.books and not state.trades


def test_extra_fields_are_tolerated() -> None:
    state = ViewState()
    payload = msgspec.json.encode({**msgspec.json.decode(book()), "future_field": [1, 2]})
    assert state.apply(CHANNELS.orderbook, payload, NOW)
    assert state.books[SYMBOL].last_update_id == 777
    assert state.book_state(SYMBOL) == "live" and state.book_age(SYMBOL, NOW + 2) == 2.0


# -- against a real Redis -----------------------------------------------------


async def wait_for(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 (polls state that has no event)
            await asyncio.sleep(0.02)


async def wait_for_subscribers(client: aioredis.Redis, channel: str, count: int = 1) -> None:
    async with asyncio.timeout(5):
        while True:
            [(_, subscribers)] = await client.pubsub_numsub(channel)
            if subscribers >= count:
                return
            await asyncio.sleep(0.02)


@asynccontextmanager
async def redis_client(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url)
    try:
        yield client
    finally:
        await client.aclose()


@asynccontextmanager
async def beating(url: str) -> AsyncIterator[None]:
    """Beat ``market_data:heartbeat`` as the service does, so the view trusts its books."""

    async def beat() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            while True:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    await client.set(HEARTBEAT_CHANNEL, b'{"epoch":0}', px=3000)
                    await client.publish(HEARTBEAT_CHANNEL, b'{"epoch":0}')
                await asyncio.sleep(0.3)
        finally:
            await client.aclose()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def running(
    coroutine: Coroutine[Any, Any, None], stop: asyncio.Event
) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coroutine)
    try:
        yield task
    finally:
        stop.set()
        async with asyncio.timeout(5):
            await task


async def test_watch_prints_plain_lines_on_a_non_terminal(redis_server: EmbeddedRedis) -> None:
    output = io.StringIO()
    console = Console(file=output, width=300)
    assert not console.is_terminal
    stop = asyncio.Event()
    async with (
        beating(redis_server.url),
        redis_client(redis_server.url) as client,
        running(
            watch(redis_server.url, "btcusdt", stop=stop, console=console, plain_interval_s=0.1),
            stop,
        ),
    ):
        await wait_for_subscribers(client, CHANNELS.trades)
        await client.publish(CHANNELS.orderbook, book(update_id=9001))
        await client.publish(CHANNELS.trades, trade(5, 100.8, 0.125, buyer_maker=True))
        await wait_for(lambda: "SELL" in output.getvalue())
    last = output.getvalue().splitlines()[-1]
    assert last.startswith("BTCUSDT | live | bid 100.75 ask 101 |")
    assert "u=9001" in last and "last SELL 0.125@100.8" in last


async def test_watch_draws_a_live_view_on_a_terminal(redis_server: EmbeddedRedis) -> None:
    output = io.StringIO()
    console = Console(file=output, width=160, force_terminal=True, color_system=None)
    stop = asyncio.Event()
    async with (
        beating(redis_server.url),
        redis_client(redis_server.url) as client,
        running(watch(redis_server.url, SYMBOL, stop=stop, console=console, refresh_hz=50), stop),
    ):
        await wait_for_subscribers(client, CHANNELS.orderbook)
        await client.publish(CHANNELS.orderbook, book())
        await wait_for(lambda: "101.25" in output.getvalue())
    assert "LIVE" in output.getvalue() and "spread" in output.getvalue()


async def test_follow_reads_the_stored_market_data_first(redis_server: EmbeddedRedis) -> None:
    state, stop = ViewState(), asyncio.Event()
    async with beating(redis_server.url), redis_client(redis_server.url) as client:
        payload = market_data_payload(SYMBOL, best_bid=1.0, best_ask=2.0, stats=stats(), now_ms=1)
        await client.set(CHANNELS.market_data, payload, ex=300)
        async with running(follow(redis_server.url, SYMBOL, state, stop), stop):
            await wait_for(lambda: state.connected)
            assert state.market_data[SYMBOL].high_24h == 104.5
            assert state.received(CHANNELS.market_data) == 0  # a snapshot, not a message


async def test_follow_shows_an_outage_and_recovers(redis_server: EmbeddedRedis) -> None:
    state, stop = ViewState(), asyncio.Event()
    async with (
        beating(redis_server.url),
        running(follow(redis_server.url, SYMBOL, state, stop), stop),
    ):
        async with redis_client(redis_server.url) as client:
            await wait_for_subscribers(client, CHANNELS.orderbook)
            await client.publish(CHANNELS.orderbook, book())
        await wait_for(lambda: SYMBOL in state.books)
        redis_server.kill()
        await wait_for(lambda: not state.connected)
        text = text_of(state)
        assert "disconnected" in text and "book not live" in text and "101.25" not in text
        redis_server.start()
        await wait_for(lambda: state.connected, within_s=8)
        async with redis_client(redis_server.url) as client:
            await wait_for_subscribers(client, CHANNELS.orderbook)
            await client.publish(CHANNELS.orderbook, book(update_id=31337))
        await wait_for(lambda: SYMBOL in state.books)
        assert "update id 31337" in text_of(state)


async def test_a_silent_publisher_turns_the_book_not_live(redis_server: EmbeddedRedis) -> None:
    """After a kill -9 the last book still says live: the missing heartbeat says otherwise."""
    state, stop = ViewState(), asyncio.Event()
    async with running(follow(redis_server.url, SYMBOL, state, stop), stop):
        async with beating(redis_server.url):
            await wait_for(lambda: state.connected)
            async with redis_client(redis_server.url) as client:
                await wait_for_subscribers(client, CHANNELS.orderbook)
                await client.publish(CHANNELS.orderbook, book())
            await wait_for(lambda: SYMBOL in state.books and state.connected)
            assert "101.25" in text_of(state)
        await wait_for(lambda: not state.connected, within_s=6)  # the beats stopped
        text = text_of(state)
        assert "publisher silent" in text and "101.25" not in text


async def test_the_password_is_never_shown() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    url = f"redis://user:hunter2secret@127.0.0.1:{port}/0"
    state, stop = ViewState(), asyncio.Event()
    async with running(follow(url, SYMBOL, state, stop), stop):
        await wait_for(lambda: "disconnected" in state.connection_note)
    text = text_of(state)
    assert "hunter2secret" not in text and "user:***@127.0.0.1" in text
    assert "hunter2secret" not in plain_line(state, SYMBOL)


async def test_watch_rejects_an_unusable_url_with_the_project_error() -> None:
    with pytest.raises(RedisUrlError) as raised:
        await watch("http://:pw@host/0", SYMBOL, console=Console(file=io.StringIO()))
    assert "pw" not in str(raised.value)


async def test_cancelling_watch_closes_its_connections(redis_server: EmbeddedRedis) -> None:
    """What Ctrl+C does under ``asyncio.run``: the task is cancelled."""
    console = Console(file=io.StringIO())
    task = asyncio.create_task(watch(redis_server.url, SYMBOL, console=console))
    async with redis_client(redis_server.url) as client:
        await wait_for_subscribers(client, CHANNELS.orderbook)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            while (await client.pubsub_numsub(CHANNELS.orderbook))[0][1]:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


def test_an_80x24_terminal_shows_whole_prices_and_as_many_bids_as_asks() -> None:
    bids = [(round(64000.5 - i * 0.1, 1), round(1.234 + i, 3)) for i in range(20)]
    asks = [(round(64000.6 + i * 0.1, 1), 0.5 + i) for i in range(20)]
    state = ViewState()
    state.set_connected()
    state.apply(CHANNELS.orderbook, book(bids=bids, asks=asks), now=0.0)
    state.apply(CHANNELS.market_data, market_data_payload(
        SYMBOL, best_bid=bids[0][0], best_ask=asks[0][0], stats=stats(), now_ms=1
    ), now=0.0)  # fmt: skip
    console = Console(
        width=80, height=24, file=io.StringIO(), force_terminal=True, color_system=None
    )
    console.print(render(state, SYMBOL, 15, now=0.5, width=80, height=24))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert len(text.splitlines()) <= 24
    assert "…" not in text
    shown_bids = [p for p, _ in bids if f" {p:g} " in text]
    shown_asks = [p for p, _ in asks if f" {p:g} " in text]
    assert len(shown_bids) == len(shown_asks) == (24 - 10) // 2
    assert shown_bids == [p for p, _ in bids[: len(shown_bids)]]  # the best ones


def test_a_symbol_the_service_does_not_serve_is_named_as_such() -> None:
    """Heartbeats but never a book (not even a not-live one): probably not served."""
    state = ViewState()
    state.take(PublisherStatus(True), NOW)
    assert "no book received yet" in plain_line(state, "XRPUSDT", now=NOW + 5)
    line = plain_line(state, "XRPUSDT", now=NOW + UNSERVED_AFTER_S)
    assert "no book of XRPUSDT in 10s while the service is alive" in line
    state.take(PublisherStatus(False, "no heartbeat for 3.0s"), NOW + 11)
    state.take(PublisherStatus(True), NOW + 20)  # heard again: its time starts again
    assert "no book received yet" in plain_line(state, "XRPUSDT", now=NOW + 25)
