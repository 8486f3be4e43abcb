"""Issue 15: /healthz and /readyz for load balancers, without credentials."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from relay.store.engines import is_postgres
from tests.conftest import RelayUnderTest
from tests.http_helpers import api, assert_text, scripted_car

__all__ = ["api"]  # fixture


async def _readiness(api: Any, status: int) -> None:
    with trio.fail_after(10):
        while (await api.get("/readyz")).status_code != status:
            await trio.sleep(0.05)


async def test_healthz_and_readyz_answer_without_login(relay: RelayUnderTest, api: Any) -> None:
    assert_text(await api.get("/healthz"), 200, "ok")
    assert_text(await api.get("/readyz"), 200, "ready")
    assert (await api.post("/healthz")).status_code == 405


async def test_readyz_is_503_while_database_writes_fail(relay: RelayUnderTest, api: Any) -> None:
    """A database that refuses writes (as a full disk would refuse them) takes the relay
    out of a load balancer's rotation until writes work again."""
    refuse, allow = await _write_refusal(relay)
    await refuse()
    car = await scripted_car(relay)
    await car.send("S", "55,K")
    await _readiness(api, 503)
    assert_text(await api.get("/readyz"), 503, "not ready: database writes are failing")
    assert_text(await api.get("/healthz"), 200, "ok")
    await allow()
    await _readiness(api, 200)
    await car.aclose()


Switch = Callable[[], Awaitable[None]]


async def _write_refusal(relay: RelayUnderTest) -> tuple[Switch, Switch]:
    """Turn the database's refusal of the relay's writes on and off: SQLite's query_only
    on the writer's connection; on PostgreSQL a trigger raising ``disk_full``."""
    if is_postgres(relay.db):
        async def refuse_pg() -> None:
            await trio.to_thread.run_sync(relay.sql, _REFUSE_FUNCTION)
            await trio.to_thread.run_sync(
                relay.sql, "CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON latest "
                "FOR EACH ROW EXECUTE FUNCTION refuse_writes()")

        async def allow_pg() -> None:
            await trio.to_thread.run_sync(relay.sql, "DROP TRIGGER refuse ON latest")

        return refuse_pg, allow_pg
    writer: list[sqlite3.Connection] = []

    def refuse_writes(conn: Any) -> None:
        writer.append(conn.raw)
        conn.execute("PRAGMA query_only=ON")

    async def refuse() -> None:
        await relay.handle.store.write_call("latest", refuse_writes)

    async def allow() -> None:
        await trio.to_thread.run_sync(writer[0].execute, "PRAGMA query_only=OFF")

    return refuse, allow


_REFUSE_FUNCTION = """CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'no space left (a test)' USING ERRCODE = 'disk_full'; END $$"""
