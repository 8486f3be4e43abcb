"""Cluster mode's shared cookie sessions (relay.http.shared) on one SQLite store: two
session tables stand for two nodes (no bus: a lost notice is caught by the recheck).
Both clocks are the test's own, so expiry is exact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from relay.http.authenticator import Credential
from relay.http.sessions import SessionTable
from relay.http.shared import SharedSessions
from relay.hub import Hub
from relay.store import Store, open_store
from relay.store import sessions as repo
from tests.test_http_units import drain, make_car

IDLE, LOGIN, RECHECK = 120.0, 3600.0, 10.0
CRED = Credential("password", "digest-of-the-hash")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1.7e9 + self.t


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with open_store(str(tmp_path / "shared.db")) as opened:
        yield opened


class Node:
    def __init__(self, store: Store, clock: Clock, valid: set[Credential] | None = None
                 ) -> None:
        self.hub = Hub()
        self.valid = {CRED} if valid is None else valid

        async def verify(owner: str, credential: Credential) -> bool:
            return credential in self.valid

        self.shared = SharedSessions(store, self.hub, LOGIN, verify, RECHECK, clock.wall)
        self.table = SessionTable(self.hub, IDLE, LOGIN, clock.now, self.shared)


def touches(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    write = store.write

    async def counting(table: str, sql: str, params: tuple[Any, ...]) -> None:
        if sql == repo.TOUCH:
            seen.append(params)
        await write(table, sql, params)

    monkeypatch.setattr(store, "write", counting)
    return seen


async def rows(store: Store) -> list[tuple[Any, ...]]:
    result: list[tuple[Any, ...]] = await store.query(
        lambda c: c.execute("SELECT owner, host, cred_kind, last_used FROM api_sessions"
                            ).fetchall())
    return [tuple(r) for r in result]


async def test_a_session_slides_on_whichever_node_uses_it(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    a, b = Node(store, clock), Node(store, clock)
    written = touches(store, monkeypatch)
    session = a.table.create("o", "*", "h", CRED)
    assert await b.table.lookup(session.sid) is None  # not stored yet: the login flushes
    await a.table.flush()
    assert await rows(store) == [("o", "h", "password", clock.wall())]
    on_b = await b.table.lookup(session.sid)
    assert on_b is not None and (on_b.owner, on_b.permissions, on_b.credential) == ("o", "*", CRED)
    # A client polling a every second for a minute: a write every RECHECK, not per call.
    for _ in range(60):
        clock.t += 1
        assert await a.table.lookup(session.sid) is session
    assert 5 <= len([p for p in written if p[1] == session.digest]) <= 60 / RECHECK + 1
    # Used only on a for most of its lifetime, then on b: still alive there ...
    for _ in range(3):
        clock.t += LOGIN - 100
        assert await a.table.lookup(session.sid) is session
    a.table.expire()  # (a's sweep keeps it: a used it)
    assert await b.table.lookup(session.sid) is on_b
    # ... and ends everywhere LOGIN after its last use anywhere.
    clock.t += LOGIN + 1
    assert await a.table.lookup(session.sid) is None
    assert await b.table.lookup(session.sid) is None
    assert await store.purge_expired(now=clock.wall()) == 1
    assert await rows(store) == []


async def test_logout_on_one_node_ends_it_on_the_other_within_the_recheck(
        store: Store) -> None:
    clock = Clock()
    a, b = Node(store, clock), Node(store, clock)
    car = make_car(b.hub)
    drain(car)
    session = a.table.create("o", "*", "h", CRED)
    await a.table.flush()
    on_b = await b.table.lookup(session.sid)
    assert on_b is not None
    b.table.connect(on_b, "V")  # an app of V on b
    assert drain(car) == ["Z1"]
    a.table.end(session, "logout")
    await a.table.flush()
    assert await rows(store) == []
    assert await a.table.lookup(session.sid) is None
    clock.t += RECHECK
    assert await b.table.lookup(session.sid) is None
    assert b.table.why_not(session.sid) == "session ended (ended on another node or expired)"
    assert drain(car) == ["Z0"]  # its registration on b ended with it


async def test_a_node_meeting_a_session_checks_its_credential(store: Store) -> None:
    clock = Clock()
    a, b = Node(store, clock), Node(store, clock, valid=set())  # b: the password changed
    session = a.table.create("o", "*", "h", CRED)
    await a.table.flush()
    assert await b.table.lookup(session.sid) is None
    await b.table.flush()  # b ends it for every node
    assert await rows(store) == []


async def test_a_session_that_expired_is_not_taken(store: Store) -> None:
    clock = Clock()
    a, b = Node(store, clock), Node(store, clock)
    session = a.table.create("o", "*", "h", CRED)
    await a.table.flush()
    clock.t += LOGIN + 1
    assert await b.table.lookup(session.sid) is None
    assert await b.table.lookup("x" * 65) is None  # not even looked up
    a.table.expire()  # a forgets it (the database's purge ends it)
    assert len(a.table) == 0
    assert len(await rows(store)) == 1


async def test_a_failed_flush_is_written_by_the_next(store: Store,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    a = Node(store, clock)
    session = a.table.create("o", "*", "h", CRED)
    real = store.write_call

    async def failing(table: str, fn: Any) -> Any:
        raise trio.BusyResourceError("database down")

    monkeypatch.setattr(store, "write_call", failing)
    with pytest.raises(trio.BusyResourceError):
        await a.table.flush()
    monkeypatch.setattr(store, "write_call", real)
    await a.table.flush()
    assert len(await rows(store)) == 1
    a.table.end(session, "logout")
    await a.table.flush()
    assert await rows(store) == []
