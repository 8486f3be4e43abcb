"""Shared fixtures: a real relay on an ephemeral port with a real SQLite file."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import argon2
import attrs
import pytest
import trio

from protocol import ClientType
from relay import db
from relay.app import RelayHandle, run_relay
from relay.config import Config
from relay.store import passwords
from tools.v2client import V2Client

OWNER, PASSWORD = "demo", "demopass"
VEHICLES = {"DEMO": "DEMO", "TESTCAR": "NETPASS"}
# The update age an app gets at login for a vehicle that never reported: the public
# server's TIMEDIFF from its default 1900-01-01 stops at MySQL's largest TIME, 838:59:59.
T_NEVER = "T3020399"

# Argon2 at its cheapest in this test process: at the production cost (64 MiB, three
# passes, ~0.2 s a hash) hashing and checking test passwords was a quarter of the
# suite's time. Stored hashes carry their parameters, so relays started as
# subprocesses check the test database's passwords cheaply too. The production
# parameters stay checked (tests/test_db.py::test_production_argon2_parameters).
passwords._hasher = argon2.PasswordHasher.from_parameters(argon2.profiles.CHEAPEST)


def make_db(path: Path | str) -> None:
    """The test accounts in a SQLite file or a PostgreSQL database (its URL)."""
    conn = db.connect(str(path))
    try:
        db.add_owner(conn, OWNER, PASSWORD)
        for vehicleid, carpass in VEHICLES.items():
            db.add_vehicle(conn, vehicleid, OWNER, carpass)
        db.add_owner(conn, "other", "otherpass")
        db.add_vehicle(conn, "OTHERCAR", "other", "OTHERPASS")
    finally:
        conn.close()


@attrs.define
class RelayUnderTest:
    handle: RelayHandle
    config: Config
    db_path: Path

    async def connect(
        self,
        vehicleid: str = "DEMO",
        client_type: ClientType = ClientType.APP,
        carpass: str | None = None,
        **kwargs: Any,
    ) -> V2Client:
        if carpass is None and "username" not in kwargs:
            carpass = VEHICLES.get(vehicleid, "?")
        return await V2Client.connect(
            "127.0.0.1", self.handle.v2_port, vehicleid,
            client_type=client_type, carpass=carpass, **kwargs,
        )

    async def car(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.CAR, **kwargs)

    async def app(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.APP, **kwargs)

    async def batch(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.BATCH, **kwargs)

    async def raw(self) -> trio.SocketStream:
        return await trio.open_tcp_stream("127.0.0.1", self.handle.v2_port)


StartRelay = Callable[..., Any]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test accounts' database, made once: each owner costs a (deliberately slow)
    Argon2 hash, and nearly every test starts its own relay."""
    path = tmp_path_factory.mktemp("template") / "relay.db"
    make_db(path)
    return path


def copy_db(template: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        source = template.with_name(template.name + suffix)
        if source.exists():
            shutil.copyfile(source, target.with_name(target.name + suffix))


@pytest.fixture
async def start_relay(
    tmp_path: Path, nursery: trio.Nursery, template_db: Path
) -> AsyncIterator[StartRelay]:
    """Start a relay with optional config overrides; stopped when the test ends."""

    async def start(**overrides: Any) -> RelayUnderTest:
        path = tmp_path / "relay.db"
        if not path.exists():
            copy_db(template_db, path)
        config = Config(db=str(path), host="127.0.0.1", v2_port=0, http_port=0,
                        sweep_interval=0.05)
        config = attrs.evolve(config, **overrides)
        handle: RelayHandle = await nursery.start(run_relay, config)
        return RelayUnderTest(handle, config, path)

    yield start


@pytest.fixture
async def relay(start_relay: StartRelay) -> RelayUnderTest:
    result: RelayUnderTest = await start_relay()
    return result
