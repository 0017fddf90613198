"""A free loopback TCP port, for the servers this project starts on its own."""

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on just now (the kernel's pick; bind it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
