"""``market-data health``: check a running service from the outside.

Asks ``/health`` and ``/ready`` and prints one line per check (process,
readiness, exchange connections, Redis, freshness of every book) with its
reason, then exits 0 when all pass, 1 when one fails and 2 when the service
cannot be reached at all. It uses only the standard library. The URL comes
from ``--url``, else from the same config as ``run`` (``http_host`` and
``health_port``). ``--liveness`` asks ``/health`` alone: the container's
HEALTHCHECK uses it, since a Redis outage makes the service not ready but
needs no restart.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

from market_data.arg_types import http_url, positive_float
from market_data.errors import MarketDataError

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    reason: str

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.name}: {self.reason}"


class UnreachableError(Exception):
    """The service did not answer HTTP at all."""


def _get_json(url: str, timeout_s: float) -> tuple[int, Any]:
    """(status, decoded body) for any HTTP answer; UnreachableError when there is none."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        try:
            return error.code, json.loads(body)
        except ValueError:
            return error.code, None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise UnreachableError(f"{url}: {reason}") from None
    except ValueError:
        raise UnreachableError(f"{url}: the answer is not JSON") from None


def run_checks(base_url: str, timeout_s: float = 3.0, liveness: bool = False) -> list[Check]:
    """Every check against the service at ``base_url`` (only ``/health`` for ``liveness``).

    Raises UnreachableError.
    """
    base = base_url.rstrip("/")
    checks: list[Check] = []
    status, body = _get_json(f"{base}/health", timeout_s)
    healthy = status == 200 and isinstance(body, dict) and body.get("status") == "healthy"
    version = body.get("version", "?") if isinstance(body, dict) else "?"
    checks.append(
        Check("health", healthy, f"healthy (version {version})" if healthy else f"HTTP {status}")
    )
    if liveness:
        return checks

    status, body = _get_json(f"{base}/ready", timeout_s)
    if not isinstance(body, dict) or "checks" not in body:
        checks.append(Check("ready", False, f"HTTP {status}: unexpected answer"))
        return checks
    reasons: list[str] = body.get("reasons", [])
    ready = status == 200
    checks.append(Check("ready", ready, "ready" if ready else "; ".join(reasons)))

    details: dict[str, Any] = body["checks"]
    feeds = details.get("feeds", {})
    up, total = feeds.get("up", 0), feeds.get("total", 0)
    down = feeds.get("down", [])
    feed_reason = f"{up}/{total} exchange connections up"
    if down:
        feed_reason += f" (down: {', '.join(down)})"
    checks.append(Check("connections", up > 0, feed_reason))

    redis = details.get("redis", {})
    redis_ok = bool(redis.get("ok"))
    checks.append(
        Check(
            "redis",
            redis_ok,
            f"answers PING at {redis.get('url')}" if redis_ok else str(redis.get("reason")),
        )
    )

    max_age = details.get("max_book_age_s")
    symbol_reasons = {
        reason.split(":", 1)[0]: reason for reason in reasons if not reason.startswith(_NON_BOOK)
    }
    for symbol, book in details.get("books", {}).items():
        problem = symbol_reasons.get(symbol)
        age = book.get("age_s")
        shown_age = "never updated" if age is None else f"updated {age:.2f}s ago"
        if problem is None:
            reason = f"{book.get('state')}, {shown_age} (limit {max_age}s)"
        else:
            reason = problem.split(": ", 1)[-1]
        checks.append(Check(f"book {symbol}", problem is None, reason))
    return checks


def url_from_config(path: str | None) -> str:
    """The service's own address, from the config ``run`` reads."""
    from market_data.ops.config import load_config

    config = load_config(path)
    if not config.health_port:
        raise MarketDataError(
            "health_port is 0 in the config (a free port picked at start): pass --url"
        )
    return local_http_url(config.http_host, config.health_port)


def local_http_url(host: str, port: int) -> str:
    """``http://host:port`` to reach a service bound to ``host`` from this machine (a
    wildcard address is reached on the loopback; an IPv6 address goes in brackets)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


_NON_BOOK = ("redis:", "feeds:", "service:", "shutting down")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        type=http_url,
        help="base URL of the service's HTTP port (default: http_host and health_port "
        "of the config)",
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="the service's YAML config (default: as for run: config.yaml, "
        "config.example.yaml, MARKET_DATA_* overrides)",
    )
    parser.add_argument(
        "--liveness",
        action="store_true",
        help="only check that the process answers /health (for container health checks)",
    )
    parser.add_argument(
        "--timeout", type=positive_float, default=3.0, help="seconds to wait for each answer (3)"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print one line per check; the exit code says whether all passed."""
    stream = out if out is not None else sys.stdout
    url = args.url or url_from_config(args.config)
    try:
        checks = run_checks(url, args.timeout, liveness=args.liveness)
    except UnreachableError as error:
        print(f"FAIL health: service unreachable: {error}", file=stream)
        return EXIT_UNREACHABLE
    for check in checks:
        print(check.line(), file=stream)
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILED
