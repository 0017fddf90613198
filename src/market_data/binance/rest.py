"""The REST depth snapshot request, with the exchange's failures made explicit.

aiohttp errors never leave this module: the caller sees :class:`SnapshotError`
or one of its kinds, each of which calls for a different reaction (back off,
fall back to partial depth, retry).
"""

import aiohttp

from market_data.errors import MarketDataError


class SnapshotError(MarketDataError):
    """The snapshot could not be fetched; ``status`` is the HTTP status if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GeoBlockedError(SnapshotError):
    """HTTP 451: REST is unavailable from here; partial depth still works."""


class RateLimitedError(SnapshotError):
    """HTTP 429 (or 418, banned): wait ``retry_after_s`` before asking again."""

    def __init__(self, message: str, status: int, retry_after_s: float) -> None:
        super().__init__(message, status)
        self.retry_after_s = retry_after_s


async def fetch_snapshot(
    session: aiohttp.ClientSession,
    rest_base_url: str,
    symbol: str,
    limit: int,
    timeout_s: float = 10.0,
) -> tuple[bytes, int | None]:
    """``GET /fapi/v1/depth``: the body and the exchange's used weight (if it said)."""
    url = f"{rest_base_url.rstrip('/')}/fapi/v1/depth"
    try:
        async with session.get(
            url,
            params={"symbol": symbol, "limit": str(limit)},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            body = await response.read()
            used_header = response.headers.get("X-MBX-USED-WEIGHT-1M", "")
            used = int(used_header) if used_header.isdigit() else None
            status = response.status
            retry_after = response.headers.get("Retry-After", "")
    except TimeoutError:
        raise SnapshotError(f"{symbol} snapshot request: no answer within {timeout_s:g}s") from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        raise SnapshotError(f"{symbol} snapshot request failed: {reason}") from None
    if status == 200:
        return body, used
    detail = body[:200].decode("utf-8", "replace")
    if status == 451:
        raise GeoBlockedError(f"{symbol} snapshot: HTTP 451 (geo-blocked): {detail}", status)
    if status in (418, 429):
        wait = float(retry_after) if retry_after.isdigit() else 60.0
        raise RateLimitedError(f"{symbol} snapshot: HTTP {status}: {detail}", status, wait)
    raise SnapshotError(f"{symbol} snapshot: HTTP {status}: {detail}", status)
