"""The exchange's precision for the figures this service computes itself.

Prices and quantities taken from the exchange are published as they came (the
shortest decimal of the parsed double is the exchange's own string). Sums and
differences are not: adding 0.1 and 0.2 gives 0.30000000000000004. Every
computed figure is therefore rounded to the decimals the exchange itself uses
for it: base volume to the step size, prices and price changes to the tick
size, quote volume to both together (price x quantity). Until exchangeInfo has
said, 8 decimals (its finest) are used.
"""

from dataclasses import dataclass

#: Decimals used where the exchange's filters are unknown (its finest precision).
DEFAULT_DECIMALS = 8


@dataclass(frozen=True, slots=True)
class Precision:
    """Decimals of one contract's tick size (prices) and step size (quantities)."""

    price_decimals: int = DEFAULT_DECIMALS
    qty_decimals: int = DEFAULT_DECIMALS

    def price(self, value: float | None) -> float | None:
        return None if value is None else round(value, self.price_decimals)

    def qty(self, value: float) -> float:
        return round(value, self.qty_decimals)

    def quote(self, value: float) -> float:
        return round(value, min(self.price_decimals + self.qty_decimals, 12))

    def percent(self, value: float | None) -> float | None:
        """A percentage as the exchange's 24h ticker writes it (3 decimals)."""
        return None if value is None else round(value, 3)
