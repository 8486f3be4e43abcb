"""Real ``ovms-relay serve`` processes for the cluster tests: start named nodes on one
database and bus and wait until each has seen the others; clients on them; the
``db`` fixture (a fresh relay database on PostgreSQL; ``bus`` is in tests/nats_server.py)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import pytest
import trio

from protocol import ClientType
from tests.conftest import OWNER, PASSWORD, make_db
from tests.nats_server import unique_prefix
from tools.v2client import V2Client

WAIT = 30.0  # bound on what must happen (never a timing claim)
CREDS = {"username": OWNER, "password": PASSWORD}


@attrs.define
class RelayProcess:
    name: str
    proc: subprocess.Popen[str]
    v2_port: int
    http_port: int
    log: Path

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def _start(name: str, db: str, bus: str, config: Path, log: Path) -> RelayProcess:
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(config), "--db", db,
         "--bus", bus, "--node-id", name, "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"v2 protocol on [\d.]+:(\d+), REST API on port (\d+)", line)
    if not match:
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}: {log.read_text()}")
    return RelayProcess(name, proc, int(match.group(1)), int(match.group(2)), log)


def cluster_config(tmp_path: Path, extra: str = "") -> Path:
    """``relay.toml`` for cluster nodes; ``extra``: more lines for it."""
    config = tmp_path / "relay.toml"
    # Short beats so a killed node is noticed quickly; a prefix of this test's own.
    config.write_text(f'bus_prefix = "{unique_prefix()}"\nbus_heartbeat = 0.3\n'
                      'bus_timeout = 2.0\nbus_login_wait = 3.0\n' + extra)
    return config


@asynccontextmanager
async def relays(db: str, bus: str, tmp_path: Path, names: list[str], extra: str = ""
                 ) -> AsyncIterator[dict[str, RelayProcess]]:
    """Relay processes named ``names``; ``extra``: more lines for their config file."""
    config = cluster_config(tmp_path, extra)
    nodes: dict[str, RelayProcess] = {}
    try:
        for name in names:
            nodes[name] = await trio.to_thread.run_sync(
                _start, name, db, bus, config, tmp_path / f"{name}.log")
        # Every node has seen every other (each logs "node X joined").
        with trio.fail_after(WAIT):
            while not all(
                all(f"node {other} joined" in node.log.read_text()
                    for other in names if other != name)
                for name, node in nodes.items()
            ):
                await trio.sleep(0.05)
        yield nodes
    finally:
        for node in nodes.values():
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in nodes.values():
            await trio.to_thread.run_sync(node.proc.wait, 30)


async def car_on(node: RelayProcess) -> V2Client:
    return await V2Client.connect("127.0.0.1", node.v2_port, "DEMO",
                                  client_type=ClientType.CAR, carpass="DEMO")


async def app_on(node: RelayProcess) -> V2Client:
    return await V2Client.connect("127.0.0.1", node.v2_port, "DEMO", client_type=ClientType.APP,
                                  carpass="DEMO")


async def expect(client: V2Client, text: str) -> None:
    with trio.fail_after(WAIT):
        while (await client.receive(WAIT)).text() != text:
            pass


@pytest.fixture
def db(pg_url: str) -> str:
    """A fresh relay database on the test's PostgreSQL (``pg_url``)."""
    make_db(pg_url)
    return pg_url
