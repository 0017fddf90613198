"""Optional CPU pinning (config ``cpu_affinity``).

Pinning the process to dedicated cores keeps the event loop off cores busy
with other work and its caches warm. It is best effort: where the platform
has no ``sched_setaffinity`` or a listed core does not exist, the service logs
a warning and runs unpinned (or on the cores that do exist) rather than fail.
Call it before starting threads: threads inherit the calling thread's mask.
"""

import logging
import os
from collections.abc import Sequence

log = logging.getLogger(__name__)


def apply_cpu_affinity(cores: Sequence[int]) -> frozenset[int] | None:
    """Pin this process to ``cores``; returns the cores applied, or None when unchanged."""
    if not cores:
        return None
    set_affinity = getattr(os, "sched_setaffinity", None)
    if set_affinity is None:
        log.warning(
            "cpu_affinity %s ignored: CPU pinning is not supported on this platform",
            list(cores),
        )
        return None
    existing = _existing_cores()
    missing = sorted(core for core in cores if core not in existing)
    valid = frozenset(core for core in cores if core in existing)
    if missing:
        log.warning(
            "cpu_affinity: core(s) %s do not exist (this machine has %s); ignoring them",
            missing,
            sorted(existing),
            extra={"missing_cores": missing},
        )
    if not valid:
        log.warning("cpu_affinity: no listed core exists; running unpinned")
        return None
    try:
        set_affinity(0, valid)
    except OSError as exc:
        log.warning(
            "cpu_affinity %s not applied: %s; running unpinned",
            sorted(valid),
            exc.strerror or exc,
        )
        return None
    log.info("pinned to CPU core(s) %s", sorted(valid), extra={"cpu_affinity": sorted(valid)})
    return valid


def _existing_cores() -> frozenset[int]:
    """Cores of this machine (a cpuset may still refuse some: setaffinity says so)."""
    return frozenset(range(os.cpu_count() or 1))
