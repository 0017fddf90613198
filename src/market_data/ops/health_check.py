"""``market-data health``: check a running service from the outside.

Asks ``/health`` and ``/ready`` and prints one line per check (process,
readiness, exchange connections, Redis, freshness of every book) with its
reason, then exits 0 when all pass, 1 when one fails and 2 when the service
cannot be reached at all. It uses only the standard library, so it also
serves as the container's HEALTHCHECK (no curl in the image).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

DEFAULT_URL = "http://127.0.0.1:8080"
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


def run_checks(base_url: str, timeout_s: float = 3.0) -> list[Check]:
    """Every check against the service at ``base_url``; raises UnreachableError."""
    base = base_url.rstrip("/")
    checks: list[Check] = []
    status, body = _get_json(f"{base}/health", timeout_s)
    healthy = status == 200 and isinstance(body, dict) and body.get("status") == "healthy"
    version = body.get("version", "?") if isinstance(body, dict) else "?"
    checks.append(
        Check("health", healthy, f"healthy (version {version})" if healthy else f"HTTP {status}")
    )

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


_NON_BOOK = ("redis:", "feeds:", "service:", "shutting down")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=DEFAULT_URL, help=f"base URL of the service's HTTP port ({DEFAULT_URL})"
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for each answer (3)"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Print one line per check; the exit code says whether all passed."""
    stream = out if out is not None else sys.stdout
    try:
        checks = run_checks(args.url, args.timeout)
    except UnreachableError as error:
        print(f"FAIL health: service unreachable: {error}", file=stream)
        return EXIT_UNREACHABLE
    for check in checks:
        print(check.line(), file=stream)
    return EXIT_OK if all(check.ok for check in checks) else EXIT_FAILED
