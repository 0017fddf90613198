"""The Redis publisher against a real redis-server (started per test on a free port)."""

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import redis.asyncio as aioredis

from market_data.embedded_redis import EmbeddedRedis
from market_data.outputs.redis import REFUSALS_END_AFTER_S, RedisSink
from tests.support import wait_for

SINK_LOGGER = "market_data.outputs.redis"


class Subscriber:
    """A redis-py pub/sub client that collects (channel, payload) pairs."""

    def __init__(self, client: aioredis.Redis, pubsub: aioredis.client.PubSub) -> None:
        self.client = client
        self.pubsub = pubsub

    async def receive(self, count: int, within_s: float = 5.0) -> list[tuple[bytes, bytes]]:
        received: list[tuple[bytes, bytes]] = []
        async with asyncio.timeout(within_s):
            while len(received) < count:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    received.append((message["channel"], message["data"]))
        return received

    async def nothing_more(self, within_s: float = 0.2) -> list[tuple[bytes, bytes]]:
        """Whatever else arrives within ``within_s`` (expected: nothing)."""
        extra: list[tuple[bytes, bytes]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while loop.time() < deadline:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
            if message is not None:
                extra.append((message["channel"], message["data"]))
        return extra


@asynccontextmanager
async def subscribed(url: str, *channels: str) -> AsyncIterator[Subscriber]:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(*channels)
        confirmed = 0
        async with asyncio.timeout(5):
            while confirmed < len(channels):
                message = await pubsub.get_message(timeout=0.1)
                if message is not None and message["type"] == "subscribe":
                    confirmed += 1
        yield Subscriber(client, pubsub)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def wait_until(condition: Callable[[], bool], within_s: float = 5.0) -> None:
    """Poll ``condition`` (sink stats have no event to wait on) until true or timeout."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def fast_reconnect_sink(url: str, **options: float) -> RedisSink:
    settings = {"reconnect_initial_s": 0.02, "reconnect_max_s": 0.1, "connect_timeout_s": 1.0}
    settings.update(options)
    return RedisSink(url, **settings)  # type: ignore[arg-type]


def sink_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SINK_LOGGER and r.levelno == level]


async def test_each_kind_goes_to_its_channel_with_the_exact_bytes(
    redis_server: EmbeddedRedis,
) -> None:
    book = b'{"s":"BTCUSDT","bids":[["1.0","2"]],"state":"live"}'
    stats = b'{"s":"BTCUSDT","last":"64000.1"}'
    trades = [b'{"t":1,"p":"1.5"}', b'{"t":2,"p":"1.6"}', b"\x00binary\r\n$3\r\n"]
    channels = ("orderbook:BTCUSDT", "market_data:BTCUSDT", "trades:BTCUSDT")
    async with subscribed(redis_server.url, *channels) as subscriber:
        async with RedisSink(redis_server.url) as sink:
            sink.publish_book("BTCUSDT", book)
            sink.publish_market_data("BTCUSDT", stats)
            for trade in trades:
                sink.publish_trade("BTCUSDT", trade)
            received = await subscriber.receive(5)
        assert sorted(received) == sorted(
            [(b"orderbook:BTCUSDT", book), (b"market_data:BTCUSDT", stats)]
            + [(b"trades:BTCUSDT", trade) for trade in trades]
        )
        assert await subscriber.nothing_more() == []
    assert sink.stats.published_books == 1
    assert sink.stats.published_market_data == 1
    assert sink.stats.published_trades == 3
    assert sink.stats.errors == 0
    assert sink.stats.last_batch_latency_s is not None and sink.stats.last_batch_latency_s > 0


async def test_market_data_is_stored_with_a_ttl(redis_server: EmbeddedRedis) -> None:
    async with RedisSink(redis_server.url) as sink:
        sink.publish_market_data("ETHUSDT", b"first")
        sink.publish_market_data("ETHUSDT", b"second")
        await wait_until(lambda: sink.stats.published_market_data >= 1)
    async with aioredis.Redis.from_url(redis_server.url) as client:
        assert await client.get("market_data:ETHUSDT") == b"second"
        ttl = await client.ttl("market_data:ETHUSDT")
    assert 0 < ttl <= 300


async def test_symbols_are_upper_case_in_channel_names(redis_server: EmbeddedRedis) -> None:
    async with subscribed(redis_server.url, "orderbook:BTCUSDT") as subscriber:
        async with RedisSink(redis_server.url) as sink:
            sink.publish_book("btcusdt", b"book")
            assert await subscriber.receive(1) == [(b"orderbook:BTCUSDT", b"book")]


async def test_books_are_conflated_while_the_writer_is_busy(redis_server: EmbeddedRedis) -> None:
    sink = RedisSink(redis_server.url)
    async with subscribed(redis_server.url, "orderbook:BTCUSDT", "orderbook:ETHUSDT") as sub:
        for sequence in range(1000):  # the writer is not running yet: nothing drains
            sink.publish_book("BTCUSDT", b"book-%d" % sequence)
        sink.publish_book("ETHUSDT", b"eth-only")
        assert sink.stats.conflated_books == 999
        assert sink.queue_depth == 2
        sink.start()
        try:
            received = await sub.receive(2)
            assert sorted(received) == [
                (b"orderbook:BTCUSDT", b"book-999"),
                (b"orderbook:ETHUSDT", b"eth-only"),
            ]
            assert await sub.nothing_more() == []
        finally:
            await sink.aclose()
    assert sink.stats.published_books == 2
    assert sink.queue_depth == 0


async def test_market_data_is_conflated(redis_server: EmbeddedRedis) -> None:
    sink = RedisSink(redis_server.url)
    async with subscribed(redis_server.url, "market_data:BTCUSDT") as subscriber:
        for sequence in range(50):
            sink.publish_market_data("BTCUSDT", b"stats-%d" % sequence)
        async with sink:
            assert await subscriber.receive(1) == [(b"market_data:BTCUSDT", b"stats-49")]
            assert await subscriber.nothing_more() == []
    assert sink.stats.conflated_market_data == 49


async def test_trades_keep_their_order_and_overflow_drops_the_oldest(
    redis_server: EmbeddedRedis,
) -> None:
    sink = RedisSink(redis_server.url, max_pending_trades=10)
    async with subscribed(redis_server.url, "trades:BTCUSDT", "trades:ETHUSDT") as subscriber:
        for trade_id in range(25):
            symbol = "BTCUSDT" if trade_id % 2 else "ETHUSDT"
            sink.publish_trade(symbol, b"%d" % trade_id)
        assert sink.stats.dropped_trades == 15
        assert sink.queue_depth == 10
        async with sink:
            received = await subscriber.receive(10)
            assert await subscriber.nothing_more() == []
    btc = [int(data) for channel, data in received if channel == b"trades:BTCUSDT"]
    eth = [int(data) for channel, data in received if channel == b"trades:ETHUSDT"]
    assert btc == [15, 17, 19, 21, 23]
    assert eth == [16, 18, 20, 22, 24]
    assert sink.stats.published_trades == 10


async def test_trades_keep_their_order_across_batches(redis_server: EmbeddedRedis) -> None:
    async with subscribed(redis_server.url, "trades:BTCUSDT") as subscriber:
        async with RedisSink(redis_server.url) as sink:
            # Connected first: trades published while it connects all go in its first batch.
            await wait_for(lambda: sink.stats.connected, what="the sink's connection")
            for trade_id in range(2000):  # a live stream: the writer sends many small batches
                sink.publish_trade("BTCUSDT", b"%d" % trade_id)
                if trade_id % 7 == 0:
                    await asyncio.sleep(0)
            streamed = await subscriber.receive(2000)
    assert [int(data) for _, data in streamed] == list(range(2000))
    assert sink.stats.batches > 1
    assert sink.stats.dropped_trades == 0


async def test_aclose_flushes_what_is_pending(redis_server: EmbeddedRedis) -> None:
    async with subscribed(redis_server.url, "trades:BTCUSDT") as subscriber:
        sink = RedisSink(redis_server.url)
        sink.start()
        for trade_id in range(500):
            sink.publish_trade("BTCUSDT", b"%d" % trade_id)
        await sink.aclose()
        assert sink.queue_depth == 0
        assert not sink.connected
        received = await subscriber.receive(500)
    assert [int(data) for _, data in received] == list(range(500))


async def test_aclose_gives_up_after_its_timeout_when_redis_is_down() -> None:
    with EmbeddedRedis() as server:
        url = server.url
    sink = fast_reconnect_sink(url)
    sink.start()
    sink.publish_book("BTCUSDT", b"never sent")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await sink.aclose(flush_timeout_s=0.3)
    assert loop.time() - started < 2.0
    assert sink.queue_depth == 1
    assert sink.stats.published_books == 0


async def test_outage_keeps_accepting_logs_once_and_republishes_latest_state(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=SINK_LOGGER)
    # Reconnect delays of 0.5-1 s leave the test time to subscribe to the restarted Redis.
    sink = fast_reconnect_sink(redis_server.url, reconnect_initial_s=1.0, reconnect_max_s=1.0)
    async with sink:
        channels = ("orderbook:BTCUSDT", "orderbook:ETHUSDT")
        async with subscribed(redis_server.url, *channels) as subscriber:
            sink.publish_book("BTCUSDT", b"btc-1")
            sink.publish_book("ETHUSDT", b"eth-1")
            sink.publish_market_data("ETHUSDT", b"eth-stats-1")
            await subscriber.receive(2)
        redis_server.stop()

        for sequence in range(2, 500):  # never raises, never blocks
            sink.publish_book("BTCUSDT", b"btc-%d" % sequence)
            sink.publish_trade("BTCUSDT", b"trade-%d" % sequence)
            if sequence % 50 == 0:
                await asyncio.sleep(0.01)
        await wait_until(lambda: sink.stats.errors >= 2)
        assert not sink.connected
        assert sink.stats.outages == 1
        assert sink.stats.last_error
        assert await sink.ping() is not None
        warnings = sink_records(caplog, logging.WARNING)
        assert len(warnings) == 1
        assert "unavailable" in warnings[0].getMessage()

        redis_server.start()
        channels_after = ("orderbook:BTCUSDT", "orderbook:ETHUSDT", "trades:BTCUSDT")
        async with subscribed(redis_server.url, *channels_after) as subscriber:
            received = await subscriber.receive(2 + 498, within_s=10)
        books = [item for item in received if item[0].startswith(b"orderbook:")]
        trades = [data for channel, data in received if channel == b"trades:BTCUSDT"]
        assert sorted(books) == [
            (b"orderbook:BTCUSDT", b"btc-499"),
            (b"orderbook:ETHUSDT", b"eth-1"),
        ]
        assert trades == [b"trade-%d" % sequence for sequence in range(2, 500)]
        async with aioredis.Redis.from_url(redis_server.url) as client:
            assert await client.get("market_data:ETHUSDT") == b"eth-stats-1"
        assert sink.connected
        assert await sink.ping() is None

    assert len(sink_records(caplog, logging.WARNING)) == 1
    ended = [r.getMessage() for r in sink_records(caplog, logging.INFO) if "back" in r.getMessage()]
    assert len(ended) == 1
    assert f"{sink.stats.errors} errors" in ended[0]


async def test_two_outages_are_two_warnings(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with fast_reconnect_sink(redis_server.url) as sink:
        for outage in range(2):
            sink.publish_book("BTCUSDT", b"before-%d" % outage)
            await wait_until(lambda: sink.connected and sink.queue_depth == 0)
            redis_server.kill()
            sink.publish_book("BTCUSDT", b"during-%d" % outage)
            await wait_until(lambda: not sink.connected)
            redis_server.start()
            await wait_until(lambda: sink.connected and sink.queue_depth == 0)
    assert sink.stats.outages == 2
    assert len(sink_records(caplog, logging.WARNING)) == 2
    assert len([r for r in sink_records(caplog, logging.INFO) if "back" in r.getMessage()]) == 2


async def test_the_end_of_an_outage_names_the_trades_it_dropped(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with fast_reconnect_sink(redis_server.url, max_pending_trades=5) as sink:
        await wait_until(lambda: sink.connected)
        redis_server.kill()
        sink.publish_book("BTCUSDT", b"x")
        await wait_until(lambda: not sink.connected)
        for trade_id in range(12):
            sink.publish_trade("BTCUSDT", b"%d" % trade_id)
        redis_server.start()
        await wait_until(lambda: sink.connected and sink.queue_depth == 0)
    back = [r for r in caplog.records if "back at" in r.getMessage()]
    assert len(back) == 1 and back[0].levelno == logging.WARNING
    assert "7 trades were dropped (the trade queue was full)" in back[0].getMessage()


async def test_starting_without_redis_then_redis_appears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    server = EmbeddedRedis()
    server.start()
    server.stop()  # a free port nobody listens on, kept for the later start
    try:
        async with fast_reconnect_sink(server.url) as sink:
            sink.publish_book("BTCUSDT", b"waiting")
            await wait_until(lambda: sink.stats.errors >= 3)
            assert await sink.ping() == "disconnected: connection refused"
            server.start()
            await wait_until(lambda: sink.stats.published_books == 1)
    finally:
        server.stop()
    assert len(sink_records(caplog, logging.WARNING)) == 1


async def test_password_is_used_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "pw-9f2c1e7d"
    with EmbeddedRedis(password=secret) as server:
        async with fast_reconnect_sink(server.url) as sink:
            async with subscribed(server.url, "orderbook:BTCUSDT") as subscriber:
                sink.publish_book("BTCUSDT", b"authed")
                assert await subscriber.receive(1) == [(b"orderbook:BTCUSDT", b"authed")]
            server.stop()
            sink.publish_book("BTCUSDT", b"during outage")
            await wait_until(lambda: sink.stats.errors >= 2)
            server.start()
            await wait_until(lambda: sink.connected and sink.queue_depth == 0)
            assert secret not in sink.url
            assert secret not in repr(sink.stats)
    assert sink.stats.outages == 1
    assert caplog.records
    assert secret not in caplog.text


async def test_wrong_password_is_an_outage_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with EmbeddedRedis(password="the-right-one") as server:
        wrong_url = f"redis://:wrong-guess-123@127.0.0.1:{server.port}/0"
        async with fast_reconnect_sink(wrong_url) as sink:
            sink.publish_book("BTCUSDT", b"x")
            await wait_until(lambda: sink.stats.errors >= 2)
    assert sink.stats.published_books == 0
    assert sink.stats.last_error is not None and "WRONGPASS" in sink.stats.last_error
    assert "wrong-guess-123" not in caplog.text + sink.stats.last_error
    warnings = [r.getMessage() for r in sink_records(caplog, logging.WARNING)]
    assert len([message for message in warnings if "unavailable" in message]) == 1
    assert any("closed with 1 items unsent" in message for message in warnings)


async def test_an_outage_that_turns_into_a_refusal_says_so(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis comes back with a password the URL lacks: the log names NOAUTH, not only
    the first cause ("connection closed") of what looks like one long outage."""
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with fast_reconnect_sink(redis_server.url) as sink:
        await wait_until(lambda: sink.connected)
        redis_server.kill()
        sink.publish_book("BTCUSDT", b"x")  # an idle writer learns of the outage by sending
        await wait_until(lambda: sink.stats.outages == 1 and sink.stats.errors >= 2)
        with EmbeddedRedis(port=redis_server.port, password="now-required-1"):
            await wait_until(lambda: "NOAUTH" in (sink.stats.last_error or ""))
            warnings = [r.getMessage() for r in sink_records(caplog, logging.WARNING)]
    assert len(warnings) == 2 and "unavailable" in warnings[0]
    assert "still unavailable" in warnings[1] and "handshake refused: NOAUTH" in warnings[1]


async def test_acl_user_and_database_from_the_url(redis_server: EmbeddedRedis) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.execute_command(
            "ACL", "SETUSER", "feeder", "on", ">feeder-pw", "allkeys", "allchannels", "+@all"
        )
        url = f"redis://feeder:feeder-pw@127.0.0.1:{redis_server.port}/3"
        async with RedisSink(url) as sink:
            sink.publish_market_data("BTCUSDT", b"in db 3")
            await wait_until(lambda: sink.stats.published_market_data == 1)
        assert await admin.get("market_data:BTCUSDT") is None
        await admin.select(3)
        assert await admin.get("market_data:BTCUSDT") == b"in db 3"
        assert sink.stats.errors == 0


async def test_refused_commands_are_counted_not_published_and_logged_once(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.execute_command(
            "ACL", "SETUSER", "publisher", "on", ">pub-pw", "allkeys", "allchannels",
            "-@all", "+publish", "+ping",
        )  # fmt: skip
    url = f"redis://publisher:pub-pw@127.0.0.1:{redis_server.port}/0"
    async with RedisSink(url) as sink:
        for sequence in range(5):
            sink.publish_market_data("BTCUSDT", b"%d" % sequence)
            sink.publish_book("BTCUSDT", b"%d" % sequence)
            await wait_until(lambda: sink.queue_depth == 0)
    assert sink.stats.errors == 5  # each SET refused, each PUBLISH accepted
    assert sink.stats.last_error is not None and "NOPERM" in sink.stats.last_error
    assert sink.stats.published_books == 5
    # Its key was never stored: refused, so not published (nor kept to republish).
    assert (sink.stats.published_market_data, sink.stats.refused_market_data) == (0, 5)
    assert sink.stats.refusing is not None and "NOPERM" in sink.stats.refusing
    assert len(sink_records(caplog, logging.WARNING)) == 1


async def test_a_redis_out_of_memory_is_not_ready_until_it_takes_writes_again(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """PING still answers while SET and XADD are refused: the key goes stale and the
    trade stream gets holes. Counted, logged at start and end, and /ready says so."""
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with (
        aioredis.Redis.from_url(redis_server.url) as admin,
        RedisSink(redis_server.url) as sink,
    ):
        sink.publish_trade("BTCUSDT", b'{"trade_id":1}')
        sink.publish_market_data("BTCUSDT", b"first")
        await wait_until(lambda: sink.stats.published_market_data == 1)
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.config_set("maxmemory", "1")
        sink.publish_trade("BTCUSDT", b'{"trade_id":2}')
        sink.publish_market_data("BTCUSDT", b"second")
        sink.publish_book("BTCUSDT", b"book")  # PUBLISH needs no memory: it goes out
        await wait_until(lambda: sink.stats.refused_market_data == 1)
        stats = sink.stats
        assert (stats.refused_trades, stats.published_trades) == (1, 1)
        assert (stats.published_market_data, stats.published_books) == (1, 1)
        problem = await sink.ping()
        assert problem is not None and problem.startswith("refusing writes: OOM")
        assert await sink.ping() == problem  # however many PINGs it answers
        for n in range(3):  # books alone (PUBLISH needs no memory) go through: still refusing
            sink.publish_book("BTCUSDT", b"book %d" % n)
            await wait_until(lambda: sink.queue_depth == 0)
        assert await sink.ping() == problem
        sink.gate = lambda: False  # a standby writes nothing: nothing to say about writes
        assert await sink.ping() is None
        sink.gate = None
        await admin.config_set("maxmemory", "0")
        sink.publish_market_data("BTCUSDT", b"third")
        await wait_until(lambda: sink.stats.published_market_data == 2)
        assert await admin.get("market_data:BTCUSDT") == b"third"
        # It takes writes again: the episode ends once nothing was refused for a while.
        async with asyncio.timeout(REFUSALS_END_AFTER_S + 3):
            while sink.stats.refusing is not None:
                sink.publish_market_data("BTCUSDT", b"more")
                await asyncio.sleep(0.2)
        assert await sink.ping() is None
    warnings = [r.getMessage() for r in sink_records(caplog, logging.WARNING)]
    assert len(warnings) == 2
    assert "refuses commands: OOM" in warnings[0]
    assert "takes writes again (2 payloads refused" in warnings[1]


async def test_ping_reports_health(redis_server: EmbeddedRedis) -> None:
    sink = fast_reconnect_sink(redis_server.url)
    assert await sink.ping() == "publisher not running"
    async with sink:
        await wait_until(lambda: sink.connected)
        assert await sink.ping() is None
        redis_server.kill()
        first = await sink.ping()  # the PING itself finds the dead connection
        assert first is not None and first.startswith("disconnected: ")
        reason = await sink.ping()
        assert reason is not None and reason.startswith("disconnected")


def test_enqueue_never_needs_a_loop_or_raises() -> None:
    sink = RedisSink("redis://127.0.0.1:1/0", max_pending_trades=3)
    for sequence in range(10):
        sink.publish_book("BTCUSDT", b"%d" % sequence)
        sink.publish_market_data("BTCUSDT", b"%d" % sequence)
        sink.publish_trade("BTCUSDT", b"%d" % sequence)
    assert sink.queue_depth == 1 + 1 + 3
    assert sink.stats.conflated == 18
    assert sink.stats.dropped_trades == 7


def test_bad_url_is_rejected_without_the_password() -> None:
    with pytest.raises(ValueError):
        RedisSink("redis://127.0.0.1:6379/0", max_pending_trades=0)
    from market_data.outputs.redis_url import RedisUrlError

    with pytest.raises(RedisUrlError) as caught:
        RedisSink("http://:topsecret@127.0.0.1:6379/0")
    assert "topsecret" not in str(caught.value)


@asynccontextmanager
async def frozen(server: EmbeddedRedis) -> AsyncIterator[None]:
    """Redis stopped with SIGSTOP: connections stay open, nothing is answered."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_frozen_redis_is_an_outage_after_the_io_timeout(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOGGER)
    async with fast_reconnect_sink(redis_server.url, io_timeout_s=0.3) as sink:
        await wait_until(lambda: sink.connected)
        async with frozen(redis_server):
            sink.publish_book("BTCUSDT", b"while frozen")
            await wait_until(lambda: sink.stats.errors >= 1)
            assert sink.stats.last_error == "timed out"
            assert sink.queue_depth == 1  # put back, not lost
        await wait_until(lambda: sink.stats.published_books == 1)
    assert sink.stats.outages == 1


async def test_aclose_during_a_stuck_batch_keeps_it_counted(redis_server: EmbeddedRedis) -> None:
    sink = fast_reconnect_sink(redis_server.url, io_timeout_s=30.0)
    sink.start()
    await wait_until(lambda: sink.connected)
    async with frozen(redis_server):
        sink.publish_book("BTCUSDT", b"stuck")
        sink.publish_trade("BTCUSDT", b"stuck trade")
        await wait_until(lambda: sink.queue_depth == 0)  # taken by the writer, now in flight
        await sink.aclose(flush_timeout_s=0.3)
        assert sink.queue_depth == 2
        assert sink.stats.published == 0


async def test_trades_go_to_a_stream_too_and_unheard_publishes_are_counted(
    redis_server: EmbeddedRedis,
) -> None:
    """With nobody subscribed a PUBLISH reaches no one; the stream still holds the trade."""
    async with RedisSink(redis_server.url, trade_stream_maxlen=1000) as sink:
        for i in range(5):
            sink.publish_trade("btcusdt", b'{"trade_id":%d}' % i)
        sink.publish_book("BTCUSDT", b"{}")
        while sink.stats.published_trades < 5 or sink.stats.published_books < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert (sink.stats.unheard_trades, sink.stats.unheard_books) == (5, 1)
        assert sink.stats.streamed_trades == 5
    client = aioredis.from_url(redis_server.url)
    try:
        entries = await client.xrange("trades:BTCUSDT")
        assert [fields[b"trade"] for _, fields in entries] == [
            b'{"trade_id":%d}' % i for i in range(5)
        ]
        # A consumer that saw the first two resumes after the second's id.
        rest = await client.xread({"trades:BTCUSDT": entries[1][0]})
        assert [f[b"trade"] for _, f in rest[0][1]] == [b'{"trade_id":%d}' % i for i in (2, 3, 4)]
    finally:
        await client.aclose()


async def test_the_trade_stream_can_be_turned_off(redis_server: EmbeddedRedis) -> None:
    async with RedisSink(redis_server.url, trade_stream_maxlen=0) as sink:
        sink.publish_trade("ETHUSDT", b"{}")
        while sink.stats.published_trades < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        assert sink.stats.streamed_trades == 0
    client = aioredis.from_url(redis_server.url)
    try:
        assert await client.exists("trades:ETHUSDT") == 0
    finally:
        await client.aclose()


async def test_a_closed_gate_sends_nothing_and_drops_what_the_ended_epoch_queued(
    redis_server: EmbeddedRedis,
) -> None:
    """A lapsed lease: neither the queue nor the outage republish may go out later."""
    holding = [True]
    sink = fast_reconnect_sink(redis_server.url)
    sink.gate = lambda: holding[0]
    async with sink:
        channels = ("orderbook:BTCUSDT", "trades:BTCUSDT")
        async with subscribed(redis_server.url, *channels) as subscriber:
            sink.publish_book("BTCUSDT", b"epoch-1-book")
            await subscriber.receive(1)
            redis_server.stop()
            sink.publish_trade("BTCUSDT", b"epoch-1-trade")
            sink.publish_book("BTCUSDT", b"epoch-1-later")
            await wait_until(lambda: sink.stats.outages == 1)
            holding[0] = False  # the lease lapses while Redis is away
        redis_server.start()
        async with subscribed(redis_server.url, *channels) as subscriber:
            await wait_until(lambda: sink.connected)
            assert await sink.ping() is None  # a standby's health pings are answered
            assert await subscriber.nothing_more(0.5) == []  # held, neither sent nor dropped
            sink.discard_ended_epoch()  # the engine's call when the role ends
            assert sink.stats.discarded_trades == 1
            holding[0] = True  # a new epoch: its own payloads go out
            sink.publish_trade("BTCUSDT", b"epoch-2-trade")
            assert await subscriber.receive(1) == [(b"trades:BTCUSDT", b"epoch-2-trade")]
            assert await subscriber.nothing_more(0.3) == []


async def test_a_lease_that_comes_back_under_its_epoch_sends_what_waited(
    redis_server: EmbeddedRedis,
) -> None:
    """A late renewal closes the gate for a moment: nothing is dropped meanwhile."""
    holding = [False]
    async with fast_reconnect_sink(redis_server.url) as sink:
        sink.gate = lambda: holding[0]
        async with subscribed(redis_server.url, "trades:BTCUSDT") as subscriber:
            sink.publish_trade("BTCUSDT", b"t1")
            assert await subscriber.nothing_more(0.3) == []
            holding[0] = True
            assert await subscriber.receive(1) == [(b"trades:BTCUSDT", b"t1")]
        assert sink.stats.discarded_trades == 0


def test_discarding_counts_the_trades_and_empties_the_queue() -> None:
    sink = RedisSink("redis://127.0.0.1:1")
    sink.publish_trade("BTCUSDT", b"a")
    sink.publish_trade("BTCUSDT", b"b")
    sink.publish_book("BTCUSDT", b"book")
    sink.discard_ended_epoch()
    assert (sink.queue_depth, sink.stats.discarded_trades) == (0, 2)
    sink.discard_ended_epoch()  # nothing left: nothing counted twice
    assert sink.stats.discarded_trades == 2
