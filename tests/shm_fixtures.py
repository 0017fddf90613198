"""Shared-memory fixtures (wire/, outputs/, client/, bench/): segment names, ring workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from market_data.outputs.shm import segment_path

WORKER = Path(__file__).parent / "wire" / "ring_worker.py"


@pytest.fixture
def shm_name() -> Iterator[str]:
    """A segment name no other test uses; whatever is left under it is removed after."""
    name = f"md_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    yield name
    segment_path(name).unlink(missing_ok=True)


class Worker:
    """A ring_worker.py child process speaking line by line on stdin/stdout."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, word: str) -> str:
        """Wait for the next line; it must start with ``word``."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith(word):
            self.kill()
            raise AssertionError(f"worker said {line!r}, expected {word!r}: {self.stderr()}")
        return line

    def send(self, line: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 30.0) -> dict[str, Any]:
        """The JSON line a reader prints when it is done."""
        out, err = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, err
        parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return parsed

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """Start a ring_worker.py process; any still running at teardown is killed."""
    started: list[Worker] = []

    def start(*args: str) -> Worker:
        worker = Worker(*args)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
