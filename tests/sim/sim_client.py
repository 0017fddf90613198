"""A plain client for the simulated exchange's tests: dict books and frame reading.

It shares no code with the simulator: stdlib ``json``, ``Decimal`` for ordering,
and the snapshot bridge written from the exchange's documented procedure.
"""

import asyncio
import json
from decimal import Decimal
from typing import Any

import aiohttp

Level = tuple[str, str]


class ClientBook:
    """A book rebuilt the documented way: snapshot, then diffs with u > lastUpdateId."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.last_update_id: int = snapshot["lastUpdateId"]
        self.bids = {price: qty for price, qty in snapshot["bids"]}
        self.asks = {price: qty for price, qty in snapshot["asks"]}
        self.last_u: int | None = None

    def apply(self, diff: dict[str, Any]) -> bool:
        """Apply a diff; False when it is too old to matter. Raises on a broken chain."""
        if diff["u"] < self.last_update_id:
            return False
        if self.last_u is None:
            assert diff["U"] <= self.last_update_id <= diff["u"] or diff["pu"] == (
                self.last_update_id
            ), "first diff does not overlap the snapshot"
        else:
            assert diff["pu"] == self.last_u, "pu chain broken"
        for side, changes in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for price, qty in changes:
                if Decimal(qty) == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_u = diff["u"]
        return True

    def sides(self) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), key=lambda level: Decimal(level[0]), reverse=True)
        asks = sorted(self.asks.items(), key=lambda level: Decimal(level[0]))
        return bids, asks


async def receive_json(ws: aiohttp.ClientWebSocketResponse, within_s: float = 5.0) -> Any:
    """Next text frame, decoded with the stdlib (fails the test on anything else)."""
    message = await ws.receive(timeout=within_s)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def receive_until(
    ws: aiohttp.ClientWebSocketResponse, count: int, stream: str, within_s: float = 10.0
) -> list[dict[str, Any]]:
    """The ``data`` of the next ``count`` frames of ``stream`` (other frames skipped)."""
    found: list[dict[str, Any]] = []
    async with asyncio.timeout(within_s):
        while len(found) < count:
            frame = await receive_json(ws, within_s)
            if frame.get("stream") == stream:
                found.append(frame["data"])
    return found
