"""The exchange's listing, kept by the engine: checked at start, refreshed, applied.

``GET /fapi/v1/exchangeInfo`` before any feed starts: configured symbols the
exchange does not list as trading stop the service (or are skipped), ``symbols:
all`` is resolved, and each symbol gets its precision. Every
``exchange_info_refresh_s`` the listing is read again: halts, resumptions and,
under ``symbols: all``, new listings with connections of their own.

A mixin of :class:`~market_data.service.engine.MarketDataService`: it works on
the engine's symbols, publisher and feeds, declared below for the type checker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence

import aiohttp

from market_data.binance.decode import DecodeError
from market_data.binance.instruments import (
    Instrument,
    all_perpetuals,
    check_symbols,
    decode_exchange_info,
)
from market_data.binance.rest import RestError, fetch_exchange_info
from market_data.binance.streams import StreamPlan
from market_data.core.backoff import backoff
from market_data.core.weights import WeightBudget
from market_data.errors import MarketDataError
from market_data.ops.config import Config
from market_data.service.feed import FeedConnection
from market_data.service.publisher import Publisher
from market_data.service.symbols import SymbolState

log = logging.getLogger(__name__)

#: Tries of exchangeInfo at start before configured symbols are served unchecked.
FIRST_LISTING_ATTEMPTS = 3


class ListingMixin:
    """The listing side of the engine (see the module doc)."""

    config: Config
    symbols: dict[str, SymbolState]
    skipped: dict[str, str]
    instruments: dict[str, Instrument]
    publisher: Publisher
    connections: list[FeedConnection]
    partial_mode: bool
    _session: aiohttp.ClientSession | None
    wall_clock: Callable[[], float]

    @property
    def weights(self) -> WeightBudget:
        raise NotImplementedError

    def _new_state(self, symbol: str) -> SymbolState:
        raise NotImplementedError

    def _start_backfill(self, state: SymbolState) -> None:
        raise NotImplementedError

    def _plans(self, symbols: Sequence[str] | None = None) -> list[StreamPlan]:
        raise NotImplementedError

    def _start_feeds(self, plans: list[StreamPlan]) -> None:
        raise NotImplementedError

    async def _fetch_listing(self) -> dict[str, Instrument]:
        assert self._session is not None
        self.weights.try_acquire(1, self.wall_clock())
        body, _ = await fetch_exchange_info(
            self._session,
            self.config.exchange_rest_url,
            budget=self.weights,
            clock=self.wall_clock,
        )
        return decode_exchange_info(body)

    async def _first_listing(self, shutdown: asyncio.Event) -> bool:
        """Check the symbols against exchangeInfo before any feed starts; False on shutdown.

        Configured symbols the exchange does not list as TRADING stop the service
        (MarketDataError, one line each) or, with ``unknown_symbols: skip``, are
        left out. If exchangeInfo cannot be had, configured symbols are served
        unchecked (the periodic refresh tries again); ``symbols: all`` waits for it.
        """
        cfg = self.config
        delays = backoff(cfg.reconnect_delay_s, cfg.max_reconnect_delay_s)
        for attempt in itertools.count(1):
            try:
                listed = await self._fetch_listing()
            except (RestError, DecodeError) as exc:
                if not cfg.all_symbols and attempt >= FIRST_LISTING_ATTEMPTS:
                    log.warning(
                        "exchangeInfo unavailable (%s): serving %s unchecked; asking again "
                        "every %.0fs",
                        exc,
                        ", ".join(self.symbols),
                        cfg.exchange_info_refresh_s,
                    )
                    return True
                delay = next(delays)
                log.warning("exchangeInfo unavailable (%s); asking again in %.1fs", exc, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(shutdown.wait(), delay)
                if shutdown.is_set():
                    return False
                continue
            self._check_listing(listed)
            self._apply_listing(listed)
            return True
        return True  # pragma: no cover - the loop only ends by returning

    def _check_listing(self, listed: dict[str, Instrument]) -> None:
        cfg = self.config
        if cfg.all_symbols:
            chosen = all_perpetuals(listed, cfg.symbols_quote_asset)
            if not chosen:
                quote = f" quoted in {cfg.symbols_quote_asset}" if cfg.symbols_quote_asset else ""
                raise MarketDataError(
                    f"symbols: all: the exchange lists no trading perpetual{quote}"
                )
            for symbol in chosen:
                self.symbols[symbol] = self._new_state(symbol)
            log.info("symbols: all: %d trading perpetuals", len(chosen))
            return
        check = check_symbols(self.symbols, listed)
        if not check.problems:
            return
        if cfg.unknown_symbols == "fail":
            raise MarketDataError(
                "\n".join(
                    [
                        "symbols the exchange does not list as trading:",
                        *check.lines(),
                        "(fix symbols, or set unknown_symbols: skip to serve the others)",
                    ]
                )
            )
        for symbol, why in check.problems.items():
            log.warning("%s: %s; skipped (unknown_symbols: skip)", symbol, why)
            self.skipped[symbol] = why
            del self.symbols[symbol]
        if not self.symbols:
            raise MarketDataError("no configured symbol is listed as trading: nothing to serve")

    def _apply_listing(self, listed: dict[str, Instrument]) -> None:
        """Precision of every symbol, and halts and resumptions of trading."""
        self.instruments = listed
        for symbol, state in self.symbols.items():
            instrument = listed.get(symbol)
            if instrument is not None:
                state.precision = instrument.precision
            halted = instrument is None or not instrument.trading
            if halted == state.book.halted:
                continue
            if halted:
                status = "delisted" if instrument is None else instrument.status
                log.warning(
                    "%s: the exchange lists it as %s: published as halted, no levels",
                    symbol,
                    status,
                    extra={"symbol": symbol, "status": status},
                )
                state.book.halt()
                state.book.drain()
            else:
                log.info("%s: trading again: resyncing", symbol, extra={"symbol": symbol})
                state.book.resume()
            self.publisher.mark(state)

    async def _refresh_listing(self) -> None:
        """Ask exchangeInfo every ``exchange_info_refresh_s``: halts, resumptions, listings."""
        while True:
            await asyncio.sleep(self.config.exchange_info_refresh_s)
            await self.refresh_listing()

    async def refresh_listing(self) -> None:
        """One refresh of the listing (a failure is logged; the next refresh tries again)."""
        try:
            listed = await self._fetch_listing()
        except (RestError, DecodeError) as exc:
            log.warning("exchangeInfo refresh failed: %s", exc)
            return
        self._apply_listing(listed)
        if self.config.all_symbols:
            self._add_listings(all_perpetuals(listed, self.config.symbols_quote_asset))

    def _add_listings(self, wanted: Sequence[str]) -> None:
        """New listings under ``symbols: all``: their own connections, started now."""
        new = [symbol for symbol in wanted if symbol not in self.symbols]
        if not new:
            return
        log.info("new listings: %s", ", ".join(new), extra={"symbols": new})
        for symbol in new:
            state = self.symbols[symbol] = self._new_state(symbol)
            instrument = self.instruments.get(symbol)
            if instrument is not None:
                state.precision = instrument.precision
            if self.partial_mode:
                state.book.use_partial(self.config.partial_depth_levels)
            self._start_backfill(state)
            self.publisher.mark(state)
        taken = {c.plan.name for c in self.connections}
        plans: list[StreamPlan] = []
        for plan in self._plans(new):
            name = plan.name
            while name in taken:  # "depth-1" exists: the new one is "depth-1+2"
                name = f"{name}+{len(taken)}"
            taken.add(name)
            plans.append(dataclasses.replace(plan, name=name))
        self._start_feeds(plans)
