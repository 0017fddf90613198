"""The recent trades of every symbol, for the web view's tape.

A sink like Redis and shared memory (``publish`` is synchronous and O(1)): it
keeps the last :data:`TAPE_LENGTH` published trades per symbol in a bounded
deque, so the page shows trades without a Redis client and without ever
growing. It is this instance's own output (not ``fenced``): a standby
(``ha_group``) fills it too, while it holds its trades back from Redis.
"""

from collections import deque
from dataclasses import dataclass

from market_data.outputs.sinks import TradeUpdate, Update

#: Trades kept per symbol (the page shows at most this many).
TAPE_LENGTH = 40


@dataclass(frozen=True, slots=True)
class TapeTrade:
    trade_id: int
    price: float
    quantity: float
    time_ms: int  # the exchange's trade time
    is_buyer_maker: bool  # True: the seller was the aggressor (a sell)


class TradeTape:
    """Sink that remembers the last trades of each symbol (newest last)."""

    fenced = False

    def __init__(self, length: int = TAPE_LENGTH) -> None:
        self.length = length
        self._trades: dict[str, deque[TapeTrade]] = {}
        #: Trades taken, per symbol: a view changes when this does.
        self.counts: dict[str, int] = {}

    def publish(self, update: Update) -> None:
        if type(update) is not TradeUpdate:
            return
        tape = self._trades.get(update.symbol)
        if tape is None:
            tape = self._trades[update.symbol] = deque(maxlen=self.length)
        tape.append(
            TapeTrade(
                update.trade_id,
                update.price,
                update.quantity,
                update.trade_time_ms,
                update.is_buyer_maker,
            )
        )
        self.counts[update.symbol] = self.counts.get(update.symbol, 0) + 1

    def recent(self, symbol: str) -> list[TapeTrade]:
        """The symbol's kept trades, newest first."""
        return list(reversed(self._trades.get(symbol, ())))

    async def aclose(self) -> None:
        self._trades.clear()
