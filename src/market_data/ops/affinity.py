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


def apply_cpu_affinity(
    cores: Sequence[int], setting: str = "cpu_affinity"
) -> frozenset[int] | None:
    """Pin this process to ``cores``; returns the cores applied, or None when unchanged.

    ``setting`` names the configuration key in the log lines (the history process
    has its own).
    """
    if not cores:
        return None
    set_affinity = getattr(os, "sched_setaffinity", None)
    if set_affinity is None:
        log.warning(
            "%s %s ignored: CPU pinning is not supported on this platform",
            setting,
            list(cores),
        )
        return None
    existing = _existing_cores()
    missing = sorted(core for core in cores if core not in existing)
    valid = frozenset(core for core in cores if core in existing)
    if missing:
        log.warning(
            "%s: core(s) %s do not exist (this machine has %s); ignoring them",
            setting,
            missing,
            sorted(existing),
            extra={"missing_cores": missing},
        )
    if not valid:
        log.warning("%s: no listed core exists; running unpinned", setting)
        return None
    try:
        set_affinity(0, valid)
    except OSError as exc:
        log.warning(
            "%s %s not applied: %s; running unpinned",
            setting,
            sorted(valid),
            exc.strerror or exc,
        )
        return None
    log.info("%s: pinned to CPU core(s) %s", setting, sorted(valid), extra={setting: sorted(valid)})
    return valid


def _existing_cores() -> frozenset[int]:
    """Cores of this machine (a cpuset may still refuse some: setaffinity says so)."""
    return frozenset(range(os.cpu_count() or 1))
