"""Logging set-up: human-readable lines by default, JSON lines on request.

Call sites pass structured fields through ``extra={...}``; the JSON formatter
emits them as keys, the text formatter appends them as ``key=value``. Per
message logging stays at debug level: at info and above only connection,
resync, outage and lifecycle events are logged.
"""

import json
import logging
import os
import sys
import time
from typing import Any

from market_data.ops.words import FALSE_WORDS, TRUE_WORDS

log = logging.getLogger(__name__)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger: message key=value ...``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return text


#: The levels a command line or ``LOG_LEVEL`` may name.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setup_logging(json_lines: bool | None = None, level: str | None = None) -> None:
    """Configure the root logger from arguments, else ``LOG_JSON``/``LOG_LEVEL``."""
    problems = []
    if json_lines is None:
        setting = os.environ.get("LOG_JSON", "").strip().lower()
        json_lines = setting in TRUE_WORDS
        if setting and not json_lines and setting not in FALSE_WORDS:
            problems.append(f"LOG_JSON={setting} is neither true/1/yes/on nor false/0/no/off")
    level_name = (level or os.environ.get("LOG_LEVEL") or "INFO").strip().upper()
    if level_name not in logging.getLevelNamesMapping():  # WARN, CRITICAL too
        problems.append(f"LOG_LEVEL={level_name} is not one of {', '.join(LEVELS)}: INFO instead")
        level_name = "INFO"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level_name))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for problem in problems:  # said once logging works, not lost before it
        log.warning(problem)
