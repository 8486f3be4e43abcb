"""API v4 monitor callbacks through relay.outbound: a real local HTTP server and a real
SQLite store for delivery and restarts, trio's MockClock (autojump) for retry timing.

Issue 11 finding 6: one outbound delivery package; pending callback retries survive a
restart like pending pushes do.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from relay import db
from relay.outbound.urlpolicy import UrlPolicy
from relay.store import Store, open_store
from relay.v4 import callback_rows, monitor_model, monitor_parse, monitors
from relay.v4.callbacks import CallbackJob, CallbackSender
from tests.pg_server import run_sql
from tests.test_push_support import FakeService, Reply


def monitor(target: str, *, policy: str = "Always", retries: int = 3,
            delay: int = 60) -> monitor_model.Monitor:
    return monitor_parse.parse_monitor(json.dumps({
        "label": "Low battery",
        "subscribeParam": {
            "callback": {"target": target, "name": "CB", "attributes": [
                {"type": "Query", "key": "car", "value": "$vehicleid"},
                {"type": "Header", "key": "Authorization", "value": "Basic c2VjcmV0"}]},
            "retryPolicy": {"policy": policy, "maxRetryNumber": retries,
                            "retryDelay": delay}},
        "triggerParam": {"triggers": [{"name": "low", "data": {
            "data": "vehicle.energy.electric.level", "op": "lowerThan", "value": ["50"]}}]},
    }), url_allowed=lambda url: True)


def job(target: str, **retry: Any) -> CallbackJob:
    event = monitors.Event(1_700_000_000.0, {"low": True},
                           {"vehicle.energy.electric.level": 40.0})
    return CallbackJob("mon1", "DEMO", "VIN123", monitor(target, **retry), (event,),
                       {"S": "40,K,0,0,stopped,standard,200,150"}, None, 1_700_000_000.0)


class Outcomes:
    """What the engine would do with given-up batches (it raises an alert)."""

    def __init__(self) -> None:
        self.given_up: list[tuple[str, str, float]] = []

    async def alerts_for(self, vehicleid: str) -> list[dict[str, Any]]:
        return []

    async def gave_up(self, job: CallbackJob, reason: str) -> None:
        self.given_up.append((job.monitorid, reason, trio.current_time()))


def sender(policy: UrlPolicy, outcomes: Outcomes, *, store: Store | None = None,
           transport: httpx.AsyncBaseTransport | None = None) -> CallbackSender:
    return CallbackSender(policy, timeout=5.0, queue_size=10, workers=2,
                          alerts_for=outcomes.alerts_for, gave_up=outcomes.gave_up,
                          store=store, transport=transport)


async def until(check: Any) -> None:
    with trio.fail_after(15):
        while not check():
            await trio.sleep(0.01)


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


@pytest.fixture
def db_path(relay_db: str) -> str:
    return relay_db


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    async with open_store(db_path) as s:
        yield s


async def test_callback_is_posted_to_a_real_server(
        service: FakeService, store: Store) -> None:
    """Issue 11 finding 6: the callback sender on the outbound package posts the batch
    (query and header attributes, JSON body) to a real HTTP server and stores nothing."""
    outcomes = Outcomes()
    callbacks = sender(UrlPolicy((service.url + "/",)), outcomes, store=store)
    async with trio.open_nursery() as nursery:
        await nursery.start(callbacks.run)
        callbacks.submit(job(f"{service.url}/cb?fixed=1"))
        [request] = await service.wait_for(1)
        await until(callbacks.idle)
        nursery.cancel_scope.cancel()
    assert request.method == "POST" and request.path == "/cb?fixed=1&car=DEMO"
    assert request.headers["authorization"] == "Basic c2VjcmV0"
    body = request.json()
    assert (body["monitorId"], body["vehicleId"], body["vin"]) == ("mon1", "DEMO", "VIN123")
    assert body["events"][0]["triggers"] == {"low": True}
    assert (callbacks.stats.delivered, callbacks.stats.retries) == (1, 0)
    assert await store.query(
        lambda c: c.execute("SELECT count(*) FROM v4_callback_pending").fetchone()[0]) == 0


async def test_pending_callback_retry_survives_a_restart(
        service: FakeService, db_path: str) -> None:
    """Issue 11 finding 6: a batch waiting for its retry is stored; a new sender on the
    same database (the relay restarted) sends it again, the same batch, and deletes it."""
    service.script("/cb?car=DEMO", Reply(500))
    policy = UrlPolicy((service.url + "/",))
    async with open_store(db_path) as store:
        first = sender(policy, Outcomes(), store=store)
        async with trio.open_nursery() as nursery:
            await nursery.start(first.run)
            first.submit(job(f"{service.url}/cb", delay=3600))
            await service.wait_for(1)
            await until(lambda: first.stats.retries == 1)
            nursery.cancel_scope.cancel()  # the relay stops with the retry an hour away
    [(monitorid, failures, next_try)] = run_sql(
        db_path, "SELECT monitorid, failures, next_try FROM v4_callback_pending")
    assert (monitorid, failures) == ("mon1", 1)
    assert next_try == pytest.approx(time.time() + 3600, abs=60)
    # ... and starts again when the retry is due
    run_sql(db_path, "UPDATE v4_callback_pending SET next_try=?", time.time() - 1)
    outcomes = Outcomes()
    async with open_store(db_path) as store:
        second = sender(policy, outcomes, store=store)
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            assert second.stats.reloaded == 1
            failed, retried = await service.wait_for(2)
            await until(second.idle)
            nursery.cancel_scope.cancel()
        assert await store.query(
            lambda c: c.execute("SELECT count(*) FROM v4_callback_pending").fetchone()[0]) == 0
    assert second.stats.delivered == 1 and not outcomes.given_up
    assert retried.path == failed.path
    assert retried.headers["authorization"] == "Basic c2VjcmV0"
    first_body, second_body = failed.json(), retried.json()
    for key in ("monitorId", "vehicleId", "vin", "events", "label"):
        assert second_body[key] == first_body[key]


async def test_retries_follow_the_retry_policy_then_give_up(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 finding 6: retries come ``retryDelay`` apart on trio's clock (MockClock:
    no real waiting); after ``maxRetryNumber`` retries the batch is given up once."""
    attempts: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        attempts.append(trio.current_time())
        return httpx.Response(503)

    outcomes = Outcomes()
    callbacks = sender(UrlPolicy(("http://receiver.test/",)), outcomes,
                       transport=httpx.MockTransport(answer))
    async with trio.open_nursery() as nursery:
        await nursery.start(callbacks.run)
        start = trio.current_time()
        callbacks.submit(job("http://receiver.test/cb", policy="Transient", retries=2,
                             delay=30))
        while not outcomes.given_up:
            await trio.sleep(1)
        await trio.testing.wait_all_tasks_blocked()
        assert callbacks.idle()
        nursery.cancel_scope.cancel()
    assert [t - start for t in attempts] == [0, 30, 60]
    assert [(m, r, t - start) for m, r, t in outcomes.given_up] == [("mon1", "HTTP 503", 60)]
    assert (callbacks.stats.retries, callbacks.stats.failed) == (2, 1)


async def test_client_error_is_not_retried_under_transient(
        autojump_clock: trio.testing.MockClock) -> None:
    """Issue 11 finding 6: ``Transient`` gives up at once on a 4xx."""
    outcomes = Outcomes()
    callbacks = sender(UrlPolicy(("http://receiver.test/",)), outcomes,
                       transport=httpx.MockTransport(lambda request: httpx.Response(404)))
    async with trio.open_nursery() as nursery:
        await nursery.start(callbacks.run)
        callbacks.submit(job("http://receiver.test/cb", policy="Transient"))
        while not outcomes.given_up:
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert [r for _, r, _ in outcomes.given_up] == ["HTTP 404"]
    assert callbacks.stats.retries == 0


def test_purge_drops_rows_of_deleted_vehicles_and_rows_past_any_retry_policy(
        db_path: str) -> None:
    """Issue 11 finding 6: pending callback rows cannot pile up: the store's purge takes
    those of deleted vehicles and those older than the longest retry policy, in rounds."""
    now = time.time()
    conn = db.wrapped(db.connect(db_path))
    try:
        with conn.transaction():
            conn.executemany(
                "INSERT INTO v4_callback_pending(jobid, monitorid, vehicleid, job, failures, "
                "next_try, created) VALUES (?, 'm', ?, '{}', 1, ?, ?)",
                [("keep", "DEMO", now, now - 86400),
                 ("gone1", "NOSUCHCAR", now, now), ("gone2", "NOSUCHCAR", now, now),
                 ("old", "DEMO", now, now - callback_rows.MAX_AGE - 1)])
        with conn.transaction():
            assert callback_rows.purge(conn, now=now, limit=2) == 2
        with conn.transaction():
            assert callback_rows.purge(conn, now=now, limit=2) == 1
        rows = conn.execute("SELECT jobid FROM v4_callback_pending").fetchall()
        assert [tuple(r) for r in rows] == [("keep",)]
    finally:
        conn.close()
