"""A real NATS server for the bus tests, and a subject prefix of its own per test.

Found in this order: ``$OVMS_TEST_NATS`` (``nats://HOST:PORT``), or one started
here (``nats-server`` on a free port, stopped after). Tests that stop and restart
NATS always start their own (``own_nats``). Without either, the tests are skipped
with one line saying what to install, or fail if ``OVMS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tools.bench_server import free_port

SERVER_PATHS = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"


def unavailable(reason: str) -> None:
    if os.environ.get("OVMS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"NATS required (OVMS_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"no NATS: {reason} (install nats-server, e.g. apt-get install nats-server)")


def reachable(url: str, timeout: float = 2.0) -> bool:
    """A NATS server answers at ``url`` (it greets every connection with INFO)."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222),
                                      timeout=timeout) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


class NatsProcess:
    """A nats-server this test started: it can be stopped and started again, same port."""

    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.port = port
        self.url = f"nats://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not reachable(self.url, 0.5):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


def _binary() -> str | None:
    return shutil.which("nats-server") or shutil.which("nats-server", path=SERVER_PATHS)


def _require_client() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        unavailable("nats-py is not installed (pip install -e '.[test]')")


@contextmanager
def own_nats() -> Iterator[NatsProcess]:
    """A nats-server of this test's own on a free port (stopped after)."""
    _require_client()
    binary = _binary()
    if binary is None:
        unavailable("nats-server not installed")
    assert binary is not None
    server = NatsProcess(binary, free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def nats_url() -> Iterator[str]:
    """The URL of a NATS server for this test: ``$OVMS_TEST_NATS`` or one started here."""
    _require_client()
    explicit = os.environ.get("OVMS_TEST_NATS")
    if explicit:
        if not reachable(explicit):
            unavailable(f"OVMS_TEST_NATS={explicit} does not answer")
        yield explicit
        return
    with own_nats() as server:
        yield server.url


@pytest.fixture
def bus() -> Iterator[str]:
    """A NATS URL for a test's relays to share (``nats_url``), as a fixture."""
    with nats_url() as url:
        yield url
