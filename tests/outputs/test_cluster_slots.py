"""Slot maps from CLUSTER SLOTS replies, and redirects, as a Redis Cluster sends them."""

import pytest

from market_data.outputs.cluster_slots import (
    SLOTS,
    Redirect,
    SlotMap,
    SlotMapError,
    key_slot,
    parse_redirect,
    retry_later,
)

ASKED = ("10.0.0.1", 7000)


def _reply() -> list[object]:
    return [
        [0, 5460, [b"10.0.0.1", 7000, b"id1"], [b"10.0.0.4", 7003, b"id4"]],
        [5461, 10922, [b"", 7001, b"id2"]],
        [10923, 16383, [b"10.0.0.3", 7002, b"id3"]],
    ]


def test_slot_map_names_the_primary_of_every_slot() -> None:
    slots = SlotMap.from_cluster_slots(_reply(), ASKED)
    assert slots.owner(0) == ("10.0.0.1", 7000)
    assert slots.owner(5460) == ("10.0.0.1", 7000)
    assert slots.owner(5461) == ("10.0.0.1", 7001)  # empty host: the node that was asked
    assert slots.owner(16383) == ("10.0.0.3", 7002)
    assert slots.primaries == [("10.0.0.1", 7000), ("10.0.0.1", 7001), ("10.0.0.3", 7002)]
    assert slots.unserved == 0


def test_slots_without_a_primary_are_counted() -> None:
    slots = SlotMap.from_cluster_slots(_reply()[:2], ASKED)
    assert slots.unserved == SLOTS - 10923
    assert slots.owner(12000) is None


def test_moved_gives_one_slot_a_new_owner() -> None:
    slots = SlotMap.from_cluster_slots(_reply(), ASKED).moved(42, ("10.0.0.9", 7009))
    assert slots.owner(42) == ("10.0.0.9", 7009)
    assert slots.owner(43) == ("10.0.0.1", 7000)


@pytest.mark.parametrize(
    "reply",
    [b"OK", [[5, 2, [b"h", 1]]], [[0, 16384, [b"h", 1]]], [[0, 1]], [[0, 1, [b"h", b"port"]]]],
)
def test_a_reply_that_is_no_slot_map_is_refused(reply: object) -> None:
    with pytest.raises(SlotMapError):
        SlotMap.from_cluster_slots(reply, ASKED)


def test_redirects_are_parsed() -> None:
    assert parse_redirect("MOVED 3999 127.0.0.1:6381") == Redirect(False, 3999, ("127.0.0.1", 6381))
    assert parse_redirect("ASK 12 ::1:7000") == Redirect(True, 12, ("::1", 7000))
    assert parse_redirect("MOVED 99999 h:1") is None
    assert parse_redirect("ERR wrong type") is None
    assert parse_redirect("MOVED x h:1") is None


def test_routing_errors_are_retried_and_others_are_not() -> None:
    for message in ("MOVED 1 h:1", "ASK 1 h:1", "TRYAGAIN Multiple keys", "CLUSTERDOWN down"):
        assert retry_later(message)
    for message in ("ERR unknown command", "WRONGTYPE Operation", "NOAUTH"):
        assert not retry_later(message)


def test_hash_tags_and_channel_names_hash_as_redis_does() -> None:
    # Known values of CRC16/XMODEM mod 16384 (the cluster spec's key slot).
    assert key_slot(b"foo") == 12182
    assert key_slot(b"{user1000}.following") == key_slot(b"user1000")
    assert key_slot(b"trades:BTCUSDT") != key_slot(b"orderbook:BTCUSDT")
