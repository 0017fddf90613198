"""REST requests to the exchange, with its failures made explicit.

aiohttp errors never leave this module: the caller sees :class:`RestError` or
one of its kinds, each of which calls for a different reaction (back off, fall
back to partial depth, retry). Every request has its own timeout, named in the
error when it fires. Given the address's :class:`WeightBudget`, a request also
keeps to it here, the one place every answer passes: not sent while a 429's
Retry-After runs (asking then is a ban), the exchange's used weight read from
every answer, and a 429 or 418 held for every request of the address.
"""

import time
from collections.abc import Callable

import aiohttp

from market_data.core.weights import WeightBudget
from market_data.errors import MarketDataError

DEFAULT_TIMEOUT_S = 10.0


class RestError(MarketDataError):
    """A request failed; ``status`` is the HTTP status if any, ``code`` the exchange's."""

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


#: The depth snapshot's failures are REST failures like any other.
SnapshotError = RestError


class GeoBlockedError(RestError):
    """HTTP 451: REST is unavailable from here; partial depth still works."""


class RateLimitedError(RestError):
    """HTTP 429 (or 418, banned): wait ``retry_after_s`` before asking again."""

    def __init__(self, message: str, status: int, retry_after_s: float) -> None:
        super().__init__(message, status)
        self.retry_after_s = retry_after_s


class InvalidSymbolError(RestError):
    """HTTP 400 with code -1121: the exchange does not list this symbol."""


async def rest_get(
    session: aiohttp.ClientSession,
    rest_base_url: str,
    path: str,
    params: dict[str, str],
    what: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    budget: WeightBudget | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[bytes, int | None]:
    """``GET path``: the body and the exchange's used weight (if it said).

    With ``budget`` (``clock`` is its wall clock) the request keeps to the address's
    budget as the module docstring says; taking weight for it is the caller's.
    """
    if budget is not None and (held := budget.held_for(clock())) > 0:
        raise RateLimitedError(
            f"{what}: not sent, the exchange's Retry-After runs {held:.0f}s more", 429, held
        )
    url = f"{rest_base_url.rstrip('/')}{path}"
    try:
        async with session.get(
            url, params=params, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            body = await response.read()
            used_header = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
            used = int(used_header) if used_header.isdigit() else None
            status = response.status
            retry_after = response.headers.get("Retry-After", "")
    except TimeoutError:
        raise RestError(f"{what} request: no answer within {timeout_s:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise RestError(f"{what} request failed: {reason}") from None
    if budget is not None and used is not None:  # on errors too: a 429's count is the news
        budget.observe_server_count(used, clock())
    if status == 200:
        return body, used
    detail = body[:200].decode("utf-8", "replace")
    if status == 451:
        raise GeoBlockedError(f"{what}: HTTP 451 (geo-blocked): {detail}", status)
    if status in (418, 429):
        wait = float(retry_after) if retry_after.isdigit() else 60.0
        if budget is not None:  # no request of the address before it runs out
            budget.hold(wait, clock())
        raise RateLimitedError(f"{what}: HTTP {status}: {detail}", status, wait)
    if status == 400 and b'"code":-1121' in body.replace(b" ", b""):
        raise InvalidSymbolError(f"{what}: HTTP 400: {detail}", status, -1121)
    if status == 404:  # most often a base URL with a path (pasted from the API docs)
        raise RestError(
            f"{what}: HTTP 404 from {url}: {detail} (check exchange_rest_url: the "
            "exchange's address only, e.g. https://fapi.binance.com; the paths are added)",
            status,
        )
    raise RestError(f"{what}: HTTP {status}: {detail}", status)


async def fetch_snapshot(
    session: aiohttp.ClientSession,
    rest_base_url: str,
    symbol: str,
    limit: int,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    budget: WeightBudget | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[bytes, int | None]:
    """``GET /fapi/v1/depth``: the body and the exchange's used weight (if it said)."""
    params = {"symbol": symbol, "limit": str(limit)}
    return await rest_get(
        session, rest_base_url, "/fapi/v1/depth", params, f"{symbol} snapshot", timeout_s,
        budget=budget, clock=clock,
    )  # fmt: skip


async def fetch_exchange_info(
    session: aiohttp.ClientSession,
    rest_base_url: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    budget: WeightBudget | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[bytes, int | None]:
    """``GET /fapi/v1/exchangeInfo`` (weight 1): every contract, its status and filters."""
    return await rest_get(
        session, rest_base_url, "/fapi/v1/exchangeInfo", {}, "exchangeInfo", timeout_s,
        budget=budget, clock=clock,
    )  # fmt: skip
