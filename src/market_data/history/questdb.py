"""The QuestDB output: the history kinds as QuestDB tables, over ILP/HTTP.

Through the official client (``questdb``, the ``history`` extra; imported only
when ``questdb_url`` is set). Same tables and columns as the Parquet store
(``schema/rows.py``), with QuestDB's types: ``timestamp`` is the designated
timestamp, ``exchange``, ``symbol``, ``side`` and ``state`` are SYMBOL columns,
``local_timestamp`` a TIMESTAMP; ``book_snapshot_N``'s ``asks[0].price`` is
spelt ``asks_0_price`` (ILP names allow no brackets or dots).

The same never-block rules as the Redis output: rows go into a bounded deque
(``QUESTDB_MAX_ROWS``; when it is full new rows are dropped and counted), a
thread of its own sends them in batches (``BATCH_ROWS`` or every
``FLUSH_S``); when QuestDB is unreachable or refuses, the batch is kept and
sent again after a backoff (capped), so an outage costs memory up to the bound,
then drops, and never the history thread's time. A batch refused as bad data
(the client cannot encode it, or QuestDB answers 400 with its error body) is
dropped and counted (``rejected``): sending it again could never succeed.
"""

import json
import logging
import threading
from collections import deque
from itertools import repeat
from typing import Any

from market_data.core.backoff import backoff
from market_data.history.extra import require
from market_data.history.schema import rows as schema

log = logging.getLogger(__name__)

QUESTDB_MAX_ROWS = 1_000_000
BATCH_ROWS = 5_000
FLUSH_S = 1.0

_SYMBOLS = {"exchange", "symbol", "side", "state"}


def _names(kind: str, levels: int) -> tuple[str, ...]:
    columns = {
        "trades": schema.TRADES,
        "incremental_book_L2": schema.INCREMENTAL,
        "book_state": schema.BOOK_STATE,
        "stats_24h": schema.STATS,
    }.get(kind) or schema.snapshot_columns(levels)
    return tuple(c.replace("[", "_").replace("].", "_") for c in columns)


class QuestDbOutput:
    """Sends :class:`~market_data.history.schema.rows.RowBuilder`'s chunks to QuestDB."""

    def __init__(
        self, conf: str, *, snapshot_levels: int = 10, max_rows: int = QUESTDB_MAX_ROWS
    ) -> None:
        self.qdb = require("questdb", "questdb_url")
        self.conf = conf
        self.snapshot_levels = snapshot_levels
        self.max_rows = max_rows
        self._rows: deque[tuple[str, schema.Row]] = deque()
        self._names: dict[str, tuple[str, ...]] = {}
        #: Counters read by the metrics and the benchmark.
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        #: Rows QuestDB (or the client) refused as bad data: dropped, never sent again.
        self.rejected = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="questdb-output", daemon=True)
        self._thread.start()

    def add(self, chunk: schema.Chunk) -> None:
        """Queue a chunk's rows; past ``max_rows`` waiting, the rest are dropped and counted."""
        kind, symbol, columns = chunk
        if kind == "incremental_book_L2":
            columns = schema.book_rows(symbol, columns)
        room = self.max_rows - len(self._rows)
        rows = list(zip(*columns, strict=True))
        if len(rows) > room:
            self.dropped += len(rows) - max(room, 0)
            rows = rows[: max(room, 0)]
        self._rows.extend(zip(repeat(kind), rows))

    def flush(self, now_ns: int, force: bool = False) -> None:
        """Sending is the output's own thread's job: nothing to do here."""

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is buffered (for up to ``timeout_s``), then stop."""
        self._stop.set()
        self._thread.join(timeout_s)

    @property
    def pending(self) -> int:
        return len(self._rows)

    # ------------------------------------------------------------------ thread

    def _run(self) -> None:
        delays = backoff(0.5, 30.0)
        sender: Any = None
        batch: list[tuple[str, schema.Row]] = []
        while True:
            stopping = self._stop.is_set()
            while self._rows and len(batch) < BATCH_ROWS:
                batch.append(self._rows.popleft())
            if not batch:
                if stopping:
                    break
                self._stop.wait(FLUSH_S / 10)
                continue
            try:
                if sender is None:
                    sender = self.qdb.Sender.from_conf(self.conf)
                    sender.establish()
                buffer = sender.new_buffer()
                for kind, row in batch:
                    self._row(buffer, kind, row)
                sender.flush(buffer)
            except Exception as exc:  # the client's errors: an outage, never the end
                if _refused(self.qdb, exc):
                    self.rejected += len(batch)
                    log.error(
                        "questdb: a batch of %d rows was refused as bad data (%s); dropped",
                        len(batch),
                        exc,
                    )
                    batch = []
                    continue
                self.failures += 1
                if self.connected or self.failures == 1:
                    log.warning("questdb: cannot send (%s); retrying with backoff", exc)
                self.connected = False
                if sender is not None:
                    try:
                        sender.close()
                    except Exception:  # noqa: BLE001 - already broken
                        pass
                    sender = None
                if stopping:
                    break
                self._stop.wait(next(delays))
                continue
            if not self.connected:
                log.info("questdb: sending to %s", self.conf.split(";", 1)[0])
            self.connected = True
            delays = backoff(0.5, 30.0)
            self.sent += len(batch)
            batch = []
            if not stopping and len(self._rows) < BATCH_ROWS:
                self._stop.wait(FLUSH_S)
        if sender is not None:
            sender.close()

    def _row(self, buffer: Any, kind: str, row: schema.Row) -> None:
        names = self._names.get(kind)
        if names is None:
            names = self._names[kind] = _names(kind, self.snapshot_levels)
        qdb = self.qdb
        symbols: dict[str, Any] = {}
        columns: dict[str, Any] = {}
        for name, value in zip(names[4:], row[4:], strict=True):
            if name in _SYMBOLS:
                symbols[name] = value
            else:
                columns[name] = value
        columns["local_timestamp"] = qdb.TimestampMicros(row[3])
        buffer.row(
            kind,
            symbols={"exchange": row[0], "symbol": row[1], **symbols},
            columns=columns,
            at=qdb.TimestampNanos(row[2] * 1000),
        )


#: The client's codes for rows it cannot encode: the data is at fault, not the link.
_BAD_DATA_CODES = (
    "InvalidName",
    "InvalidUtf8",
    "InvalidTimestamp",
    "BadDataFrame",
    "ServerParseError",
    "ServerSchemaMismatch",
)


def _refused(qdb: Any, exc: Exception) -> bool:
    """True for data QuestDB will never take (sending it again cannot help).

    The client refuses to encode it, or the server answered with its error body for
    a request it rejected (HTTP 400: ``{"code": "invalid", ...}``); an outage (no
    connection, 5xx) is not.
    """
    codes = qdb.QuestDBErrorCode
    code = getattr(exc, "code", None)
    if code is None:
        return False
    if any(code == getattr(codes, name, None) for name in _BAD_DATA_CODES):
        return True
    if code != getattr(codes, "ServerFlushError", None):
        return False
    body = str(exc).partition("{")
    if not body[1]:
        return False
    try:
        answer = json.loads(body[1] + body[2])
    except ValueError:
        return False
    return isinstance(answer, dict) and answer.get("code") == "invalid"
