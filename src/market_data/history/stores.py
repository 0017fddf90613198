"""The row stores (Parquet, QuestDB) behind one row builder: every row is built once.

:class:`RowFeed` takes the engine's items (applied events, whole books, top levels,
trades, published book states and 24h figures), feeds them to one
:class:`~market_data.history.schema.rows.RowBuilder` and hands the builder's
column chunks to every configured store at each :meth:`RowFeed.flush`. A store
that fails loses those rows (logged and counted in ``errors``); the others go on.
It runs in the history process (``worker.py``), never in the service's.
"""

import logging
from typing import Any, Protocol

from market_data.history.schema.rows import Chunk, RowBuilder
from market_data.ops.config import Config

log = logging.getLogger(__name__)


class Store(Protocol):
    """Where rows go: the Parquet store, the QuestDB output."""

    def add(self, chunk: Chunk) -> None: ...

    def flush(self, now_ns: int, force: bool = False) -> None: ...

    def close(self) -> None: ...


def build_stores(config: Config) -> list[Store]:
    """The stores ``config`` asks for (imports pyarrow / questdb only then)."""
    stores: list[Store] = []
    levels = config.parquet_book_snapshot_levels
    if config.parquet_dir:
        from market_data.history.parquet import ParquetStore

        stores.append(
            ParquetStore(
                config.parquet_dir,
                row_group_rows=config.parquet_row_group_rows,
                flush_s=config.parquet_flush_s,
                snapshot_levels=levels,
            )
        )
    if config.questdb_url:
        from market_data.history.questdb import QuestDbOutput

        stores.append(QuestDbOutput(config.questdb_url, snapshot_levels=levels))
    return stores


def build_builder(config: Config) -> RowBuilder:
    return RowBuilder(snapshot_levels=config.parquet_book_snapshot_levels)


class RowFeed:
    """One builder, its rows to every store."""

    def __init__(self, builder: RowBuilder, stores: list[Store]) -> None:
        self.builder = builder
        self.stores = stores
        #: Failed store writes (each lost its rows).
        self.errors = 0

    @classmethod
    def from_config(cls, config: Config) -> "RowFeed":
        return cls(build_builder(config), build_stores(config))

    def flush(self, now_ns: int, force: bool = False) -> None:
        """Hand every row built so far to each store; let each write what is due."""
        lost = self.builder.lost_events
        chunks = self.builder.take()
        if self.builder.lost_events > lost:
            log.error(
                "history store: %d book events had levels that could not be read (a bug); "
                "their rows are lost",
                self.builder.lost_events - lost,
            )
        for store in self.stores:
            for chunk in chunks:
                try:  # a store writes a full row group here too: one failure loses its rows
                    store.add(chunk)
                except Exception as exc:
                    self._failed(exc)
            try:
                store.flush(now_ns, force)
            except Exception as exc:
                self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        log.error("history store: a write failed (%s); those rows are lost", exc)

    def close(self) -> None:
        self.flush(0, force=True)
        for store in self.stores:
            try:
                store.close()
            except Exception as exc:
                self.errors += 1
                log.error("history store: closing failed: %s", exc)

    def status(self) -> dict[str, Any]:
        """Rows written per kind, failed writes, the QuestDB output's counts."""
        rows: dict[str, int] = {}
        questdb: dict[str, int] = {}
        for store in self.stores:
            for kind, count in getattr(store, "rows_written", {}).items():
                rows[kind] = rows.get(kind, 0) + count
            if hasattr(store, "sent"):
                questdb = {
                    name: getattr(store, name)
                    for name in ("sent", "dropped", "failures", "rejected")
                }
        # Rows a store lost (a failed write, a bug, QuestDB's full buffer or a batch it
        # refused): the books' rows must start again with a block, which the service
        # sees this count for.
        lost = (
            self.errors
            + self.builder.lost_events
            + sum(
                getattr(store, "dropped", 0) + getattr(store, "rejected", 0)
                for store in self.stores
            )
        )
        return {"rows": rows, "store_errors": self.errors, "questdb": questdb, "rows_lost": lost}
