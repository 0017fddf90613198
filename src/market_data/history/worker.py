"""The row stores (Parquet, QuestDB) in a process of their own.

Decoding every frame again, rebuilding the books and building rows costs about
45 μs a frame: on the service's own thread that is half a core at 10k msg/s,
taken from the event loop under the GIL. :class:`StoresProcess` is the
:class:`~market_data.history.pipeline.RowConsumer` the history thread sees: it
collects each batch's items and sends them, pickled, through a socket pair at the
batch's end; the child process (``_serve``) feeds the real stores. A child
that is slower than the feed fills the pipe: the history thread then waits,
its queue fills, and history is suspended (counted), never the event loop.
The child's counters come back with every batch's answer.
"""

import logging
import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from market_data.history.extra import require
from market_data.ops.config import Config
from market_data.outputs.sinks import BookUpdate

log = logging.getLogger(__name__)

_JOIN_S = 30.0


def build_stores(config: Config) -> list[Any]:
    """The stores ``config`` asks for (imports pyarrow / questdb only then)."""
    stores: list[Any] = []
    levels, interval = config.parquet_book_snapshot_levels, config.parquet_book_snapshot_interval_ms
    max_levels, max_buffer = config.max_levels_per_side, config.sync_buffer_max
    if config.parquet_dir:
        from market_data.history.parquet import ParquetStore

        stores.append(
            ParquetStore(
                config.parquet_dir,
                row_group_rows=config.parquet_row_group_rows,
                flush_s=config.parquet_flush_s,
                snapshot_levels=levels,
                snapshot_interval_ms=interval,
                max_levels=max_levels,
                max_buffer=max_buffer,
                lines=config.feed_lines,
            )
        )
    if config.questdb_url:
        from market_data.history.questdb import QuestDbOutput

        stores.append(
            QuestDbOutput(
                config.questdb_url,
                snapshot_levels=levels,
                snapshot_interval_ms=interval,
                max_levels=max_levels,
                max_buffer=max_buffer,
                lines=config.feed_lines,
            )
        )
    return stores


class StoresProcess:
    """Parent side: items in, sent to the child at each flush."""

    def __init__(self, config: Config) -> None:
        if config.parquet_dir:  # a missing extra fails here, with a ConfigError, not in the child
            require("pyarrow.parquet", "parquet_dir")
        if config.questdb_url:
            require("questdb", "questdb_url")
        # A plain child process (not multiprocessing's): a daemonic service process (a
        # benchmark's) may not have multiprocessing children. One socket pair carries it all.
        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"from {__name__} import child_main; child_main({theirs.fileno()})",
            ],
            pass_fds=[theirs.fileno()],
        )
        theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(config)
        self._batch: list[tuple[Any, ...]] = []
        #: The child's figures, as of its last answer.
        self.rows_written: dict[str, int] = {}
        self.write_errors = 0
        self.questdb: dict[str, int] = {}

    def on_frame(self, recv_ns: int, frame: bytes, line: int) -> None:
        self._batch.append((0, recv_ns, frame, line))

    def on_snapshot(self, recv_ns: int, symbol: str, body: bytes) -> None:
        self._batch.append((1, recv_ns, symbol, body))

    def on_connection(self, recv_ns: int, event: dict[str, Any]) -> None:
        self._batch.append((2, recv_ns, event))

    def on_book(self, recv_ns: int, update: BookUpdate) -> None:
        self._batch.append((3, recv_ns, update))

    def on_market(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        self._batch.append((4, recv_ns, symbol, payload))

    def on_gap(self, recv_ns: int) -> None:
        self._batch.append((5, recv_ns))

    def flush(self, now_ns: int, force: bool = False) -> None:
        """Send the batch (an empty one still lets the child flush by time)."""
        batch, self._batch = self._batch, []
        try:
            self._conn.send_bytes(pickle.dumps((now_ns, batch), protocol=5))
            while self._conn.poll():
                self._status(self._conn.recv())
        except (OSError, EOFError) as exc:
            raise OSError(f"the history stores process is gone ({exc})") from None

    def _status(self, status: dict[str, Any]) -> None:
        self.rows_written = status["rows"]
        self.write_errors = status["errors"]
        self.questdb = status["questdb"]

    def close(self) -> None:
        try:
            self._conn.send_bytes(pickle.dumps(None))
            deadline = time.monotonic() + _JOIN_S
            while time.monotonic() < deadline and self._conn.poll(deadline - time.monotonic()):
                status = self._conn.recv()
                self._status(status)
                if status.get("closed"):
                    break
        except (OSError, EOFError):
            pass
        try:
            self._process.wait(_JOIN_S)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()


def child_main(fd: int) -> None:
    """Entry point of the child process: the first message is the configuration."""
    conn = Connection(fd)
    config = conn.recv()
    assert isinstance(config, Config)
    _serve(config, conn)


def _serve(config: Config, conn: Connection) -> None:
    """Child: feed every batch to the stores, answer with the counters."""
    from market_data.ops.logs import setup_logging

    setup_logging(json_lines=config.log_json or None)
    stores = build_stores(config)
    errors = 0
    last_answer = 0.0

    def status(closed: bool = False) -> dict[str, Any]:
        rows: dict[str, int] = {}
        questdb: dict[str, int] = {}
        for store in stores:
            for kind, count in getattr(store, "rows_written", {}).items():
                rows[kind] = rows.get(kind, 0) + count
            if hasattr(store, "sent"):
                questdb = {"sent": store.sent, "dropped": store.dropped, "failures": store.failures}
        return {"rows": rows, "errors": errors, "questdb": questdb, "closed": closed}

    handlers = ("on_frame", "on_snapshot", "on_connection", "on_book", "on_market", "on_gap")
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            break
        if message is None:
            break
        now_ns, batch = message
        for item in batch:
            kind, *args = item
            for store in stores:
                try:  # a store writes a full row group here too: one failure loses its rows
                    getattr(store, handlers[kind])(*args)
                except Exception as exc:
                    errors += 1
                    log.error("history store: a write failed (%s); those rows are lost", exc)
        for store in stores:
            try:
                store.flush(now_ns)
            except Exception as exc:
                errors += 1
                log.error("history store: a write failed (%s); those rows are lost", exc)
        if time.monotonic() - last_answer > 0.5:
            last_answer = time.monotonic()
            conn.send(status())
    for store in stores:
        try:
            store.close()
        except OSError as exc:
            errors += 1
            log.error("history store: closing failed: %s", exc)
    try:
        conn.send(status(closed=True))
    except OSError:
        pass
