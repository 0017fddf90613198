"""Active/standby: a lease in Redis decides which instance of an ``ha_group`` publishes.

Every instance keeps its books live from its own feed; only the lease holder
publishes. The lease is ``SET ha:{group}:lease <token> NX PX <lease_ms>``,
renewed every quarter of ``lease_ms`` by a compare-and-renew script; winning
it takes a new fencing epoch from ``INCR ha:{group}:epoch``, never at or below
one the instance has already seen there (a Redis restarted empty counts on).

Never two publishers: the holder counts its lease as valid only until
``lease_ms * VALID_FRACTION`` after it *sent* the request that set or renewed
it, so it stops publishing before the lease can have expired in Redis even
when Redis, the network or the process stalls; the gate is checked on every
publication. A standby takes over once the lease expires (``lease_ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable

from redis.exceptions import RedisClusterException, RedisError

from market_data.outputs.redis_client import redis_client

log = logging.getLogger(__name__)

#: Share of the lease the holder trusts itself with (the rest covers clock drift).
VALID_FRACTION = 0.75

# Renew only while we hold it: GET and PEXPIRE in one atomic step.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
# The next fencing epoch, never at or below one this instance has seen: a Redis that
# restarted empty (or failed over to a replica that missed the last INCR) would
# otherwise count from 1 again, and readers would drop the new active's messages.
_NEXT_EPOCH = """
local epoch = redis.call('INCR', KEYS[1])
local floor = tonumber(ARGV[1])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[1], epoch)
end
return epoch
"""
# Give it up only if it is still ours (a clean stop: the standby takes over at once).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """This instance's side of the lease of one ``ha_group``."""

    def __init__(
        self,
        url: str,
        group: str,
        lease_ms: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.lease_ms = lease_ms
        self.key = f"ha:{group}:lease"
        self.epoch_key = f"ha:{group}:epoch"
        self.token = uuid.uuid4().hex
        self.epoch = 0
        #: The highest epoch seen in Redis, read while standing by.
        self.known_epoch = 0
        self._clock = clock
        self._valid_until = 0.0
        self._holding = False
        self.client = redis_client(url, socket_timeout=lease_ms / 4000)

    @property
    def active(self) -> bool:
        """Whether this instance may publish now (checked on every publication)."""
        return self._holding and self._clock() < self._valid_until

    @property
    def role(self) -> str:
        return "active" if self.active else "standby"

    async def run(self, on_change: Callable[[bool], None]) -> None:
        """Hold or wait for the lease until cancelled; ``on_change`` on every role change."""
        interval = self.lease_ms / 4000
        was_active = False
        try:
            while True:
                await self._step()
                now_active = self.active
                if now_active != was_active:
                    was_active = now_active
                    on_change(now_active)
                await asyncio.sleep(interval)
        finally:
            await self._release()

    async def _step(self) -> None:
        sent_at = self._clock()
        try:
            if self._holding:
                renewed = await self.client.eval(_RENEW, 1, self.key, self.token, self.lease_ms)
                if renewed:
                    self._valid_until = sent_at + self.lease_ms / 1000 * VALID_FRACTION
                else:
                    log.warning("ha %s: the lease was lost: standing by", self.group)
                    self._holding = False
                return
            won = await self.client.set(self.key, self.token, nx=True, px=self.lease_ms)
            if not won:
                seen = await self.client.get(self.epoch_key)
                with contextlib.suppress(TypeError, ValueError):
                    self.known_epoch = max(self.known_epoch, int(seen or 0))
                return
            try:
                self.epoch = int(
                    await self.client.eval(_NEXT_EPOCH, 1, self.epoch_key, self.known_epoch)
                )
            except BaseException:  # no epoch, no publishing: give the lease back at once
                self._holding = True
                await self._give_back()
                raise
            self.known_epoch = self.epoch
            self._holding = True
            self._valid_until = sent_at + self.lease_ms / 1000 * VALID_FRACTION
            log.warning(
                "ha %s: lease taken, epoch %d: this instance publishes",
                self.group,
                self.epoch,
                extra={"epoch": self.epoch},
            )
        except (RedisError, RedisClusterException, OSError) as exc:  # the gate closes itself
            log.debug("ha %s: lease request failed: %s", self.group, exc)

    async def _release(self) -> None:
        await self._give_back()
        await self.client.aclose()

    async def _give_back(self) -> None:
        """Delete the lease if it is still ours (a clean stop: the standby takes over at once)."""
        if self._holding:
            self._holding = False
            try:
                await asyncio.wait_for(
                    self.client.eval(_RELEASE, 1, self.key, self.token), self.lease_ms / 1000
                )
            except (RedisError, RedisClusterException, OSError, TimeoutError):
                pass
