"""Cluster mode: a REST cookie session made on one node works on every other, and ends
on every node when it ends on one (logout, a revoked token, a changed password). Two
relays in this process on one PostgreSQL database and one NATS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from relay import accounts
from relay.http.views import COOKIE_NAME
from tests.conftest import OWNER, RelayUnderTest, StartRelay, make_db
from tests.http_helpers import CREDS, base_url
from tests.nats_server import unique_prefix
from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)

__all__ = ["pg_cluster", "pg_server"]  # fixtures

WAIT = 30.0  # bound on what must happen (never a timing claim)


async def two_nodes(start_relay: StartRelay, db: str, bus: str, **overrides: object
                    ) -> tuple[RelayUnderTest, RelayUnderTest]:
    make_db(db)
    prefix = unique_prefix()
    overrides.setdefault("api_rate_exempt", "127.0.0.1")  # the tests poll
    a = await start_relay(db=db, bus=bus, node_id="a", bus_prefix=prefix, **overrides)
    b = await start_relay(db=db, bus=bus, node_id="b", bus_prefix=prefix, **overrides)
    with trio.fail_after(WAIT):
        while "b" not in a.handle.hub.alive_nodes():  # type: ignore[attr-defined]
            await trio.sleep(0.02)
    return a, b


@asynccontextmanager
async def clients(a: RelayUnderTest, b: RelayUnderTest
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with httpx.AsyncClient(base_url=base_url(a)) as on_a, \
            httpx.AsyncClient(base_url=base_url(b)) as on_b:
        yield on_a, on_b


def cookie(sid: str) -> dict[str, str]:
    return {"cookie": f"{COOKIE_NAME}={sid}"}


async def login(client: httpx.AsyncClient, **params: str) -> str:
    answer = await client.get("/api/cookie", params=params or CREDS)
    assert answer.status_code == 200, answer.text
    sid: str = answer.cookies[COOKIE_NAME]
    client.cookies.clear()  # every call below names its cookie itself
    return sid


async def refused_within(client: httpx.AsyncClient, sid: str) -> None:
    """The cookie is refused, at once or (a lost notice) within the node's recheck."""
    with trio.fail_after(WAIT):
        while (await client.get("/api/vehicles", headers=cookie(sid))).status_code != 401:
            await trio.sleep(0.1)


async def test_cookie_from_one_node_works_on_the_other_until_logout(
        start_relay: StartRelay, pg_url: str, bus: str,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    a, b = await two_nodes(start_relay, pg_url, bus)
    car = await a.car()  # the car's node adds up every node's apps
    async with clients(a, b) as (on_a, on_b):
        sid = await login(on_a)
        for _ in range(3):
            answer = await on_b.get("/api/vehicles", headers=cookie(sid))
            assert answer.status_code == 200, answer.text
            assert "DEMO" in answer.text
        # The session registers the vehicle as an app on b, counted on a too (the bus).
        assert (await on_b.get("/api/vehicle/DEMO", headers=cookie(sid))).status_code == 200
        with trio.fail_after(WAIT):
            while a.handle.hub.app_count("DEMO") != 1:
                await trio.sleep(0.02)
        assert (await on_a.get("/api/vehicles", headers=cookie(sid))).status_code == 200
        # The database holds a digest of the cookie, never the cookie.
        rows = a.sql("SELECT sid_hash, owner FROM api_sessions")
        assert len(rows) == 1 and rows[0][0] != sid and rows[0][1] == OWNER
        assert (await on_a.delete("/api/cookie", headers=cookie(sid))).text.strip() == "Logout ok"
        assert a.sql("SELECT COUNT(*) FROM api_sessions") == [(0,)]
        await refused_within(on_b, sid)
        with trio.fail_after(WAIT):  # b's registration ended with the session
            while a.handle.hub.app_count("DEMO") != 0:
                await trio.sleep(0.02)
        # An unknown cookie is refused on both.
        for client in (on_a, on_b):
            answer = await client.get("/api/vehicles", headers=cookie("NOT-A-SESSION"))
            assert answer.status_code == 401
    await car.aclose()
    assert not any(sid in r.getMessage() for r in caplog.records)


async def test_logout_on_the_other_node_ends_it_at_once(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    async with clients(a, b) as (on_a, on_b):
        sid = await login(on_a)
        assert (await on_b.get("/api/vehicles", headers=cookie(sid))).status_code == 200
        assert (await on_b.delete("/api/cookie", headers=cookie(sid))).status_code == 200
        # a held it; b's notice ends it there (the database would within the recheck).
        await refused_within(on_a, sid)


async def test_a_revoked_token_ends_its_sessions_on_every_node(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    a, b = await two_nodes(start_relay, pg_url, bus)
    async with clients(a, b) as (on_a, on_b):
        made = await on_a.post("/api/token", params={**CREDS, "application": "ha",
                                                     "permit": "auth,session"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        sid = await login(on_b, username=OWNER, password=token)
        other = await login(on_b)  # made with the password: lives on
        assert (await on_a.get("/api/vehicles", headers=cookie(sid))).status_code == 200
        deleted = await on_a.delete(f"/api/token/{token}", params=CREDS)
        assert deleted.status_code == 200
        await refused_within(on_a, sid)
        await refused_within(on_b, sid)
        assert (await on_a.get("/api/vehicles", headers=cookie(other))).status_code == 200


async def test_a_changed_password_ends_sessions_not_yet_seen_by_a_node(
        start_relay: StartRelay, pg_url: str, bus: str) -> None:  # noqa: F811
    # a holds the session and learns of the new password only by its recheck: a short one.
    a, b = await two_nodes(start_relay, pg_url, bus, api_session_recheck=0.5)
    async with clients(a, b) as (on_a, on_b):
        held = await login(on_a)
        await accounts.set_password(a.handle.services, OWNER, "new-password")
        # b never held the session: it checks the credential when it first meets it.
        assert (await on_b.get("/api/vehicles", headers=cookie(held))).status_code == 401
        await refused_within(on_a, held)
