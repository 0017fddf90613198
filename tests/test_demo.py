"""``market-data demo`` as a user runs it: its own Redis, and a quiet Ctrl+C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


@pytest.mark.timeout(90)
def test_ctrl_c_stops_the_demo_cleanly_and_quietly(tmp_path: Path) -> None:
    """A terminal's Ctrl+C signals the whole foreground process group at once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_DATA_")}
    env["LOG_LEVEL"] = "INFO"
    process = subprocess.Popen(
        [sys.executable, "-m", "market_data.cli", "demo", "--rate", "50", "--log-level", "INFO"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own group, like a shell's foreground job
    )
    try:
        assert process.stderr is not None
        deadline = time.monotonic() + 60
        seen = ""
        while "book live" not in seen and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen += line
        assert "book live" in seen, seen
        assert "started a private redis-server" in seen  # never the user's Redis
        os.killpg(process.pid, signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    errors = seen + rest
    assert process.returncode in (0, 130), errors
    assert "Traceback" not in errors
    assert "Redis unavailable" not in errors and "unsent" not in errors, errors
