"""No single frame can poison state: the service publishes the same with or without it.

A clean stream of depth events and trades goes through the whole frame
handler (decode, sync, trade rules, 24h figures, publication) twice: once as
it is and once with one hostile frame inserted. Every publication (books,
trades, market data with the 24h figures) must be identical; only counters
may differ.
"""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.binance.schemas import DepthSnapshot
from market_data.ops.config import Config
from market_data.outputs.sinks import MemorySink
from market_data.service.engine import MarketDataService

NOW_MS = 1_700_000_000_000
START_ID = 7 * 10**12


def _depth(U: int, u: int, pu: int, bids: object, asks: object, e_ms: int) -> bytes:  # noqa: N803
    data = {"e": "depthUpdate", "E": e_ms, "T": e_ms, "s": "BTCUSDT", "U": U, "u": u, "pu": pu,
            "b": bids, "a": asks}  # fmt: skip
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data}).encode()


def _trade(
    a: int,
    price: str,
    t_ms: int,
    f: int | None = None,
    last: int | None = None,
    quantity: str = "0.25",
) -> bytes:
    first = a * 3 if f is None else f
    final = first + 2 if last is None else last
    data = {"e": "aggTrade", "E": t_ms, "s": "BTCUSDT", "a": a, "p": price, "q": quantity,
            "f": first, "l": final, "T": t_ms, "m": a % 2 == 0}  # fmt: skip
    return json.dumps({"stream": "btcusdt@aggTrade", "data": data}).encode()


def _ticker(e_ms: int, low: str = "90.5", high: str = "120.5", last: str = "97.5") -> bytes:
    data = {"e": "24hrTicker", "E": e_ms, "s": "BTCUSDT", "c": last, "o": "96.5",
            "h": high, "l": low, "v": "10", "q": "975", "O": e_ms - 86_400_000, "C": e_ms,
            "n": 40}  # fmt: skip
    return json.dumps({"stream": "btcusdt@ticker", "data": data}).encode()


class Stream:
    """A clean interleaved stream of diffs and trades, with its book history for snapshots."""

    def __init__(self, seed: int, length: int) -> None:
        rng = random.Random(seed)
        self.frames: list[bytes] = []
        self.snapshots: dict[int, DepthSnapshot] = {}
        bids: dict[str, str] = {f"{90 + i}.5": "1" for i in range(5)}
        asks: dict[str, str] = {f"{101 + i}.5": "1" for i in range(5)}
        u = START_ID
        self.snapshots[u] = self._snapshot(u, bids, asks)
        trade_id = 50_000
        for step in range(length):
            t_ms = NOW_MS + step * 100
            if rng.random() < 0.35:
                trade_id += 1
                self.frames.append(_trade(trade_id, f"{rng.randint(95, 100)}.5", t_ms))
                continue
            changes_b = [[f"{rng.randint(85, 99)}.5", str(rng.randint(0, 3))] for _ in range(3)]
            changes_a = [[f"{rng.randint(101, 115)}.5", str(rng.randint(0, 3))] for _ in range(3)]
            first = u + rng.randint(1, 50)
            last = first + rng.randint(0, 20)
            for price, qty in changes_b:
                bids.pop(price, None) if qty == "0" else bids.__setitem__(price, qty)
            for price, qty in changes_a:
                asks.pop(price, None) if qty == "0" else asks.__setitem__(price, qty)
            self.frames.append(_depth(first, last, u, changes_b, changes_a, t_ms))
            u = last
            self.snapshots[u] = self._snapshot(u, bids, asks)
        self.last_trade_id = trade_id

    @staticmethod
    def _snapshot(u: int, bids: dict[str, str], asks: dict[str, str]) -> DepthSnapshot:
        def side(levels: dict[str, str], reverse: bool) -> list[tuple[float, float]]:
            return sorted(((float(p), float(q)) for p, q in levels.items()), reverse=reverse)

        return DepthSnapshot(lastUpdateId=u, bids=side(bids, True), asks=side(asks, False))

    def latest_snapshot(self, upto: int) -> DepthSnapshot:
        return self.snapshots[max(k for k in self.snapshots if k <= upto)]


def hostile_frame(kind: str, stream: Stream) -> bytes:
    far = 2 * 10**12
    garbage = [["1.5", "9"]]
    return {
        "depth_far_ahead": _depth(START_ID, START_ID + 10**15, START_ID, garbage, garbage, NOW_MS),
        "depth_2_62": _depth(1, 2**62, 0, garbage, garbage, NOW_MS),
        "depth_10_40": _depth(1, 10**40, 0, garbage, garbage, NOW_MS),
        "depth_far_behind": _depth(1, 2, 0, garbage, garbage, NOW_MS),
        "trade_huge_id": _trade(10**15, "1.5", NOW_MS),
        "trade_id_restart": _trade(1, "1.5", NOW_MS),
        "trade_far_future": _trade(stream.last_trade_id + 1, "1.5", NOW_MS + 30 * 86_400_000),
        "trade_next_id_minutes_ahead": _trade(51_000, "1.5", NOW_MS + 9 * 60_000),
        "trade_far_past": _trade(stream.last_trade_id + 1, "1.5", NOW_MS - 30 * 86_400_000),
        "trade_absurd_count": _trade(stream.last_trade_id + 1, "1.5", NOW_MS, f=0, last=far),
        "nested_brackets": b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","x":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        "not_json": b"\x00\xff{",
        "trade_zero_quantity": _trade(stream.last_trade_id + 1, "97.5", NOW_MS, quantity="0"),
        "ticker_low_above_high": _ticker(NOW_MS, low="120.5", high="90.5"),
        "ticker_last_outside": _ticker(NOW_MS, last="9e14"),
        "unknown_symbol": _trade(1, "1.5", NOW_MS).replace(b"BTCUSDT", b"XYZUSDT"),
    }[kind]


def run(stream: Stream, hostile: tuple[int, bytes] | None) -> list[bytes]:
    sink = MemorySink()
    config = Config(symbols=("BTCUSDT",), health_port=0)
    clock_ms = [NOW_MS]  # the local clock follows the stream (a frame every 100 ms)
    service = MarketDataService(config, [sink], wall_clock=lambda: clock_ms[0] / 1000)
    state = service.symbols["BTCUSDT"]
    last_u = START_ID
    for index, frame in enumerate(stream.frames):
        clock_ms[0] = NOW_MS + index * 100
        frames = [frame]
        if hostile is not None and hostile[0] == index:
            frames.append(hostile[1])
        for raw in frames:
            service.on_frame(raw)
            if b"depthUpdate" in raw and raw is frame:
                last_u = json.loads(raw)["data"]["u"]
            if state.sync.snapshot_pending:
                state.sync.on_snapshot(stream.latest_snapshot(last_u))
                service._handle_outputs(state)
            service.publisher.flush()
    return [update.payload for update in sink.updates]


HOSTILE_KINDS = [
    "depth_far_ahead",
    "depth_2_62",
    "depth_10_40",
    "depth_far_behind",
    "trade_huge_id",
    "trade_id_restart",
    "trade_far_future",
    "trade_next_id_minutes_ahead",
    "trade_far_past",
    "trade_absurd_count",
    "nested_brackets",
    "not_json",
    "unknown_symbol",
    "trade_zero_quantity",
    "ticker_low_above_high",
    "ticker_last_outside",
]


@settings(max_examples=120, deadline=None)
@given(st.integers(0, 10**6), st.integers(0, 59), st.sampled_from(HOSTILE_KINDS))
def test_one_hostile_frame_changes_no_publication(seed: int, position: int, kind: str) -> None:
    stream = Stream(seed, 60)
    clean = run(stream, None)
    assert any(b'"trade_id"' in p for p in clean) and any(b'"bids"' in p for p in clean)
    assert run(stream, (position, hostile_frame(kind, stream))) == clean


def test_a_late_older_ticker_does_not_replace_the_newest() -> None:
    service = MarketDataService(Config(symbols=("BTCUSDT",), health_port=0), [MemorySink()])
    service.on_frame(_ticker(NOW_MS + 2_000, last="98.5"))
    service.on_frame(_ticker(NOW_MS, last="97.5"))  # two seconds older, arriving after
    ticker = service.symbols["BTCUSDT"].ticker
    assert ticker is not None and ticker.E == NOW_MS + 2_000 and ticker.c == 98.5
    service.on_frame(_ticker(NOW_MS + 4_000, last="99.5"))
    assert service.symbols["BTCUSDT"].ticker is not None
    assert service.symbols["BTCUSDT"].ticker.c == 99.5
