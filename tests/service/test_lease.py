"""The active/standby lease against a real redis-server, with a controlled clock."""

from market_data.embedded_redis import EmbeddedRedis
from market_data.service.lease import VALID_FRACTION, Lease


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_one_instance_wins_and_the_other_stands_by(redis_server: EmbeddedRedis) -> None:
    clock = Clock()
    first = Lease(redis_server.url, "g", 1000, clock=clock)
    second = Lease(redis_server.url, "g", 1000, clock=clock)
    try:
        await first._step()
        await second._step()
        assert first.active and first.epoch == 1
        assert not second.active and second.known_epoch == 1
        clock.now += 1000 / 1000 * VALID_FRACTION  # not renewed in time: the gate closes
        assert not first.active
    finally:
        await first._release()
        await second._release()


async def test_a_redis_restarted_empty_does_not_send_the_epoch_back_to_one(
    redis_server: EmbeddedRedis,
) -> None:
    clock = Clock()
    active = Lease(redis_server.url, "g", 1000, clock=clock)
    standby = Lease(redis_server.url, "g", 1000, clock=clock)
    try:
        for _ in range(3):  # three takeovers: epoch 3
            await active._step()
            await active._release()
            active = Lease(redis_server.url, "g", 1000, clock=clock)
        await active._step()
        await standby._step()
        assert active.epoch == 4 and standby.known_epoch == 4
        redis_server.restart()  # no persistence: the lease and the epoch are gone
        clock.now += 1.0  # the holder's own validity is over
        for _ in range(2):  # the first request may meet the connection the restart closed
            await active._step()
        assert not active.active
        for _ in range(2):  # the first to ask wins, and counts on from what it saw
            await standby._step()
        assert standby.active and standby.epoch == 5
    finally:
        await active._release()
        await standby._release()


async def test_a_lease_won_without_an_epoch_is_given_back(redis_server: EmbeddedRedis) -> None:
    clock = Clock()
    lease = Lease(redis_server.url, "g", 10_000, clock=clock)

    real_eval = lease.client.eval

    async def refused(script: str, *args: object) -> object:
        if "INCR" in script:
            raise ConnectionError("the epoch script failed")
        return await real_eval(script, *args)  # type: ignore[arg-type]

    lease.client.eval = refused  # type: ignore[method-assign]
    try:
        await lease._step()  # SET NX wins, INCR fails: the error is logged, not raised
        assert not lease.active
        lease.client.eval = real_eval  # type: ignore[method-assign]
        other = Lease(redis_server.url, "g", 10_000, clock=clock)
        await other._step()  # at once, not after the 10 s lease
        assert other.active
        await other._release()
    finally:
        lease.client.eval = real_eval  # type: ignore[method-assign]
        await lease._release()
