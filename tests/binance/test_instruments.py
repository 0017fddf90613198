"""exchangeInfo: decoding the documented shape, precision, the check of configured symbols."""

import json

import pytest

from market_data.binance.decode import DecodeError
from market_data.binance.instruments import (
    DEFAULT_DECIMALS,
    all_perpetuals,
    check_symbols,
    decimals_of,
    decode_exchange_info,
)

# Trimmed from the "Exchange Information" example of Binance's USD-M futures docs.
DOCUMENTED = {
    "exchangeFilters": [],
    "rateLimits": [{"interval": "MINUTE", "intervalNum": 1, "limit": 2400,
                    "rateLimitType": "REQUEST_WEIGHT"}],
    "serverTime": 1565613908500,
    "assets": [{"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10"}],
    "symbols": [
        {
            "symbol": "BLZUSDT", "pair": "BLZUSDT", "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000, "onboardDate": 1598252400000, "status": "TRADING",
            "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
            "baseAsset": "BLZ", "quoteAsset": "USDT", "marginAsset": "USDT",
            "pricePrecision": 5, "quantityPrecision": 0, "baseAssetPrecision": 8,
            "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": ["STORAGE"],
            "settlePlan": 0, "triggerProtect": "0.15",
            "filters": [
                {"filterType": "PRICE_FILTER", "maxPrice": "300", "minPrice": "0.0001",
                 "tickSize": "0.0001"},
                {"filterType": "LOT_SIZE", "maxQty": "10000000", "minQty": "1", "stepSize": "1"},
                {"filterType": "MARKET_LOT_SIZE", "maxQty": "590119", "minQty": "1",
                 "stepSize": "1"},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.1500",
                 "multiplierDown": "0.8500", "multiplierDecimal": 4},
            ],
            "OrderType": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
            "liquidationFee": "0.010000", "marketTakeBound": "0.30",
        },
        {"symbol": "BTCUSDT_250926", "pair": "BTCUSDT", "contractType": "CURRENT_QUARTER",
         "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
         "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.10"}]},
        {"symbol": "LUNAUSDT", "contractType": "PERPETUAL", "status": "SETTLING",
         "quoteAsset": "USDT", "filters": []},
        {"symbol": "ETHBTC", "contractType": "PERPETUAL", "status": "TRADING",
         "quoteAsset": "BTC", "filters": []},
    ],
    "timezone": "UTC",
}  # fmt: skip


def test_the_documented_body_decodes_with_its_filters() -> None:
    listed = decode_exchange_info(json.dumps(DOCUMENTED).encode())
    blz = listed["BLZUSDT"]
    assert (blz.status, blz.contract_type, blz.quote_asset) == ("TRADING", "PERPETUAL", "USDT")
    assert (blz.tick_size, blz.step_size, blz.price_decimals, blz.qty_decimals) == (
        "0.0001", "1", 4, 0,
    )  # fmt: skip
    assert listed["BTCUSDT_250926"].price_decimals == 1
    assert listed["LUNAUSDT"].qty_decimals == DEFAULT_DECIMALS  # no filter: the finest


@pytest.mark.parametrize(
    ("step", "decimals"), [("0.10", 1), ("0.001", 3), ("1", 0), ("10", 0), ("0.00001000", 5)]
)
def test_decimals_of_a_tick_or_step(step: str, decimals: int) -> None:
    assert decimals_of(step) == decimals


def test_configured_symbols_are_checked_one_line_each_with_a_did_you_mean() -> None:
    listed = decode_exchange_info(json.dumps(DOCUMENTED).encode())
    check = check_symbols(["BLZUSDT", "BLZUSTD", "LUNAUSDT", "XYZUSDT"], listed)
    assert check.serve == ("BLZUSDT",)
    assert check.lines() == [
        "BLZUSTD: not listed by the exchange (did you mean BLZUSDT?)",
        "LUNAUSDT: listed with status SETTLING, not TRADING",
        "XYZUSDT: not listed by the exchange",
    ]


def test_all_means_trading_perpetuals_optionally_of_one_quote_asset() -> None:
    listed = decode_exchange_info(json.dumps(DOCUMENTED).encode())
    assert all_perpetuals(listed) == ("BLZUSDT", "ETHBTC")
    assert all_perpetuals(listed, "USDT") == ("BLZUSDT",)


@pytest.mark.parametrize("body", [b"", b"{}", b'{"symbols": [{"symbol": 1}]}', b"[" * 5000])
def test_a_body_that_is_not_exchange_info_is_a_decode_error(body: bytes) -> None:
    with pytest.raises(DecodeError, match="malformed exchangeInfo"):
        decode_exchange_info(body)
