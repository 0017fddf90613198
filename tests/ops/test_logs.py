"""Log lines: JSON or text with structured fields, and nothing per message at info."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.logs import setup_logging
from tests.ops.ops_harness import running_app
from tests.support import wait_for


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def capture(json_lines: bool | None) -> io.StringIO:
    setup_logging(json_lines=json_lines, level="INFO")
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    return stream


def test_json_lines_carry_the_extra_fields(root_logging: None) -> None:
    stream = capture(json_lines=True)
    logging.getLogger("market_data.service.feed").warning(
        "feed %s: closed", "depth-1", extra={"connection": "depth-1", "delay_s": 0.5}
    )
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "warning" and entry["logger"] == "market_data.service.feed"
    assert entry["msg"] == "feed depth-1: closed"
    assert entry["connection"] == "depth-1" and entry["delay_s"] == 0.5
    assert entry["ts"].endswith("Z")


def test_text_lines_append_fields(root_logging: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_JSON", "0")
    stream = capture(json_lines=None)
    logging.getLogger("market_data.service.engine").info("book live", extra={"symbol": "BTCUSDT"})
    line = stream.getvalue().strip()
    assert "INFO" in line and "market_data.service.engine: book live" in line
    assert line.endswith("symbol=BTCUSDT")
    monkeypatch.setenv("LOG_JSON", "1")
    stream = capture(json_lines=None)
    logging.getLogger("market_data").info("x")
    assert json.loads(stream.getvalue())["msg"] == "x"


async def test_streaming_logs_nothing_at_info(
    redis_server: EmbeddedRedis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        async with running_app(redis_server.url, ("BTCUSDT", "ETHUSDT")) as run:
            service = run.app.service
            await wait_for(
                lambda: all(s.state is BookState.LIVE for s in service.symbols.values()),
                what="live",
            )
            await wait_for(lambda: service.counters.frames > 10, what="frames")
            logged_before, frames_before = len(caplog.records), service.counters.frames
            await wait_for(lambda: service.counters.frames > frames_before + 40, what="40 frames")
            during = caplog.records[logged_before:]
    assert [r.getMessage() for r in during if r.name.startswith("market_data")] == []
    lifecycle = [r.getMessage() for r in caplog.records if r.name == "market_data.service.app"]
    assert lifecycle[0].startswith("starting") and lifecycle[-1].startswith("stopped")


def test_a_log_setting_it_cannot_use_is_said_not_ignored(
    root_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("LOG_JSON", "maybe")
    setup_logging()
    assert logging.getLogger().level == logging.INFO
    err = capsys.readouterr().err
    assert "LOG_LEVEL=LOUD is not one of DEBUG, INFO, WARNING, ERROR: INFO instead" in err
    assert "LOG_JSON=maybe is neither true/1/yes/on nor false/0/no/off" in err
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("LOG_JSON", "off")  # the config's own words
    setup_logging()
    assert logging.getLogger().level == logging.DEBUG and capsys.readouterr().err == ""
    monkeypatch.setenv("LOG_LEVEL", "warn")  # logging's own names are levels too
    setup_logging()
    assert logging.getLogger().level == logging.WARNING and capsys.readouterr().err == ""
