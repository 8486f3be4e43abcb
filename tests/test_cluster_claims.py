"""Cluster mode: each pending retry (a push, a v4 monitor callback) is retried by one
node. A node that starts takes only its own rows and those no live node holds; a
stopped node's rows are taken over once its lease ended (``relay.store.claims``).

Two relays in this process on one PostgreSQL database and one NATS, and stores on
one database (SQLite and PostgreSQL) standing in for nodes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from relay.store import PendingPush, Store, open_store
from relay.v4 import callback_rows
from tests.conftest import StartRelay, make_db
from tests.nats_server import unique_prefix
from tests.old_databases import sqlite_at_version
from tests.pg_server import db_target, pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tests.test_push_support import FakeService, Reply
from tests.test_push_webhook import car_says, dispatcher, subscribe, wait_until

__all__ = ["db_target", "pg_cluster", "pg_server"]  # fixtures

LEASE = 60.0
LATER = 10 * LEASE  # a "now" at which every lease written during the test has ended


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


async def test_a_node_that_starts_leaves_a_live_nodes_push_retry_alone(
        start_relay: StartRelay, pg_url: str, bus: str,  # noqa: F811
        service: FakeService) -> None:
    service.script("/hook", *[Reply(503)] * 5)
    make_db(pg_url)
    settings = {"db": pg_url, "bus": bus, "bus_prefix": unique_prefix(),
                "webhook_allow": [service.url + "/"], "push_retry_base": 3600.0,
                "push_retry_max": 3600.0}
    a = await start_relay(node_id="a", **settings)
    await subscribe(a, f"hook1,webhook,url,DEMO,DEMO,{service.url}/hook")
    car = await car_says(a, "Alow battery")
    push_a = dispatcher(a.handle)
    await wait_until(lambda: push_a.stats.retries == 1)  # failed once, retried in an hour
    await a.handle.store.flush()
    # Another node starts while a still retries the notification.
    b = await start_relay(node_id="b", **settings)
    push_b = dispatcher(b.handle)
    assert push_b.queue_depth == 0
    assert push_a.queue_depth == 1
    # a stops renewing (as if killed): once its lease ended, b's next round takes it.
    await b.handle.store.claims.round(now=time.time() + LATER)
    assert push_b.queue_depth == 1
    item = _only(await b.handle.store.query(_pending_items))
    assert not await a.handle.store.hold_push_pending(item)  # a's retry would stop here
    assert await b.handle.store.hold_push_pending(item)
    assert len(service.on("/hook")) == 1
    await car.aclose()


def _pending_items(conn: Any) -> list[PendingPush]:
    rows = conn.execute("SELECT nid, vehicleid, appid FROM push_pending").fetchall()
    return [PendingPush(r[0], r[1], r[2], "", "", "", "", "", "", 0.0, 0.0, 1, 0.0)
            for r in rows]


def _only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


# --- two stores on one database, as two nodes -------------------------------------------


@asynccontextmanager
async def node(db: str, name: str) -> AsyncIterator[Store]:
    async with open_store(db, claim_lease=LEASE) as store:
        store.claims.node = name
        yield store


def callback_row(jobid: str) -> callback_rows.PendingRow:
    return callback_rows.PendingRow(jobid, "m1", "DEMO", {"events": []}, 1,
                                    time.time() + 3600, time.time())


class Taken:
    """What a round hands over."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    async def __call__(self, loaded: Any) -> None:
        self.items.append(loaded)


async def test_callback_retries_are_each_retried_by_one_node(db_target: str) -> None:
    async with node(db_target, "a") as a:
        assert await callback_rows.load(a, Taken()) == ([], [])
        await callback_rows.save(a, callback_row("job1"))
        await a.flush()
        async with node(db_target, "b") as b:
            taken_b = Taken()
            assert await callback_rows.load(b, taken_b) == ([], [])  # a holds job1
            await callback_rows.save(b, callback_row("job2"))
            await b.flush()
            await b.claims.round()  # nothing expired: nothing taken
            assert taken_b.items == [([], [])]
            assert await callback_rows.hold(a, "job1") and not await callback_rows.hold(a, "job2")
            await b.claims.round(now=time.time() + LATER)  # a stopped renewing
            rows, broken = taken_b.items[-1]
            assert [r.jobid for r in rows] == ["job1"] and broken == []
            assert not await callback_rows.hold(a, "job1")  # a lost it: no retry there
            assert await callback_rows.hold(b, "job1") and await callback_rows.hold(b, "job2")
        # b is gone; a node restarted under b's id takes b's rows back at once.
        async with node(db_target, "b") as again:
            rows, _ = await callback_rows.load(again, Taken())
            assert sorted(r.jobid for r in rows) == ["job1", "job2"]


async def test_push_rows_one_process_takes_every_row_at_start(db_target: str) -> None:
    """One process (node id ""): every row, even those a cluster node left behind."""
    now = time.time()
    item = PendingPush("n1", "DEMO", "app1", "owner", "webhook", "url", "x", "A", "t",
                       now, now + 3600, 1, now + 60)
    async with node(db_target, "a") as a:
        await a.add_push_pending(item)
        await a.flush()
    async with open_store(db_target, claim_lease=LEASE) as single:
        pending, expired = await single.take_push_pending(Taken())
        assert [p.nid for p in pending] == ["n1"] and expired == 0
        assert await single.hold_push_pending(item)


def test_rows_written_before_claims_are_taken_by_the_first_node(tmp_path: Path) -> None:
    """A version 5 database: its pending rows get no claim, so any node may take them."""
    path = tmp_path / "v5.db"
    with sqlite_at_version(path, 5) as raw:
        raw.execute("INSERT INTO v4_callback_pending VALUES ('old', 'm1', 'DEMO', '{}', 1, 0, 0)")

    async def main() -> None:
        async with node(str(path), "a") as a:
            rows, _ = await callback_rows.load(a, Taken())
            assert [r.jobid for r in rows] == ["old"]

    trio.run(main)
