"""Issue 9 defect 3: sessions and cached logins end with the token or password they
were made with: at once through the API, on the next check after ovms-admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from relay import db
from relay.http.api import HttpApi
from tests.conftest import OWNER, RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, api, assert_json, assert_text, client, scripted_car, sync

__all__ = ["api"]  # fixtures

COMMAND_30 = {"command": "30"}  # answered by the server: control works without a car


def http_api(relay: RelayUnderTest) -> HttpApi:
    found = relay.handle.services.http_api
    assert found is not None
    return found


async def new_token(api: httpx.AsyncClient, permit: str = "session,control") -> str:
    token: str = assert_json(await api.post("/api/token", params={**CREDS, "permit": permit}),
                             201)["token"]
    return token


@asynccontextmanager
async def cookie_client(relay: RelayUnderTest, password: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding a session cookie made with ``password``, sending nothing else."""
    async with client(relay) as session:
        answer = await session.get("/api/cookie",
                                   params={"username": OWNER, "password": password})
        assert_text(answer, 200, "Login ok")
        yield session


async def test_cookie_made_from_a_token_ends_when_it_is_deleted_through_the_api(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Issue 9 defect 3: the cookie stops working at once (control commands too), and
    its vehicle registration ends (the car is told)."""
    token = await new_token(api)
    car = await scripted_car(relay)
    async with cookie_client(relay, token) as session:
        assert_json(await session.get("/api/vehicle/DEMO"))
        assert "Z1" in await sync(car)
        assert_json(await session.post("/api/command/DEMO", params=COMMAND_30))
        assert_json(await api.delete(f"/api/token/{token}", params=CREDS))
        assert "Z0" in await sync(car)
        assert_text(await session.post("/api/command/DEMO", params=COMMAND_30), 401,
                    "Authentication failed")
        assert_text(await session.get("/api/vehicles"), 401, "Authentication failed")
    await car.aclose()


async def test_deleting_another_token_keeps_the_session(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    token, other = await new_token(api), await new_token(api)
    async with cookie_client(relay, token) as session:
        assert_json(await api.delete(f"/api/token/{other}", params=CREDS))
        assert_json(await session.get("/api/vehicles"))


async def test_token_deleted_with_ovms_admin_ends_sessions_and_cached_logins(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Issue 9 defect 3: a token deleted in the database (ovms-admin) ends the cookie
    made from it and its cached login (60 s before) on the next check."""
    token = await new_token(api)
    by_token = {"username": OWNER, "password": token}
    assert_json(await api.get("/api/vehicles", params=by_token))  # now cached
    async with cookie_client(relay, token) as session:
        conn = db.connect(relay.db)
        try:
            db.delete_token(conn, OWNER, token)
        finally:
            conn.close()
        assert await http_api(relay).revalidate() == 1
        assert_text(await session.get("/api/vehicles"), 401, "Authentication failed")
        assert_text(await api.get("/api/vehicles", params=by_token), 401,
                    "Authentication failed")
        assert_json(await api.get("/api/vehicles", params=CREDS))  # the password still works


async def test_password_changed_with_ovms_admin_ends_password_sessions(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Issue 9 defect 3: after a password change, the old password (cached, and in the
    store's owner cache) and cookies made with it stop working on the next check;
    sessions made from a token live on."""
    token = await new_token(api)
    async with (cookie_client(relay, CREDS["password"]) as by_password,
                cookie_client(relay, token) as by_token):
        conn = db.connect(relay.db)
        try:
            db.set_password(conn, OWNER, "n3w-secret")
        finally:
            conn.close()
        assert await http_api(relay).revalidate() == 1
        assert_text(await by_password.get("/api/vehicles"), 401, "Authentication failed")
        assert_text(await api.get("/api/vehicles", params=CREDS), 401, "Authentication failed")
        assert_json(await api.get("/api/vehicles",
                                  params={"username": OWNER, "password": "n3w-secret"}))
        assert_json(await by_token.get("/api/vehicles"))


async def test_the_api_maintenance_task_runs_the_check(start_relay: StartRelay) -> None:
    """Issue 9 defect 3: no call needed: the server notices an ovms-admin deletion by
    itself (every maintenance round: at most 10 s, here 0.1 s)."""
    relay = await start_relay(api_idle_timeout=0.4)
    async with client(relay) as api:
        token = await new_token(api)
        async with cookie_client(relay, token) as session:
            conn = db.connect(relay.db)
            try:
                db.delete_token(conn, OWNER, token)
            finally:
                conn.close()
            with trio.fail_after(5):
                while (await session.get("/api/vehicles")).status_code == 200:
                    await trio.sleep(0.05)
            assert_text(await session.get("/api/vehicles"), 401, "Authentication failed")
