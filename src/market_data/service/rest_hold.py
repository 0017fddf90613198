"""The exchange's Retry-After, shared by every process that talks to it from this machine.

Binance limits request weight per IP address: after a 429, a request from any
process of the address before its Retry-After runs out risks a ban (418) for
all of them. ``run --workers N`` has N processes, and a machine may run other
instances too, so the time until which requests are held is kept in a small
file in ``/dev/shm`` (memory, gone at reboot, like the holds), one per exchange
host: every budget reads it before a request and writes it after a 429.
"""

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

_SHM = Path("/dev/shm")


class RestHoldFile:
    """A :class:`~market_data.core.weights.SharedHold` in one small file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def for_url(cls, rest_base_url: str) -> "RestHoldFile":
        """The hold file of the exchange at ``rest_base_url`` (one per host and port)."""
        parts = urlsplit(rest_base_url)
        host = re.sub(r"[^A-Za-z0-9.-]", "_", f"{parts.hostname or 'exchange'}-{parts.port or ''}")
        folder = _SHM if _SHM.is_dir() else Path(tempfile.gettempdir())
        return cls(folder / f"market-data-rest-hold-{host}")

    def read(self) -> float:
        try:
            return float(self.path.read_text() or 0)
        except (OSError, ValueError):  # none yet, or unreadable: no hold known
            return 0.0

    def write(self, until_s: float) -> None:
        if until_s <= self.read():
            return  # another process holds longer already
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            temporary.write_text(repr(until_s))
            os.replace(temporary, self.path)  # readers see the old or the new, never half
        except OSError:  # this process still holds; the others learn it from a 429
            temporary.unlink(missing_ok=True)
