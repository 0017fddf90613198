"""The simulated exchange's ``GET /fapi/v1/exchangeInfo`` body.

Shaped like the real answer (Binance USD-M futures "Exchange Information"
docs): ``timezone``, ``serverTime``, ``rateLimits`` and one entry per contract
with ``status``, ``contractType``, ``baseAsset``/``quoteAsset`` and its
``filters``, numbers as decimal strings. ``PRICE_FILTER.tickSize`` and
``LOT_SIZE.stepSize`` follow each symbol's decimals in ``sim/market.py``.
Besides the symbols it streams, it lists a few that no longer trade (the real
exchange keeps settled and delisted contracts listed with such statuses), so
"listed but not trading" can be told from "not listed".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from market_data.sim.market import format_fixed, spec_for

#: Listed but not trading (and not streamed): symbol -> status.
EXTRA_LISTED = {"LUNAUSDT": "SETTLING", "SRMUSDT": "CLOSE", "NEWUSDT": "PENDING_TRADING"}


def _contract(symbol: str, status: str) -> dict[str, Any]:
    spec = spec_for(symbol)
    quote = next((q for q in ("USDT", "USDC", "BTC") if symbol.endswith(q)), "USDT")
    return {
        "symbol": symbol,
        "pair": symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": status,
        "baseAsset": symbol[: -len(quote)],
        "quoteAsset": quote,
        "marginAsset": quote,
        "pricePrecision": spec.price_decimals,
        "quantityPrecision": spec.qty_decimals,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": format_fixed(1, spec.price_decimals),
                "maxPrice": "1000000",
                "tickSize": format_fixed(1, spec.price_decimals),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": format_fixed(1, spec.qty_decimals),
                "maxQty": "100000",
                "stepSize": format_fixed(1, spec.qty_decimals),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": format_fixed(1, spec.qty_decimals),
                "maxQty": "1000",
                "stepSize": format_fixed(1, spec.qty_decimals),
            },
        ],
        "orderTypes": ["LIMIT", "MARKET", "STOP", "TAKE_PROFIT"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def exchange_info(
    streamed: Iterable[str], statuses: Mapping[str, str], now_ms: int
) -> dict[str, Any]:
    """The body: every streamed symbol (status from ``statuses``, default TRADING) and extras."""
    merged = {**EXTRA_LISTED, **dict.fromkeys(streamed, "TRADING"), **statuses}
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 2400,
            },
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        ],  # fmt: skip
        "exchangeFilters": [],
        "assets": [],
        "symbols": [_contract(name, status) for name, status in merged.items()],
    }
