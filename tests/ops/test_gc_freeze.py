"""Start-up's objects leave the cyclic collector's walks (in a process of its own:
freezing this test session's objects would hold its garbage to the end)."""

import subprocess
import sys

PROBE = """
import gc
import market_data.service.app  # what a service process has imported by its first frame
from market_data.ops.gc_freeze import freeze_startup_objects
before = len(gc.get_objects())
frozen = freeze_startup_objects()
print(before, frozen, len(gc.get_objects()), gc.get_freeze_count())
"""


def test_freeze_takes_what_start_up_made_out_of_every_collection() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    before, frozen, after, count = (int(v) for v in out.split())
    assert frozen == count > 10_000  # the modules, classes and functions of the service
    assert after < before // 10  # what a full collection still walks
