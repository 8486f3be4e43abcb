"""Issue 15: /healthz and /readyz for load balancers, without credentials."""

from __future__ import annotations

import sqlite3
from typing import Any

import trio

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
    """A database that refuses writes (here: SQLite's query_only, as a full disk would
    refuse them) takes the relay out of a load balancer's rotation until writes work."""
    store = relay.handle.store
    writer: list[sqlite3.Connection] = []

    def refuse_writes(conn: Any) -> None:
        writer.append(conn.raw)
        conn.execute("PRAGMA query_only=ON")

    await store.write_call("latest", refuse_writes)
    car = await scripted_car(relay)
    await car.send("S", "55,K")
    await _readiness(api, 503)
    assert_text(await api.get("/readyz"), 503, "not ready: database writes are failing")
    assert_text(await api.get("/healthz"), 200, "ok")
    await trio.to_thread.run_sync(writer[0].execute, "PRAGMA query_only=OFF")
    await _readiness(api, 200)
    await car.aclose()
