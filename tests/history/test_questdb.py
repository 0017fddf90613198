"""The QuestDB output against a real line-protocol receiver: tables, types, outages."""

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from market_data.history.questdb import QuestDbOutput
from market_data.history.schema.rows import Chunk, RowBuilder, book_rows
from market_data.history.stores import RowFeed
from tests.history.ilp_receiver import Receiver, app
from tests.history.store import T0_MS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    state = Receiver()
    runner = web.AppRunner(app(state))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield state, port
    finally:
        await runner.cleanup()


class Counter:
    """A store that only counts the rows it is given."""

    def __init__(self) -> None:
        self.rows = 0

    def add(self, chunk: Chunk) -> None:
        kind, symbol, columns = chunk
        if kind == "incremental_book_L2":  # compact: a value per event, rows per level
            columns = book_rows(symbol, columns)
        self.rows += len(columns[0])

    def flush(self, now_ns: int, force: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def feed(output: QuestDbOutput, seconds: int) -> int:
    """Rows for ``seconds`` of one depth event and one trade a second; returns how many."""
    counter = Counter()
    rows = RowFeed(RowBuilder(), [output, counter])
    builder = rows.builder
    builder.on_block(T0_MS * 1_000_000, "BTCUSDT", T0_MS, 100, [(99.0, 1.0)], [(101.0, 2.0)])
    for second in range(seconds):
        t_ms = T0_MS + 1000 * second + 10
        now = t_ms * 1_000_000
        builder.on_applied(now, "BTCUSDT", t_ms, 101 + second, [(99.1, 1.0)], [(100.9, 2.0)])
        builder.on_top(now, "BTCUSDT", t_ms, [(99.1, 1.0), (99.0, 1.0)], [(100.9, 2.0)])
        builder.on_trade(now, "BTCUSDT", 1 + second, 100.0, 0.5, t_ms, second % 2 == 0)
        rows.flush(now)
    return counter.rows


async def wait(predicate: object, within: float = 10.0) -> None:
    assert callable(predicate)
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_every_row_arrives_typed_with_designated_timestamp(
    receiver: tuple[Receiver, int], tmp_path: Path
) -> None:
    state, port = receiver
    output = QuestDbOutput(f"http::addr=127.0.0.1:{port};protocol_version=1;")
    feed(output, 30)
    await wait(lambda: output.sent >= 30 + 30 * 2 + 2 and not output.pending)
    await asyncio.to_thread(output.close)
    assert not state.errors
    trades = [r for r in state.rows if r.table == "trades"]
    assert len(trades) == 30
    t = trades[0]
    assert t.tags["exchange"] == "binance-futures" and t.tags["symbol"] == "BTCUSDT"
    assert t.tags["side"] in ("buy", "sell")
    assert t.fields["id"] == "1" and t.fields["price"] == 100.0 and t.fields["amount"] == 0.5
    assert t.timestamp_ns == (T0_MS + 10) * 1_000_000  # the trade time
    assert t.fields["local_timestamp"] == ("timestamp_us", (T0_MS + 10) * 1000)
    book = [r for r in state.rows if r.table == "incremental_book_L2"]
    assert book[0].fields["is_snapshot"] is True and book[-1].fields["is_snapshot"] is False
    assert {r.tags["side"] for r in book} == {"bid", "ask"}
    snaps = [r for r in state.rows if r.table == "book_snapshot_10"]
    assert snaps and "asks_0_price" in snaps[0].fields


async def test_an_outage_keeps_rows_retries_and_bounds_the_buffer(
    receiver: tuple[Receiver, int],
) -> None:
    state, port = receiver
    state.fail = True
    output = QuestDbOutput(f"http::addr=127.0.0.1:{port};protocol_version=1;", max_rows=50)
    feed(output, 40)  # ~122 rows: the first batch is held, past 50 waiting ones are dropped
    await wait(lambda: output.failures >= 1)
    assert output.dropped > 0 and output.sent == 0
    state.fail = False
    await wait(lambda: output.sent > 0 and not output.pending, within=20)
    await asyncio.to_thread(output.close)
    assert not state.errors
    assert len(state.rows) == output.sent


async def test_a_batch_refused_as_bad_data_is_dropped_and_counted_not_retried(
    receiver: tuple[Receiver, int],
) -> None:
    state, port = receiver
    state.reject = 1  # the first request is answered 400 with QuestDB's error body
    output = QuestDbOutput(f"http::addr=127.0.0.1:{port};protocol_version=1;")
    built = feed(output, 5)
    await wait(lambda: output.rejected > 0 and not output.pending)
    built += feed(output, 3)
    await wait(lambda: output.rejected + output.sent == built, within=15)
    await asyncio.to_thread(output.close)
    assert output.failures == 0 and state.reject == 0  # refused once, never sent again
    assert len(state.rows) == output.sent > 0 and not state.errors


def test_compose_has_questdb_and_an_image_with_the_history_extra() -> None:
    import yaml

    deploy = Path(__file__).resolve().parents[2] / "deploy"
    services = yaml.safe_load((deploy / "docker-compose.yml").read_text())["services"]
    questdb = services["questdb"]
    assert questdb["image"].startswith("questdb/questdb:") and "9000:9000" in questdb["ports"]
    app = services["market-data"]
    assert app["build"]["args"]["EXTRAS"] == "history"
    assert "MARKET_DATA_QUESTDB_URL" in app["environment"]
    assert "ARG EXTRAS" in (deploy / "Dockerfile").read_text()
