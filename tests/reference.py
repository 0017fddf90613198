"""A deliberately simple, independent order-book reference for the tests.

It shares no code with the package: stdlib ``json`` for parsing, ``Decimal``
for values, a plain dict per side and ``sorted`` for order, and the snapshot
bridge written straight from the exchange's procedure. It keeps a float mirror
of each side only so that comparisons with the package's book stay cheap.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class RefSide:
    levels: dict[Decimal, str] = field(default_factory=dict)  # price -> qty as sent
    spelling: dict[Decimal, str] = field(default_factory=dict)  # price -> price as sent
    mirror: dict[float, float] = field(default_factory=dict)

    def set(self, price: str, qty: str) -> None:
        key = Decimal(price)
        if Decimal(qty) == 0:
            if key in self.levels:
                del self.levels[key]
                del self.mirror[float(key)]
            return
        self.levels[key] = qty
        self.spelling[key] = price
        self.mirror[float(key)] = float(Decimal(qty))

    def top(self, n: int, best_high: bool) -> list[list[str]]:
        keys = sorted(self.levels, reverse=best_high)[:n]
        return [[self.spelling[k], self.levels[k]] for k in keys]


@dataclass
class RefBook:
    bids: RefSide = field(default_factory=RefSide)
    asks: RefSide = field(default_factory=RefSide)
    u: int = 0

    def apply(self, data: dict[str, object]) -> None:
        for price, qty in data["b"]:  # type: ignore[attr-defined]
            self.bids.set(price, qty)
        for price, qty in data["a"]:  # type: ignore[attr-defined]
            self.asks.set(price, qty)


@dataclass(frozen=True)
class RefStep:
    U: int  # noqa: N815
    u: int
    pu: int
    first: bool


def reference_steps(
    frames: list[bytes], snapshot: bytes, symbol: str, book: RefBook
) -> Iterator[RefStep]:
    """Apply ``symbol``'s diff events on ``snapshot``; yield after each applied one.

    ``book`` is mutated in place, so the caller can compare it at each step.
    """
    snap = json.loads(snapshot)
    last_id = snap["lastUpdateId"]
    for price, qty in snap["bids"]:
        book.bids.set(price, qty)
    for price, qty in snap["asks"]:
        book.asks.set(price, qty)
    book.u = last_id
    started = False
    for raw in frames:
        frame = json.loads(raw)
        data = frame["data"]
        if data.get("e") != "depthUpdate" or data["s"] != symbol:
            continue
        if "@depth" not in frame["stream"] or frame["stream"].split("@")[1] != "depth":
            continue
        if not started:
            if data["u"] < last_id:
                continue
            ok = data["U"] <= last_id <= data["u"] or data["pu"] == last_id
            assert ok, f"no event bridges snapshot {last_id}"
        else:
            assert data["pu"] == book.u, f"gap in the capture at u={data['u']}"
        book.apply(data)
        book.u = data["u"]
        yield RefStep(data["U"], data["u"], data["pu"], not started)
        started = True
