"""Build the history pipeline from the configuration and attach it to an engine."""

import logging
from typing import TYPE_CHECKING

from market_data.history.pipeline import HistoryPipeline, RowConsumer
from market_data.history.recorder import RecordingWriter, Retention
from market_data.ops.config import Config

if TYPE_CHECKING:
    from market_data.service.engine import MarketDataService

log = logging.getLogger(__name__)


def build_history(config: Config) -> HistoryPipeline | None:
    """The pipeline ``config`` asks for (None: no recording, no store).

    Raises :class:`~market_data.errors.ConfigError` when an extra is missing.
    """
    writer = None
    if config.recording_dir:
        writer = RecordingWriter(
            config.recording_dir,
            rotate=config.recording_rotate,
            retention=Retention(config.recording_max_age_days * 86_400, config.recording_max_bytes),
        )
    consumers: list[RowConsumer] = []
    if config.parquet_dir or config.questdb_url:  # in a process of their own (worker.py)
        from market_data.history.worker import StoresProcess

        consumers.append(StoresProcess(config))
    if writer is None and not consumers:
        return None
    pipeline = HistoryPipeline(
        writer=writer, consumers=consumers, queue_max=config.history_queue_max
    )
    if writer is not None:
        writer.apply_retention()
    pipeline.start()
    log.info(
        "history: recording %s, parquet %s, questdb %s",
        config.recording_dir or "off",
        config.parquet_dir or "off",
        "on" if config.questdb_url else "off",
        extra={"recording_dir": config.recording_dir, "parquet_dir": config.parquet_dir},
    )
    return pipeline


def attach(service: "MarketDataService", pipeline: HistoryPipeline) -> None:
    """Hook ``pipeline`` into the engine's frames, snapshots and connection events."""
    service.history = pipeline
    service.snapshots.on_used = pipeline.snapshot
