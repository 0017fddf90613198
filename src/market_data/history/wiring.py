"""Build the history pipeline from the configuration and attach it to an engine."""

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from market_data.errors import ConfigError
from market_data.history.extra import require
from market_data.history.pipeline import HistoryPipeline
from market_data.ops.config import Config

if TYPE_CHECKING:
    from market_data.service.engine import MarketDataService

log = logging.getLogger(__name__)


def build_history(config: Config) -> HistoryPipeline | None:
    """The pipeline ``config`` asks for, started (None: no recording, no store).

    Raises :class:`~market_data.errors.ConfigError` when an extra is missing (here,
    not in the history process).
    """
    if not (config.recording_dir or config.parquet_dir or config.questdb_url):
        return None
    if config.parquet_dir:
        require("pyarrow.parquet", "parquet_dir")
    if config.questdb_url:
        require("questdb", "questdb_url")
    pipeline = HistoryPipeline(config)
    pipeline.start()
    log.info(
        "history: recording %s, parquet %s, questdb %s",
        config.recording_dir or "off",
        config.parquet_dir or "off",
        "on" if config.questdb_url else "off",
        extra={"recording_dir": config.recording_dir, "parquet_dir": config.parquet_dir},
    )
    return pipeline


def check_history_folders(config: Config) -> None:
    """Make each history folder if missing and write a file in it, before anything starts
    (``run``, ``record``): a folder history cannot use is an error then, not a suspension
    logged every 30 s while nothing is kept. Later failures (a disk that fills) suspend."""
    for key in ("recording_dir", "parquet_dir"):
        folder = getattr(config, key)
        if not folder:
            continue
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            raise ConfigError(
                f"{key}: {folder} is not a folder history can write to ({exc.strerror or exc})"
            ) from None


def attach(service: "MarketDataService", pipeline: HistoryPipeline) -> None:
    """Hook ``pipeline`` into the engine: frames, snapshots and connection events for the
    recording; every book's applied events and every trade for the row stores."""
    service.attach_history(pipeline)
    if pipeline.recording:
        service.snapshots.on_used = pipeline.snapshot
