"""The load generator: frame ids, WebSocket framing, snapshot bridge, paced sending."""

import aiohttp
import pytest

from market_data.binance.decode import DecodeError, decode_frame, decode_snapshot
from market_data.sim.loadgen import (
    LoadGenerator,
    build_frames,
    frame_index,
    update_id,
    ws_text_frame,
)


def _payload(frame: bytes) -> bytes:
    size = frame[1]
    return frame[4:] if size == 126 else frame[2:]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_ws_text_frame_header_carries_the_length(size: int) -> None:
    frame = ws_text_frame(b"x" * size)
    assert frame[0] == 0x81
    if size < 126:
        assert frame[1] == size and len(frame) == 2 + size
    elif size < 65536:
        assert frame[1] == 126 and int.from_bytes(frame[2:4], "big") == size
    else:
        assert frame[1] == 127 and int.from_bytes(frame[2:10], "big") == size


def test_frame_index_inverts_update_id() -> None:
    assert [frame_index(update_id(k)) for k in (0, 1, 57, 10_000)] == [0, 1, 57, 10_000]
    assert frame_index(0) < 0


def test_frames_chain_and_the_snapshot_bridges_frame_zero() -> None:
    built = build_frames(["BTCUSDT", "SYM0001USDT"], 50)
    for symbol, item in built.items():
        events = []
        for frame in item.frames:
            kind, data = decode_frame(_payload(frame))
            assert data.s == symbol
            events.append(data)
        assert [e.u for e in events] == [update_id(k) for k in range(50)]
        assert all(
            later.pu == earlier.u for earlier, later in zip(events, events[1:], strict=False)
        )
        snapshot = decode_snapshot(item.snapshot)
        assert events[0].U <= snapshot.lastUpdateId <= events[0].u  # type: ignore[attr-defined]
        best_bid = max(price for price, _ in snapshot.bids)
        best_ask = min(price for price, _ in snapshot.asks)
        for event in events:  # changes stay on their side: the book never crosses
            assert all(price <= best_bid for price, _ in event.b)  # type: ignore[attr-defined]
            assert all(price >= best_ask for price, _ in event.a)  # type: ignore[attr-defined]


def test_decoder_rejects_a_frame_cut_short() -> None:
    frame = build_frames(["BTCUSDT"], 1)["BTCUSDT"].frames[0]
    with pytest.raises(DecodeError):
        decode_frame(_payload(frame)[:-5])


async def test_prime_then_paced_frames_reach_a_client_in_order_with_send_times() -> None:
    symbols = ["BTCUSDT", "ETHUSDT"]
    async with LoadGenerator(build_frames(symbols, 400)) as generator:
        streams = "/".join(f"{s.lower()}@depth@100ms" for s in symbols)
        url = f"{generator.ws_base_url}/public/stream?streams={streams}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{generator.rest_base_url}/fapi/v1/depth?symbol=ETHUSDT") as r:
                assert r.status == 200
                assert decode_snapshot(await r.read()).lastUpdateId > 0
            async with session.get(f"{generator.rest_base_url}/fapi/v1/depth?symbol=NOPE") as r:
                assert r.status == 400
            async with session.ws_connect(url, compress=0) as ws:
                await generator.wait_connected(5)
                assert generator.prime() == 2
                run = await generator.run_paced(rate_hz=2000, seconds=0.2)
                assert run.throttled == 0 and run.exhausted == 0
                assert 300 <= run.sent <= 400
                received: dict[str, list[int]] = {s: [] for s in symbols}
                for _ in range(run.sent + 2):
                    message = await ws.receive(timeout=5)
                    _, data = decode_frame(message.data)
                    received[data.s].append(data.u)
        for symbol in symbols:
            last = generator.last_sent_index(symbol)
            assert received[symbol] == [update_id(k) for k in range(last + 1)]
            send_ns = generator.send_ns(symbol)
            stamps = [send_ns[k] for k in range(last + 1)]
            assert all(stamp > 0 for stamp in stamps)
            assert stamps == sorted(stamps)
            assert send_ns[last + 1] == 0
        # round-robin: the two symbols got the same share
        counts = [generator.last_sent_index(s) for s in symbols]
        assert abs(counts[0] - counts[1]) <= 1
