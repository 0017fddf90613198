"""The embedded redis-server: a real child process, started and stopped by tests."""

import socket

import pytest
import redis
import redis.exceptions

from market_data.embedded_redis import (
    EmbeddedRedis,
    EmbeddedRedisError,
    find_redis_server,
    redis_reachable,
)


def _client(server: EmbeddedRedis) -> "redis.Redis":
    return redis.Redis.from_url(server.url, socket_timeout=2)


def test_binary_is_found_and_executable() -> None:
    path = find_redis_server()
    assert path.endswith("redis-server")


def test_starts_on_a_free_port_and_answers_ping(redis_server: EmbeddedRedis) -> None:
    assert redis_server.port not in (0, 6379)
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with _client(redis_server) as client:
        assert client.ping() is True


def test_keeps_nothing_on_disk(redis_server: EmbeddedRedis) -> None:
    with _client(redis_server) as client:
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}


def test_restart_keeps_the_port_and_loses_the_data(redis_server: EmbeddedRedis) -> None:
    port, pid = redis_server.port, redis_server.pid
    with _client(redis_server) as client:
        client.set("k", "v")
    redis_server.restart()
    assert redis_server.port == port
    assert redis_server.pid != pid
    with _client(redis_server) as client:
        assert client.ping() is True
        assert client.get("k") is None


def test_stop_is_idempotent_and_frees_the_port() -> None:
    server = EmbeddedRedis()
    server.start()
    port = server.port
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_kill_then_start_recovers_on_the_same_port() -> None:
    with EmbeddedRedis() as server:
        port = server.port
        server.kill()
        assert not server.running
        server.start()
        assert server.port == port
        with _client(server) as client:
            assert client.ping() is True


def test_password_is_required() -> None:
    with EmbeddedRedis(password="hunter2-long") as server:
        assert server.url == f"redis://:hunter2-long@127.0.0.1:{server.port}/0"
        with _client(server) as client:
            assert client.ping() is True
        anonymous = redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=2)
        with anonymous, pytest.raises(redis.exceptions.AuthenticationError):
            anonymous.ping()


def test_password_stays_out_of_the_command_line() -> None:
    with EmbeddedRedis(password="not-in-argv") as server:
        assert server.pid is not None
        with open(f"/proc/{server.pid}/cmdline", "rb") as cmdline:
            assert b"not-in-argv" not in cmdline.read()


def test_a_taken_port_fails_with_the_server_log() -> None:
    with EmbeddedRedis() as first:
        second = EmbeddedRedis(port=first.port)
        with pytest.raises(EmbeddedRedisError, match="did not start") as caught:
            second.start()
        assert "Address already in use" in str(caught.value)
        assert not second.running


def test_bad_argument_fails_with_the_server_log() -> None:
    server = EmbeddedRedis(extra_args=["--no-such-option", "1"])
    with pytest.raises(EmbeddedRedisError, match="no-such-option"):
        server.start()
    assert not server.running


async def test_redis_reachable(redis_server: EmbeddedRedis) -> None:
    assert await redis_reachable(redis_server.url, 1.0) is True
    port = redis_server.port
    redis_server.stop()
    assert await redis_reachable(f"redis://127.0.0.1:{port}/0", 0.5) is False


async def test_redis_reachable_needs_the_right_password() -> None:
    with EmbeddedRedis(password="right-one") as server:
        assert await redis_reachable(server.url, 1.0) is True
        wrong = f"redis://:wrong@127.0.0.1:{server.port}/0"
        assert await redis_reachable(wrong, 1.0) is False
