"""Replay every real capture and prove the book equals the reference at every step."""

import gzip
import io
import json
from pathlib import Path

import pytest

from market_data.capture import read_capture, read_snapshots
from market_data.cli import main
from market_data.core.sync import DepthDiff
from market_data.replay import Replayer, SymbolReplay, TextLevel
from tests.reference import RefBook, RefStep, reference_steps

DATA = Path(__file__).parent / "data"
CRYPTOFEED_WS = DATA / "cryptofeed_BINANCE_FUTURES.ws.1.0"
CRYPTOFEED_HTTP = DATA / "cryptofeed_BINANCE_FUTURES.http.0.0"
HFT_ETH = DATA / "hftbacktest_usdm_ethusdt_20240808.gz"


def _cryptofeed_frames() -> list[bytes]:
    lines = CRYPTOFEED_WS.read_bytes().splitlines()[1:]
    return [line.partition(b": ")[2] for line in lines if line]


def _cryptofeed_snapshot(symbol: str) -> bytes:
    for line in CRYPTOFEED_HTTP.read_bytes().splitlines():
        if f"symbol={symbol}&".encode() in line:
            return line.partition(b": ")[2]
    raise AssertionError(symbol)


def _hft_lines() -> tuple[list[bytes], bytes]:
    frames, snapshot = [], b""
    with gzip.open(HFT_ETH, "rb") as f:
        for line in f:
            body = line.rstrip(b"\n").partition(b" ")[2]
            if b'"stream"' in body:
                frames.append(body)
            else:
                snapshot = body
    return frames, snapshot


def _replay_against_reference(
    items: list, symbol: str, frames: list[bytes], snapshot: bytes
) -> tuple[Replayer, list[RefStep]]:
    """Replay with a checker that compares the whole book after every applied event."""
    ref = RefBook()
    steps = reference_steps(frames, snapshot, symbol, ref)
    seen: list[RefStep] = []
    traced: list[tuple[int, list[TextLevel], list[TextLevel]]] = []

    def trace(sym: str, u: int, bids: list[TextLevel], asks: list[TextLevel]) -> None:
        if sym == symbol:
            traced.append((u, bids, asks))

    replayer = Replayer(trace=trace, depth=20)

    def check(ev: DepthDiff) -> None:
        step = next(steps)
        seen.append(step)
        assert (ev.U, ev.u, ev.pu) == (step.U, step.u, step.pu)
        book = state.sync.book
        assert book.last_update_id == ref.u
        assert book.bids.qty == ref.bids.mirror, f"bids differ after u={ev.u}"
        assert book.asks.qty == ref.asks.mirror, f"asks differ after u={ev.u}"
        assert book.bids.prices == sorted(ref.bids.mirror), f"bid order broken after u={ev.u}"
        assert book.asks.prices == sorted(ref.asks.mirror), f"ask order broken after u={ev.u}"

    state: SymbolReplay = replayer._symbol(symbol)
    tracer = state.sync.on_applied
    assert tracer is not None

    def both(ev: DepthDiff) -> None:
        check(ev)
        tracer(ev)
        u, bids, asks = traced[-1]
        assert u == ev.u
        assert [list(level) for level in bids] == ref.bids.top(20, best_high=True)
        assert [list(level) for level in asks] == ref.asks.top(20, best_high=False)

    state.sync.on_applied = both
    replayer.feed_all(items)
    assert next(steps, None) is None, "the reference applied events the replay did not"
    return replayer, seen


@pytest.mark.parametrize(
    ("symbol", "edge"),
    [
        ("SUSHIUSDT", "U == L"),
        ("AKROUSDT", "u == L"),
        ("KEEPUSDT", "u == L"),
        ("CTKUSDT", "u == L"),
    ],
)
def test_cryptofeed_capture_matches_reference_at_every_event(symbol: str, edge: str) -> None:
    items = sorted(
        [*read_capture(CRYPTOFEED_WS), *read_snapshots(CRYPTOFEED_HTTP)], key=lambda i: i.recv_ns
    )
    snapshot = _cryptofeed_snapshot(symbol)
    replayer, steps = _replay_against_reference(items, symbol, _cryptofeed_frames(), snapshot)
    state = replayer.symbols[symbol]
    last_id = json.loads(snapshot)["lastUpdateId"]
    assert len(steps) == state.sync.applied > 100
    assert state.sync.gaps == 0 and state.sync.resets == 0
    # The first applied event is the one the procedure names, with this capture's edge case.
    live = state.first_live
    assert len(live) == 1 and live[0].snapshot_id == last_id
    first = steps[0]
    assert (live[0].first_U, live[0].first_u) == (first.U, first.u)
    assert (first.U if edge == "U == L" else first.u) == last_id


def test_hftbacktest_eth_capture_matches_reference_at_every_event() -> None:
    frames, snapshot = _hft_lines()
    items = list(read_capture(HFT_ETH))
    replayer, steps = _replay_against_reference(items, "ETHUSDT", frames, snapshot)
    state = replayer.symbols["ETHUSDT"]
    last_id = json.loads(snapshot)["lastUpdateId"]
    assert last_id == 5123107856276
    assert steps[0].u == last_id  # the u == L edge case
    assert state.first_live[0].first_u == last_id
    assert len(steps) == state.sync.applied == 6586 - state.sync.dropped_before_sync
    assert state.sync.gaps == 0
    assert replayer.summary.unsupported  # @trade is not consumed, and is counted


def test_replay_command_writes_a_trace_line_per_applied_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trace.jsonl"
    rc = main(
        [
            "replay",
            str(CRYPTOFEED_WS),
            "--snapshot",
            str(CRYPTOFEED_HTTP),
            "--symbol",
            "SUSHIUSDT",
            "--book-trace",
            str(out),
            "--depth",
            "5",
        ]
    )
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ref = RefBook()
    steps = list(
        reference_steps(_cryptofeed_frames(), _cryptofeed_snapshot("SUSHIUSDT"), "SUSHIUSDT", ref)
    )
    assert len(lines) == len(steps)
    assert [line["u"] for line in lines] == [s.u for s in steps]
    assert lines[-1] == {
        "symbol": "SUSHIUSDT",
        "u": steps[-1].u,
        "bids": ref.bids.top(5, best_high=True),
        "asks": ref.asks.top(5, best_high=False),
    }
    summary = capsys.readouterr().out
    assert "SUSHIUSDT: state=live" in summary and "gaps=0" in summary


def test_replay_reports_an_unreadable_capture(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "/nonexistent/capture"]) == 2
    assert "No such file" in capsys.readouterr().err


def test_trace_keeps_the_exchange_spelling() -> None:
    buf = io.BytesIO()
    from market_data.replay import jsonl_trace

    Replayer(trace=jsonl_trace(buf), symbol="ETHUSDT").feed_all(read_capture(HFT_ETH))
    first = json.loads(buf.getvalue().split(b"\n", 1)[0])
    # "2681.60" keeps its trailing zero; a float round trip would print 2681.6.
    assert ["2681.60", "0.015"] in first["bids"]


def test_replay_takes_a_symbol_in_any_case(capsys: pytest.CaptureFixture[str]) -> None:
    """The inline snapshot's owner is the symbol as the exchange spells it (a lowercase
    one used to own it alone, and ETHUSDT never synchronised)."""
    assert main(["replay", str(HFT_ETH), "--symbol", "ethusdt"]) == 0
    assert "ETHUSDT: state=live" in capsys.readouterr().out


def test_replay_of_nothing_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(HFT_ETH), "--symbol", "XRPUSDT"]) == 2
    assert "no frame of XRPUSDT to replay (check --symbol: 74,654 frames" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert main(["replay", str(empty)]) == 2
    assert f"{empty}: no frame to replay" in capsys.readouterr().err


def test_replay_says_a_snapshot_file_goes_with_snapshot(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(CRYPTOFEED_HTTP)]) == 2
    assert "this is a file of REST snapshots: give it with --snapshot" in capsys.readouterr().err


def test_a_hand_made_recording_s_bad_lines_are_counted_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A snapshot the service could not have read (no lastUpdateId), and a connection
    event whose symbols are a string, each count as malformed; the good lines still
    replay, a snapshot of numbers for prices included (the service reads it too)."""
    good = b'{"lastUpdateId":5,"E":1,"T":1,"bids":[[1.5,2]],"asks":[["1.6","1"]]}'
    lines = [
        b'1700000000000000000 {"snapshot":"BTCUSDT","data":'
        b'{"E":1,"T":1,"bids":[["1.5","2"]],"asks":[]}}',
        b'1700000000000000001 {"connection":"disconnected","name":"d","line":0,'
        b'"symbols":"BTCUSDT","reason":"x"}',
        b'1700000000000000002 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",'
        b'"E":2,"T":2,"s":"BTCUSDT","U":5,"u":6,"pu":4,"b":[["1.5","3"]],"a":[]}}',
        b'1700000000000000003 {"snapshot":"BTCUSDT","data":' + good + b"}",
    ]
    recording = tmp_path / "BTCUSDT" / "BTCUSDT-20231114T22-0.gz"
    recording.parent.mkdir()
    recording.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    trace = tmp_path / "trace.jsonl"
    assert main(["replay", str(tmp_path), "--book-trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "snapshots: 1  malformed: 2" in out and "BTCUSDT: state=live" in out
    (line,) = [json.loads(text) for text in trace.read_text().splitlines()]
    assert line["u"] == 6 and line["bids"] == [["1.5", "3"]]
