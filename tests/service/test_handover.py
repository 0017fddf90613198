"""When may the old connection close during a rotation? (service/handover.py)"""

import json

from market_data.service.handover import HandoverTracker


def depth(symbol: str, pu: int, u: int) -> bytes:
    data = {"e": "depthUpdate", "s": symbol, "U": pu + 1, "u": u, "pu": pu, "b": [], "a": []}
    return json.dumps({"stream": f"{symbol.lower()}@depth", "data": data}).encode()


def trade(symbol: str, a: int) -> bytes:
    data = {"e": "aggTrade", "s": symbol, "a": a, "p": "1", "q": "1", "f": a, "l": a}
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def test_not_ready_before_the_new_connection_delivers() -> None:
    tracker = HandoverTracker()
    tracker.on_old(depth("BTCUSDT", 10, 11))
    assert not tracker.ready()


def test_ready_once_the_old_one_reached_where_the_new_one_starts() -> None:
    tracker = HandoverTracker()
    tracker.on_old(depth("BTCUSDT", 10, 11))
    tracker.on_new(depth("BTCUSDT", 12, 13))  # new is ahead: 12 not delivered by old yet
    tracker.on_new(trade("BTCUSDT", 7))
    assert not tracker.ready()
    assert tracker.behind() == ["BTCUSDT@depth", "BTCUSDT@trade"]
    tracker.on_old(depth("BTCUSDT", 11, 12))
    tracker.on_old(trade("BTCUSDT", 6))
    assert tracker.ready()
    assert len(tracker.held) == 2  # handed over in order when the old one closes


def test_a_new_connection_behind_the_old_one_is_ready_at_once() -> None:
    tracker = HandoverTracker()
    tracker.on_old(depth("ETHUSDT", 20, 25))
    tracker.on_new(depth("ETHUSDT", 18, 20))  # its copies will be dropped as stale
    assert tracker.ready()


def test_frames_without_ids_are_held_but_not_judged() -> None:
    tracker = HandoverTracker()
    tracker.on_new(b'{"stream":"btcusdt@ticker","data":{"e":"24hrTicker","s":"BTCUSDT"}}')
    tracker.on_new(b"not json")
    assert tracker.ready() and len(tracker.held) == 2


def test_a_stream_only_the_old_connection_delivered_keeps_it_open() -> None:
    tracker = HandoverTracker()
    tracker.on_old(depth("ETHUSDT", 9, 10))  # in flight on the old one only, so far
    tracker.on_old(depth("BTCUSDT", 19, 20))
    tracker.on_new(depth("BTCUSDT", 20, 21))
    assert not tracker.ready() and tracker.behind() == ["ETHUSDT@depth"]
    tracker.on_new(depth("ETHUSDT", 10, 11))
    assert tracker.ready()


def test_only_what_the_old_connection_did_not_deliver_is_handed_over() -> None:
    tracker = HandoverTracker()
    for u in range(10, 15):
        tracker.on_old(depth("BTCUSDT", u - 1, u))
    tracker.on_old(trade("BTCUSDT", 7))
    for u in range(12, 17):  # 12..14 are copies, 15 and 16 are new
        tracker.on_new(depth("BTCUSDT", u - 1, u))
    tracker.on_new(trade("BTCUSDT", 7))
    tracker.on_new(trade("BTCUSDT", 8))
    assert tracker.fresh() == [
        depth("BTCUSDT", 14, 15),
        depth("BTCUSDT", 15, 16),
        trade("BTCUSDT", 8),
    ]
