"""The history pipeline: hooks, the history process, suspension and resumption."""

import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from market_data.capture import read_capture
from market_data.core.state import BookState
from market_data.history.metrics import history_metrics
from market_data.history.pipeline import HistoryPipeline
from market_data.history.recorder import BLOCK_S
from market_data.history.worker import BOOK, MARKET, RESUME
from market_data.ops.config import Config
from market_data.outputs.sinks import BookUpdate, MarketDataUpdate
from tests.history.test_recorder import HOUR_NS, T0, frame


def until(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def metric(pipeline: HistoryPipeline, name: str) -> float:
    for family in history_metrics(pipeline):
        if family.name == name:
            return float(sum(sample.value for sample in family.samples))
    raise KeyError(name)


def test_a_failing_disk_suspends_history_and_resumes_with_a_recording_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec = tmp_path / "rec"
    now = [T0]
    pipeline = HistoryPipeline(Config(recording_dir=str(rec)), clock_ns=lambda: now[0], retry_s=0.3)
    pipeline.start()
    try:
        pipeline.frame(frame("BTCUSDT", 2).decode())
        until(lambda: pipeline.counters.recorded_lines >= 1, "the first line")
        shutil.rmtree(rec)
        rec.write_text("a file where the folder was: every write fails")
        now[0] += HOUR_NS  # the next frame opens a new file, in the history process
        with caplog.at_level(logging.WARNING):
            pipeline.frame(frame("BTCUSDT", 3), 0)
            until(lambda: pipeline.counters.suspended, "the suspension")
            for u in range(4, 1004):
                pipeline.frame(frame("BTCUSDT", u))  # dropped and counted, never raises
            until(lambda: "history suspended" in caplog.text, "the log line")
            assert pipeline.counters.suspensions == 1 and pipeline.counters.dropped >= 1000
            assert "a write failed" in caplog.text and "keeps serving" in caplog.text
            assert metric(pipeline, "history_suspended") == 1
            assert metric(pipeline, "history_write_errors") >= 1
            assert metric(pipeline, "history_dropped") >= 1000
            until(lambda: "still suspended" in caplog.text, "a failed retry")
            rec.unlink()  # the disk takes writes again
            until(lambda: not pipeline.counters.suspended, "the resumption")
        assert "history resumed" in caplog.text
        pipeline.frame(frame("BTCUSDT", 1004))
    finally:
        pipeline.close()
    items = list(read_capture(rec, events=True))
    assert [i.event for i in items] == ["recording_gap", None]
    assert b'"symbols":["BTCUSDT"]' in items[0].body and items[1].body == frame("BTCUSDT", 1004)
    assert metric(pipeline, "history_suspended") == 0 and pipeline.counters.suspensions == 1


def test_a_full_queue_suspends_instead_of_growing(tmp_path: Path) -> None:
    pipeline = HistoryPipeline(Config(recording_dir=str(tmp_path)), queue_max=10)
    for u in range(2, 30):  # no thread drains it
        pipeline.frame(frame("BTCUSDT", u))
    assert pipeline.counters.suspended and pipeline.counters.dropped == 18
    assert "cannot keep up" in pipeline.counters.reason


def book(state: BookState, u: int, event_ms: int = 1_700_000_000_123) -> BookUpdate:
    # local_ts_ns is the monotonic clock's: never a row's time
    return BookUpdate("BTCUSDT", state, u, event_ms, 42, [(99.0, 1.0)], [(101.0, 1.0)], b"{}")


def test_only_book_states_and_24h_figures_that_make_a_row_are_queued(tmp_path: Path) -> None:
    pipeline = HistoryPipeline(
        Config(recording_dir=str(tmp_path), parquet_dir=str(tmp_path)), clock_ns=lambda: T0
    )
    pipeline.publish(book(BookState.SYNCING, 0))  # not following the exchange
    for u, state in enumerate([BookState.LIVE, BookState.LIVE], start=1):
        pipeline.publish(book(state, u))
    pipeline.publish(MarketDataUpdate("BTCUSDT", b'{"updated_at":1}'))
    pipeline.publish(MarketDataUpdate("BTCUSDT", b'{"updated_at":2}'))  # the same second
    queued = [msgspec.msgpack.decode(item) for item in pipeline._queue]
    assert [item[3] for item in queued[:2]] == ["syncing", "live"]
    assert queued[0][4] == T0  # the local time: its last E may be long before the change
    # plain values; the row's time is the exchange's (E), in ns
    assert queued[1][2:] == ["BTCUSDT", "live", 1_700_000_000_123_000_000, 1, 99.0, 101.0]
    assert len(queued) == 3 and queued[2][3] == b'{"updated_at":1}'
    recording_only = HistoryPipeline(Config(recording_dir=str(tmp_path)))
    recording_only.publish(book(BookState.LIVE, 1))
    assert recording_only.queue_length == 0  # no row store: nothing to do with books


def test_the_history_process_records_every_item_kind_in_order(tmp_path: Path) -> None:
    pipeline = HistoryPipeline(Config(recording_dir=str(tmp_path)))
    pipeline.start()
    pipeline.connection("connected", "depth-1", 1, ["BTCUSDT", "ETHUSDT"], depth=True, trades=False)
    pipeline.snapshot("BTCUSDT", b'{"lastUpdateId":5,"bids":[],"asks":[]}')
    for u in range(6, 606):
        pipeline.frame(frame("BTCUSDT", u), u % 2)
    pipeline.close()
    assert pipeline.counters.recorded_lines == 2 + 1 + 600
    items = list(read_capture(tmp_path, events=True))
    btc = [i for i in items if b"ETHUSDT" not in i.body]
    assert btc[0].event == "connected" and btc[1].snapshot_symbol == "BTCUSDT"
    assert [(i.body, i.line) for i in btc[2:]] == [
        (frame("BTCUSDT", u), u % 2) for u in range(6, 606)
    ]
    assert [i.event for i in items if b"ETHUSDT" in i.body] == ["connected"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_history_process_outlives_a_signal_to_the_process_group(
    tmp_path: Path, signum: int
) -> None:
    pipeline = HistoryPipeline(Config(recording_dir=str(tmp_path)))
    pipeline.start()
    try:
        for u in range(2, 102):
            pipeline.frame(frame("BTCUSDT", u))
        until(lambda: pipeline.counters.recorded_lines >= 100, "the lines")
        assert pipeline._process is not None
        os.kill(pipeline._process.process.pid, signum)
        time.sleep(0.3)
        assert pipeline._process.alive
        for u in range(102, 202):
            pipeline.frame(frame("BTCUSDT", u))
    finally:
        pipeline.close()
    items = list(read_capture(tmp_path, events=True))
    assert [i.body for i in items] == [frame("BTCUSDT", u) for u in range(2, 202)]


class AnsweringProcess:
    """Stands in for the history process: takes messages, answers every resume."""

    alive = True

    def __init__(self) -> None:
        self.sent: list[tuple[Any, ...] | None] = []
        self.answers: list[dict[str, Any]] = []

    def send(self, message: tuple[Any, ...] | None) -> None:
        self.sent.append(message)
        if message is not None and message[0] == RESUME:
            status = {"recorded_lines": 0, "write_errors": 0, "dropped": 0}
            self.answers.append(dict(status, suspension=0, suspended="", resume=message[3]))

    def status(self, timeout_s: float = 0.0) -> dict[str, Any] | None:
        return self.answers.pop(0) if self.answers else None


def test_book_states_and_24h_seconds_dropped_in_a_suspension_are_queued_again(
    tmp_path: Path,
) -> None:
    pipeline = HistoryPipeline(Config(parquet_dir=str(tmp_path)), queue_max=2, clock_ns=lambda: T0)
    pipeline._process = AnsweringProcess()  # type: ignore[assignment]
    pipeline.publish(book(BookState.LIVE, 1))
    pipeline.publish(MarketDataUpdate("BTCUSDT", b'{"updated_at":1}'))
    pipeline.frame(frame("BTCUSDT", 2))  # the queue is full: suspended
    assert pipeline.counters.suspended
    pipeline._suspend(pipeline.counters.reason)  # the thread drops what was queued
    assert pipeline.queue_length == 0
    assert pipeline._resume()
    pipeline.publish(book(BookState.LIVE, 3))  # the same state, never stored
    pipeline.publish(MarketDataUpdate("BTCUSDT", b'{"updated_at":2}'))  # the same second
    queued = [msgspec.msgpack.decode(item) for item in pipeline._queue]
    assert [item[0] for item in queued] == [BOOK, MARKET] and queued[0][3] == "live"


def test_a_dead_history_process_is_started_again_with_a_recording_gap(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    now = [T0]
    pipeline = HistoryPipeline(
        Config(recording_dir=str(tmp_path)), clock_ns=lambda: now[0], retry_s=0.3
    )
    pipeline.start()
    try:
        pipeline.connection("connected", "depth-1", 1, ["BTCUSDT"], depth=True, trades=False)
        pipeline.frame(frame("BTCUSDT", 2))
        until(lambda: pipeline.counters.recorded_lines >= 2, "the first lines")
        time.sleep(BLOCK_S + 0.3)  # a deflate block ended: readable after the kill
        assert pipeline._process is not None
        first = pipeline._process
        first.process.kill()  # as the kernel's OOM killer would
        first.process.wait()
        with caplog.at_level(logging.WARNING):
            u = 3
            while not pipeline.counters.suspended:  # the next send finds it gone
                now[0] += 1
                pipeline.frame(frame("BTCUSDT", u))
                u += 1
                time.sleep(0.01)
            until(lambda: "history resumed" in caplog.text, "the resumption")
        assert "the history process ended" in caplog.text
        assert pipeline._process is not first and pipeline._process.alive
        now[0] += 1
        pipeline.frame(frame("BTCUSDT", 9999))
    finally:
        pipeline.close()
    items = list(read_capture(tmp_path, events=True))
    assert [i.event for i in items[:2]] == ["connected", None]
    assert [i.event for i in items[-2:]] == ["recording_gap", None]
    assert b'"symbols":["BTCUSDT"]' in items[-2].body and items[-1].body == frame("BTCUSDT", 9999)
