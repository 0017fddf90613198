"""``market-data history``: what is stored (date range, rows, bytes per kind and symbol).

Reads only file metadata: Parquet footers (row counts) and file sizes; the
recording's files are counted per symbol with their hour (or day) range.
"""

import argparse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from market_data.history.extra import require
from market_data.history.parquet import TEMPORARY_SUFFIX


@dataclass
class Entry:
    first: str = ""
    last: str = ""
    files: int = 0
    rows: int = 0
    bytes: int = 0
    kinds: set[str] = field(default_factory=set)

    def add(self, period: str, rows: int, size: int) -> None:
        self.first = min(self.first or period, period)
        self.last = max(self.last, period)
        self.files += 1
        self.rows += rows
        self.bytes += size


def parquet_summary(directory: Path) -> tuple[dict[tuple[str, str], Entry], list[str]]:
    """(kind, symbol) -> what the store holds (layout ``kind/date/symbol/*.parquet``),
    and a note for each file left out: temporary files a write that never finished
    left (a process that died mid-write), files that are not readable Parquet."""
    pq = require("pyarrow.parquet", "market-data history")
    out: dict[tuple[str, str], Entry] = defaultdict(Entry)
    temporary, old_temporary, unreadable = 0, 0, []
    for path in sorted(directory.glob("*/*/*/*")):
        if path.name.startswith(".") or not path.name.endswith(".parquet"):
            temporary += path.name.endswith(TEMPORARY_SUFFIX)
            old_temporary += path.name.startswith(".tmp-") and path.name.endswith(".parquet")
            continue
        try:
            rows = pq.read_metadata(path).num_rows
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            unreadable.append(f"not readable, left out: {path} ({exc})")
            continue
        symbol, date, kind = path.parent.name, path.parent.parent.name, path.parents[2].name
        out[(kind, symbol)].add(date, rows, path.stat().st_size)
    notes = unreadable
    if old_temporary:
        notes.append(
            f"{old_temporary} unfinished file(s) named .tmp-*.parquet (the store's earlier "
            "naming): DuckDB's and polars' *.parquet globs read them and fail; delete them"
        )
    if temporary:
        notes.append(
            f"{temporary} temporary file(s) (*{TEMPORARY_SUFFIX}) of writes that never finished "
            "(a history process that died): no reader sees them; safe to delete"
        )
    return dict(out), notes


def recording_summary(directory: Path) -> dict[str, Entry]:
    """symbol -> the recording files; names ``SYMBOL-<period>-<ms>.gz``."""
    out: dict[str, Entry] = defaultdict(Entry)
    for path in sorted(directory.glob("*/*.gz")):
        parts = path.name.split("-")
        period = parts[1] if len(parts) > 2 else "?"
        out[path.parent.name].add(period, 0, path.stat().st_size)
    return dict(out)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def render(parquet: dict[tuple[str, str], Entry], recording: dict[str, Entry]) -> str:
    lines: list[str] = []
    if parquet:
        lines.append(
            f"{'kind':<22} {'symbol':<12} {'from':<10} {'to':<10} "
            f"{'files':>6} {'rows':>12} {'bytes':>10}"
        )
        for (kind, symbol), e in sorted(parquet.items()):
            lines.append(
                f"{kind:<22} {symbol:<12} {e.first:<10} {e.last:<10} "
                f"{e.files:>6} {e.rows:>12,} {_size(e.bytes):>10}"
            )
        total = sum(e.rows for e in parquet.values()), sum(e.bytes for e in parquet.values())
        lines.append(f"parquet total: {total[0]:,} rows, {_size(total[1])}")
    if recording:
        if lines:
            lines.append("")
        lines.append(
            f"{'recording':<22} {'symbol':<12} {'from':<11} {'to':<11} {'files':>6} {'bytes':>10}"
        )
        for symbol, e in sorted(recording.items()):
            lines.append(
                f"{'':<22} {symbol:<12} {e.first:<11} {e.last:<11} "
                f"{e.files:>6} {_size(e.bytes):>10}"
            )
        lines.append(f"recording total: {_size(sum(e.bytes for e in recording.values()))}")
    return "\n".join(lines) if lines else "nothing stored"


def configure_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="PATH", help="YAML config (for parquet_dir, recording_dir)")
    p.add_argument("--parquet-dir", metavar="DIR", help="the Parquet store (default: parquet_dir)")
    p.add_argument("--recording-dir", metavar="DIR", help="recordings (default: recording_dir)")


def run(args: argparse.Namespace) -> int:
    from market_data.errors import ConfigError
    from market_data.ops.config import load_config

    parquet_dir, recording_dir = args.parquet_dir, args.recording_dir
    if not parquet_dir and not recording_dir:
        config = load_config(args.config)
        parquet_dir, recording_dir = config.parquet_dir, config.recording_dir
    if not parquet_dir and not recording_dir:
        raise ConfigError(
            "nothing to summarise: give --parquet-dir DIR and/or --recording-dir DIR, "
            "or a --config that sets parquet_dir / recording_dir"
        )
    for key, folder in (("parquet_dir", parquet_dir), ("recording_dir", recording_dir)):
        if folder and not Path(folder).is_dir():  # a typo would read as "nothing stored"
            raise ConfigError(f"{key}: no folder {folder} (nothing has been stored there)")
    parquet, notes = parquet_summary(Path(parquet_dir)) if parquet_dir else ({}, [])
    recording = recording_summary(Path(recording_dir)) if recording_dir else {}
    print(render(parquet, recording))
    for note in notes:
        print(f"note: {note}")
    return 0
