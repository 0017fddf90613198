"""The service's shared-memory output, read by another process's reader API."""

from decimal import Decimal

from market_data.client.shm import ShmRingReader
from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.wire.ring import BookRecord, TradeRecord
from tests.integration.service_harness import running_service
from tests.support import wait_for


async def test_books_and_trades_reach_the_ring_intact(redis_server: EmbeddedRedis) -> None:
    books: list[BookRecord] = []
    trades: list[TradeRecord] = []
    async with running_service(redis_server.url, ("BTCUSDT", "ETHUSDT")) as (app, sim, _):
        assert app.shm is not None
        reader = ShmRingReader.attach(app.config.shm_name, from_oldest=True)
        try:

            def drain() -> bool:
                for record in reader.poll():
                    if isinstance(record, BookRecord):
                        books.append(record)
                    elif isinstance(record, TradeRecord):
                        trades.append(record)
                live = [b for b in books if b.state == BookState.LIVE]
                return len(live) >= 30 and len(trades) >= 5

            await wait_for(drain, what="records in the ring")
            assert reader.missed == 0
            latest = reader.latest_book("BTCUSDT")
            assert latest is not None and latest.symbol == "BTCUSDT"
        finally:
            reader.close()
        for record in books:
            if record.state != BookState.LIVE:
                assert record.bids == () and record.asks == ()  # never stale levels
                continue
            true_bids, true_asks = sim.market.true_book(record.symbol, record.last_update_id)
            depth = len(record.bids)
            assert depth == app.config.order_book_depth
            assert [(Decimal(repr(p)), Decimal(repr(q))) for p, q in record.bids] == [
                (Decimal(p), Decimal(q)) for p, q in true_bids[:depth]
            ]
            assert [(Decimal(repr(p)), Decimal(repr(q))) for p, q in record.asks] == [
                (Decimal(p), Decimal(q)) for p, q in true_asks[:depth]
            ]
        seqs = [r.seq for r in books + trades]
        assert len(set(seqs)) == len(seqs)
