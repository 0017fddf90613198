"""The optional ``ui_token``: who may open the page and its WebSocket.

The token comes in the query (``/ui?token=...``: what a browser can carry
into its WebSocket) or a header (``Authorization: Bearer ...`` or
``X-UI-Token``). It is compared in constant time; an empty ``ui_token``
leaves the view open to whoever reaches ``http_host``.
"""

import hmac

from aiohttp import web


def presented_token(request: web.Request) -> str:
    """The token a request carries (query first, then headers), or ""."""
    token = request.query.get("token")
    if token:
        return token
    authorization = request.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-UI-Token", "")


def token_ok(expected: str, presented: str) -> bool:
    """True when no token is configured, or ``presented`` is it (constant time)."""
    if not expected:
        return True
    return hmac.compare_digest(expected.encode(), presented.encode())


def require_token(expected: str, request: web.Request) -> None:
    """Raise 401 unless the request may see the view."""
    if not token_ok(expected, presented_token(request)):
        raise web.HTTPUnauthorized(
            text="401: this view needs its access token (?token=... or Authorization: Bearer)",
            headers={"WWW-Authenticate": 'Bearer realm="market-data"'},
        )
