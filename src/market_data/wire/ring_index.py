"""Which shared-memory ring carries which symbol, when ``--workers N`` writes N rings.

Each worker writes its own ring, ``<shm_name>-<i>``. The supervisor publishes
``/dev/shm/<shm_name>.index``: one line per symbol, ``SYMBOL<TAB>segment``,
written to a temporary name and renamed, so a reader never sees half of it.
A reader resolves a symbol through the index when there is one and falls
back to ``<shm_name>`` itself (one process, one ring), so it never needs to
know how many workers there are. An index can outlive its supervisor (SIGKILL
leaves it behind), so a single process that creates ``<shm_name>`` removes the
index of that name, and a reader ignores an entry whose segment is gone. The
format is plain text so the C reader can read it with ``fscanf``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

SHM_DIR = Path("/dev/shm")


def index_path(name: str, directory: Path = SHM_DIR) -> Path:
    return directory / f"{name}.index"


def write_index(name: str, rings: Mapping[str, str], directory: Path = SHM_DIR) -> Path:
    """Publish ``symbol -> segment`` for ``name`` atomically; returns the index path."""
    path = index_path(name, directory)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("".join(f"{symbol}\t{ring}\n" for symbol, ring in sorted(rings.items())))
    os.replace(temporary, path)
    return path


def remove_index(name: str, directory: Path = SHM_DIR) -> None:
    index_path(name, directory).unlink(missing_ok=True)


def read_index(name: str, directory: Path = SHM_DIR) -> dict[str, str]:
    """``symbol -> segment`` from the index of ``name``; empty when there is none."""
    try:
        text = index_path(name, directory).read_text()
    except FileNotFoundError:
        return {}
    rings: dict[str, str] = {}
    for line in text.splitlines():
        symbol, _, ring = line.partition("\t")
        if symbol and ring:
            rings[symbol] = ring
    return rings


def ring_for(name: str, symbol: str, directory: Path = SHM_DIR) -> str:
    """The segment that carries ``symbol`` under ``name`` (``name`` itself without an index).

    An indexed segment that does not exist (a stale index, or workers still
    starting) falls back to ``name``.
    """
    ring = read_index(name, directory).get(symbol.upper())
    if ring is None or not (directory / ring).exists():
        return name
    return ring
