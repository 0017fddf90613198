"""A real InfluxDB-line-protocol receiver over HTTP, as QuestDB serves it, for the tests.

``POST /write?precision=n|u|ms|s`` and ``POST /api/v2/write``: every line is
parsed strictly (measurement, tags, fields with their ILP types, the
timestamp); a line that does not parse fails the whole request with 400 and is
kept in ``errors``. ``fail`` makes it answer 503 (an outage), ``reject`` 400
(the next ``reject`` requests, refused as bad data).
"""

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_INT = re.compile(r"^-?\d+i$")
_TS = re.compile(r"^\d+t$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Row:
    table: str
    tags: dict[str, str]
    fields: dict[str, Any]
    timestamp_ns: int


@dataclass
class Receiver:
    rows: list[Row] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: int = 0
    fail: bool = False
    reject: int = 0  # answer this many requests 400 with QuestDB's error body


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and not escaped."""
    parts, current, quoted, i = [], [], False, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    if quoted:
        raise ValueError("unterminated string")
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _value(text: str) -> Any:
    if text in ("t", "T", "true", "True", "TRUE"):
        return True
    if text in ("f", "F", "false", "False", "FALSE"):
        return False
    if _INT.match(text):
        return int(text[:-1])
    if _TS.match(text):
        return ("timestamp_us", int(text[:-1]))
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:
        return _unescape(text[1:-1])
    return float(text)  # ValueError if it is none of the ILP types


def parse_line(line: str, precision: str) -> Row:
    parts = _split(line, " ")
    if len(parts) not in (2, 3):
        raise ValueError(f"expected 'table,tags fields [timestamp]', got {len(parts)} parts")
    head = _split(parts[0], ",")
    table = _unescape(head[0])
    if not table:
        raise ValueError("empty table name")
    tags: dict[str, str] = {}
    for tag in head[1:]:
        key, eq, value = tag.partition("=")
        if not eq or not _NAME.match(key) or not value:
            raise ValueError(f"bad tag {tag!r}")
        tags[key] = _unescape(value)
    fields: dict[str, Any] = {}
    for item in _split(parts[1], ","):
        key, eq, value = item.partition("=")
        if not eq or not _NAME.match(key):
            raise ValueError(f"bad field {item!r}")
        fields[key] = _value(value)
    if not fields:
        raise ValueError("a row needs a field")
    scale = {"n": 1, "u": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[precision]
    if len(parts) == 3:
        if not parts[2].isdigit():
            raise ValueError(f"bad timestamp {parts[2]!r}")
        timestamp = int(parts[2]) * scale
    else:
        timestamp = -1
    return Row(table, tags, fields, timestamp)


def app(receiver: Receiver) -> web.Application:
    async def write(request: web.Request) -> web.Response:
        receiver.requests += 1
        if receiver.fail:
            return web.Response(status=503, text="unavailable")
        if receiver.reject:
            receiver.reject -= 1
            return web.json_response({"code": "invalid", "message": "refused"}, status=400)
        precision = request.query.get("precision", "n")
        if precision not in ("n", "u", "ms", "s"):
            return web.Response(status=400, text="bad precision")
        body = (await request.read()).decode()
        parsed = []
        for lineno, line in enumerate(body.split("\n"), start=1):
            if not line:
                continue
            try:
                parsed.append(parse_line(line, precision))
            except (ValueError, KeyError) as exc:
                receiver.errors.append(f"line {lineno}: {exc}: {line[:120]}")
                return web.json_response({"code": "invalid", "message": str(exc)}, status=400)
        receiver.rows.extend(parsed)
        return web.Response(status=204)

    application = web.Application(client_max_size=64 << 20)
    application.router.add_post("/write", write)
    application.router.add_post("/api/v2/write", write)
    return application
