"""The history process's reading of a batch: typed items, frames as their bytes."""

import gzip
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from market_data.history import worker
from market_data.history.recorder import OTHER, RecordingWriter
from market_data.history.worker import (
    NICE,
    TRADE,
    Frame,
    HistoryProcess,
    _Child,
    _frame_bytes,
    _symbol_of,
    decode_items,
    encode_item,
    encode_items,
    history_cores,
    lower_priority,
)
from market_data.ops.config import Config


@pytest.mark.parametrize("size", [0, 31, 32, 255, 256, 65_535, 65_536])  # every header's ends
@pytest.mark.parametrize("kind", [str, bytes])
def test_a_frame_reads_back_as_the_bytes_received_whatever_its_length(
    size: int, kind: type
) -> None:
    text = "x" * size
    raw = text if kind is str else text.encode()
    (item,), unreadable = decode_items(encode_items([encode_item((0, 1, raw, 2))]))
    assert unreadable == 0 and type(item) is Frame
    assert _frame_bytes(item.raw) == text.encode()


def test_a_text_frame_is_recorded_as_its_utf8() -> None:
    text = '{"stream":"x@depth","data":{"note":"é✓"}}'
    (item,), _ = decode_items(encode_items([encode_item((0, 1, text, 0))]))
    assert _frame_bytes(item.raw) == text.encode()  # type: ignore[union-attr]


def test_the_symbol_is_the_stream_name_and_a_frame_naming_none_goes_to_other() -> None:
    assert _symbol_of(b'{"stream":"btcusdt@depth@100ms","data":{}}') == "BTCUSDT"
    assert _symbol_of(b'{"stream":"btcusdt@aggTrade","data":{}}') == "BTCUSDT"  # cached
    assert _symbol_of(b'{"stream":"../x@depth","data":{}}') == OTHER
    assert _symbol_of(b'{"code":-1,"msg":"no"}') == OTHER


def test_a_batch_with_an_unreadable_item_keeps_every_other_item() -> None:
    good = (TRADE, 1, "BTCUSDT", 7, 100.5, 0.5, 1_700_000_000_000, True)
    bad = (TRADE, 1, "BTCUSDT", 8, "not a price", 0.5, 1_700_000_000_000, True)
    batch = [msgspec.msgpack.encode(item) for item in (good, bad, (99, 1), good)]
    items, unreadable = decode_items(encode_items(batch))
    assert unreadable == 2
    assert [item.id for item in items] == [7, 7]  # type: ignore[union-attr]


class _Conn:
    """The child's side of the socket, for reports only."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, status: dict[str, Any]) -> None:
        self.sent.append(status)


def test_the_history_process_counts_what_it_drops_and_reports_unreadable_items_as_rows_lost(
    tmp_path: Path,
) -> None:
    conn = _Conn()
    child = _Child(Config(parquet_dir=str(tmp_path)), conn)  # type: ignore[arg-type]
    trade = encode_item((TRADE, 1, "BTCUSDT", 7, 100.5, 0.5, 1_700_000_000_000, True))
    bad = encode_item((TRADE, 1, "BTCUSDT", 8, "not a price", 0.5, 1, True))
    child._suspend("disk full")
    child._batch(encode_items([trade, trade, trade]))  # suspended: dropped, counted
    assert child.dropped == 3
    child.suspended = ""
    child._batch(encode_items([trade, bad]))
    child._report()
    assert conn.sent[-1]["dropped"] == 4
    assert conn.sent[-1]["rows_lost"] == 1  # every book's rows start again with a block
    child._close()


def test_the_history_process_keeps_off_the_cores_the_service_is_pinned_to() -> None:
    cores = os.cpu_count() or 1
    assert history_cores(Config()) == ()  # nothing pinned: the OS decides
    assert history_cores(Config(history_cpu_affinity=(0,), cpu_affinity=(0,))) == (0,)
    others = tuple(core for core in range(cores) if core != 0)
    assert history_cores(Config(cpu_affinity=(0,))) == others  # () on a one-core machine
    assert history_cores(Config(cpu_affinity=tuple(range(cores)))) == ()


def test_a_started_history_process_runs_on_its_cores(tmp_path: Path) -> None:
    core = max(os.sched_getaffinity(0))
    config = Config(recording_dir=str(tmp_path), history_cpu_affinity=(core,))
    _start_and_wait(config, lambda pid: os.sched_getaffinity(pid) == {core}, "was not pinned")


@pytest.mark.parametrize(
    ("priority", "policy", "niceness"),
    [("idle", os.SCHED_IDLE, 0), ("background", os.SCHED_OTHER, NICE)],
)
def test_a_started_history_process_runs_at_its_priority(
    tmp_path: Path, priority: str, policy: int, niceness: int
) -> None:
    lowered = min(19, os.getpriority(os.PRIO_PROCESS, 0) + niceness)  # 19: the lowest

    def at_priority(pid: int) -> bool:
        return (os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid)) == (
            policy,
            lowered,
        )

    config = Config(recording_dir=str(tmp_path), history_priority=priority)
    _start_and_wait(config, at_priority, "kept its priority")


def _start_and_wait(config: Config, done: Callable[[int], bool], failure: str) -> None:
    """Start a history process, wait (30 s at most) until ``done(pid)``, close it."""
    process = HistoryProcess(config)
    try:
        deadline = time.monotonic() + 30
        while not done(process.process.pid):
            assert time.monotonic() < deadline, f"the history process {failure}"
            time.sleep(0.05)
    finally:
        process.send(None)
        process.close()
    assert process.process.returncode == 0


def test_a_refused_idle_priority_falls_back_to_a_niceness(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("not here")

    niced: list[int] = []
    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    monkeypatch.setattr(os, "nice", niced.append)
    lower_priority("idle")
    assert niced == [NICE]


def test_the_inline_frame_path_writes_the_lines_of_the_general_one(tmp_path: Path) -> None:
    """Frames of streams seen before and not, on lines 0 and 2, with newlines (escaped),
    naming no stream: the same bytes in the same files as ``write_frame`` alone."""
    frames = [
        b'{"stream":"btcusdt@depth","data":{"u":1}}',
        b'{"stream":"btcusdt@depth","data":{"u":2}}',  # seen: the inline path
        b'{"stream":"btcusdt@depth","data":{"note":"a\nb"}}',  # seen, but a newline
        b'{"stream":"btcusdt@depth","data":{"note":"a\rb"}}',
        b'{"stream":"ethusdt@aggTrade","data":{}}',
        b'{"code":-1,"msg":"no stream"}',
        b'{"stream":"' + b"x" * 60 + b'@depth"}',  # no @ where a name ends
    ]
    raws = [(i, raw.decode() if i % 2 else raw, 2 * (i % 2)) for i, raw in enumerate(frames)]
    items, _ = decode_items(
        encode_items([encode_item((0, ns, raw, line)) for ns, raw, line in raws])
    )
    inline, general = RecordingWriter(tmp_path / "inline"), RecordingWriter(tmp_path / "general")
    _Child._record(inline, items)
    _Child._record(inline, items)  # every stream seen now
    for _ in range(2):
        for item in items:
            frame = _frame_bytes(item.raw)  # type: ignore[union-attr]
            general.write_frame(_symbol_of(frame), item.recv_ns, item.line, frame)  # type: ignore[union-attr]
    inline.close()
    general.close()
    written = {p.relative_to(tmp_path / "inline") for p in (tmp_path / "inline").rglob("*.gz")}
    assert written == {
        p.relative_to(tmp_path / "general") for p in (tmp_path / "general").rglob("*.gz")
    }
    assert len(written) == 3  # BTCUSDT, ETHUSDT, _other
    for path in written:
        lines = gzip.decompress((tmp_path / "inline" / path).read_bytes())
        assert lines == gzip.decompress((tmp_path / "general" / path).read_bytes())
    btc = gzip.decompress(next((tmp_path / "inline").rglob("BTCUSDT-*.gz")).read_bytes())
    assert btc.count(b"raw_b64") == 4  # the frames with a newline, escaped both times


def test_a_batch_bigger_than_the_ring_arrives_whole_in_parts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "RING_BYTES", 128 << 10)  # 128 KiB: messages of 64 KiB
    process = HistoryProcess(Config(recording_dir=str(tmp_path)))
    body = '{"stream":"btcusdt@depth","data":{"pad":"' + "x" * 1000 + '"}}'
    items = [encode_item((0, 1_767_225_600 * 10**9 + n, body, 0)) for n in range(300)]
    try:
        process.send((worker.ITEMS, items))  # ~300 KB: more than twice the ring
        with pytest.raises(OSError, match="exceeds"):  # one item the ring cannot hold
            process.send((worker.ITEMS, [encode_item((0, 1, "y" * (65 << 10), 0))]))
    finally:
        process.send(None)
        lines = 0
        while (status := process.status(30)) is not None:
            lines = status["recorded_lines"]
            if status["closed"]:
                break
        process.close()
    assert lines == 300
