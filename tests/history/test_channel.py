"""The byte ring between the service and its history process."""

import os
import random

import pytest

from market_data.history.channel import HEADER, ByteRing


def test_messages_come_out_whole_and_in_order_across_many_wraps() -> None:
    ring = ByteRing(bytearray(HEADER + 1024))
    rng = random.Random(7)
    sent: list[bytes] = []
    got: list[bytes] = []

    def take() -> None:
        message = ring.read()
        assert message is not None
        got.append(message)

    for n in range(5_000):
        message = bytes([n % 251]) * rng.randrange(0, 300)  # empty ones too
        while not ring.write(message):  # full: the reader catches up a little
            take()
        sent.append(message)
        if rng.random() < 0.4:
            take()
    while (message := ring.read()) is not None:
        got.append(message)
    assert got == sent
    assert ring.pending == 0


def test_a_full_ring_refuses_until_the_reader_frees_room() -> None:
    ring = ByteRing(bytearray(HEADER + 64))
    assert ring.write(b"a" * 20) and ring.write(b"b" * 20)  # 24 + 24 of 64 bytes
    assert not ring.write(b"c" * 20)  # 24 more do not fit
    assert ring.read() == b"a" * 20
    assert ring.write(b"c" * 20)  # wraps to the start, after the freed message
    assert [ring.read(), ring.read(), ring.read()] == [b"b" * 20, b"c" * 20, None]


def test_a_message_larger_than_the_ring_is_refused_with_an_error() -> None:
    ring = ByteRing(bytearray(HEADER + 64))
    assert ring.fits(28) and not ring.fits(29)  # half the ring at most, padding included
    with pytest.raises(ValueError, match="exceeds"):
        ring.write(b"x" * 29)
    with pytest.raises(ValueError, match="multiple of 8"):
        ByteRing(bytearray(HEADER + 60))


def test_a_message_that_must_wrap_fits_once_the_reader_caught_up() -> None:
    ring = ByteRing(bytearray(HEADER + 64))
    assert ring.write(b"a" * 4) and ring.read() == b"a" * 4  # 8 bytes in: empty again
    for _ in range(20):  # whatever the position, a message of half the ring goes in
        assert ring.write(b"b" * 28) and ring.read() == b"b" * 28
        assert ring.write(b"c" * 12) and ring.read() == b"c" * 12


@pytest.mark.parametrize("memfd", [True, False])  # False: as on a system without memfd
def test_a_ring_made_for_another_process_is_the_same_memory(
    memfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    ring, fd = ByteRing.create(HEADER + 4096)
    other = ByteRing.attach(fd)  # as the history process maps it
    try:
        assert ring.write(b"hello") and other.read() == b"hello"
        assert ring.pending == 0  # the reader's progress is the writer's free room
    finally:
        other.close()
        ring.close()
