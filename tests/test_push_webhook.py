"""Push delivery end to end: a real relay, a car's ``P``, a real local HTTP server.

webhook and ntfy, retries, persistence across a restart, the history records,
the authentication alerts, and URL refusal (SSRF) on subscription.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import pytest
import trio

from protocol import ClientType
from relay.app import RelayHandle, run_relay
from relay.config import Config
from relay.push import PushDispatcher
from tests.conftest import RelayUnderTest, StartRelay
from tests.pg_server import run_sql
from tests.settle import pinged
from tests.test_push_support import FakeService, Reply
from tools.v2client import LoginRefused, V2Client

FAST = {"push_retry_base": 0.01, "push_retry_max": 0.05, "push_timeout": 5.0}


def dispatcher(handle: RelayHandle) -> PushDispatcher:
    push = handle.services.router.push
    assert push is not None
    return push


async def wait_until(check: Callable[[], Any], timeout: float = 15.0) -> None:
    """Poll ``check`` (plain or async) until it is true; fails after ``timeout``."""
    with trio.fail_after(timeout):
        while True:
            result = check()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return
            await trio.sleep(0.02)


async def subscribe(relay: RelayUnderTest, *subscriptions: str, vehicleid: str = "DEMO") -> None:
    """Send ``p`` lines as an app and wait until the relay has handled them."""
    app = await relay.app(vehicleid)
    await pinged(app)
    for line in subscriptions:
        await app.send("p", line)
    await app.send("A")
    await app.receive_until("a")
    await app.aclose()


async def car_says(relay: RelayUnderTest, *alerts: str) -> V2Client:
    car = await relay.car()
    await pinged(car)
    for alert in alerts:
        await car.send("P", alert)
    return car


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


@pytest.fixture
def restart_config(relay_db: str, service: FakeService) -> Config:
    """A relay's config for ``running_relay``: to stop and start again on one database."""
    return Config(db=relay_db, host="127.0.0.1", v2_port=0, http_port=0,
                  webhook_allow=[service.url + "/"], **FAST)


@pytest.fixture
async def push_relay(start_relay: StartRelay, service: FakeService) -> RelayUnderTest:
    relay: RelayUnderTest = await start_relay(webhook_allow=[service.url + "/"], **FAST)
    return relay


async def test_webhook_gets_signed_json_and_app_still_gets_p(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    await subscribe(push_relay, f"hook1,webhook,url,DEMO,DEMO,{service.url}/hook")
    app = await push_relay.app()
    await pinged(app)
    car = await car_says(push_relay, "ACharging stopped")
    await pinged(car)
    assert await pinged(app) == ["Z1", "PACharging stopped"]
    [request] = await service.wait_for(1, "/hook")
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert {k: body[k] for k in ("vehicleid", "appid", "alerttype", "text")} == {
        "vehicleid": "DEMO", "appid": "hook1", "alerttype": "A", "text": "Charging stopped"}
    # What a receiver does: derive the secret from the carpass ("DEMO"), check the MAC.
    secret = hmac.new(b"DEMO", b"ovms-relay webhook", hashlib.sha256).hexdigest()
    fields = dict(part.split("=", 1) for part in request.headers["x-ovms-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request.body,
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(fields["v1"], expected)
    await wait_until(lambda: (dispatcher(push_relay.handle).stats.delivered == 1))
    await car.aclose()


async def test_history_listed_as_log_notification_records(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    await car_says(push_relay, "IHello", "EFault,1,2")
    store = push_relay.handle.store

    async def both_logged() -> bool:
        return len(await store.historical_records("DEMO", "*-Log-Notification")) == 2

    await wait_until(both_logged)
    records = await store.historical_records("DEMO", "*-Log-Notification")
    assert sorted(r.data for r in records) == ["E,Fault,1,2", "I,Hello"]
    app = await push_relay.app()
    await pinged(app)
    await app.send("C", "32,*-Log-Notification")
    answers = [m.text() for m in await app.receive_until("c")]
    assert answers[-1].startswith("c32,0,1,2,*-Log-Notification,")  # k from 1


async def test_retries_on_500_and_429_then_delivers(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    service.script("/retry", Reply(500), Reply(429, headers=(("retry-after", "0"),)), Reply(503))
    await subscribe(push_relay, f"r1,webhook,url,DEMO,DEMO,{service.url}/retry")
    await car_says(push_relay, "Aonce")
    requests = await service.wait_for(4, "/retry")
    assert len({r.json()["id"] for r in requests}) == 1  # the same notification, 4 times
    push = dispatcher(push_relay.handle)
    await wait_until(lambda: (push.stats.delivered == 1))
    assert push.stats.retries == 3
    await push_relay.handle.store.flush()
    assert _pending_rows(push_relay.db) == []


async def test_gives_up_after_max_attempts(start_relay: StartRelay, service: FakeService) -> None:
    relay = await start_relay(webhook_allow=[service.url + "/"], push_max_attempts=3, **FAST)
    service.script("/down", *[Reply(502)] * 10)
    await subscribe(relay, f"d1,webhook,url,DEMO,DEMO,{service.url}/down")
    await car_says(relay, "Ax")
    push = dispatcher(relay.handle)
    await wait_until(lambda: (push.stats.failed == 1))
    assert len(service.on("/down")) == 3
    assert (await relay.handle.store.push_subscriptions("DEMO"))  # still subscribed


async def test_410_deactivates_the_subscription(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    service.script("/gone", Reply(410))
    await subscribe(push_relay, f"g1,webhook,url,DEMO,DEMO,{service.url}/gone",
                    f"ok1,webhook,url,DEMO,DEMO,{service.url}/ok")
    await car_says(push_relay, "Afirst")
    await service.wait_for(1, "/gone")
    store = push_relay.handle.store

    async def deactivated() -> bool:
        return [s.appid for s in await store.push_subscriptions("DEMO")] == ["ok1"]

    await wait_until(deactivated)
    await car_says(push_relay, "Asecond")
    await service.wait_for(2, "/ok")
    assert len(service.on("/gone")) == 1


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook",  # loopback
    "https://10.1.2.3/hook",  # private
    "https://169.254.169.254/latest/meta-data/",  # link-local (cloud metadata)
    "https://[::1]/hook",
    "https://224.0.0.1/hook",  # multicast
    "https://localhost/hook",  # resolves to loopback
    "http://93.184.215.14/hook",  # public, but not https
    "file:///etc/passwd",
    "https://user:pw@93.184.215.14/",
    "not a url",
])
async def test_refused_webhook_url_is_not_stored(
    push_relay: RelayUnderTest, service: FakeService, url: str
) -> None:
    await subscribe(push_relay, f"bad,webhook,url,DEMO,DEMO,{url}")
    assert await push_relay.handle.store.push_subscriptions("DEMO") == []


async def test_allow_prefix_is_matched_exactly(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    other_port = service.port + 1 if service.port < 65535 else service.port - 1
    await subscribe(
        push_relay,
        f"a,webhook,url,DEMO,DEMO,{service.url}/fine",
        f"b,webhook,url,DEMO,DEMO,http://127.0.0.1:{other_port}/",
        f"c,webhook,url,DEMO,DEMO,{service.url}@169.254.169.254/",
        "d,webhook,url,DEMO,DEMO,https://93.184.215.14/public",  # public https: allowed
    )
    subs = await push_relay.handle.store.push_subscriptions("DEMO")
    assert [s.appid for s in subs] == ["a", "d"]


async def test_ntfy_topic_url_and_bare_topic(start_relay: StartRelay, service: FakeService) -> None:
    relay = await start_relay(webhook_allow=[service.url + "/"], ntfy_server=service.url, **FAST)
    await subscribe(relay, f"n1,ntfy,url,DEMO,DEMO,{service.url}/mytopic",
                    "n2,ntfy,x,DEMO,DEMO,bare")
    await car_says(relay, "AUnlocked while parked")
    for path in ("/mytopic", "/bare"):
        [request] = await service.wait_for(1, path)
        assert request.body == b"Unlocked while parked"
        assert request.headers["title"] == "Open Vehicles DEMO"


async def test_car_auth_failure_alerts_once_then_success(
    push_relay: RelayUnderTest, service: FakeService
) -> None:
    await subscribe(push_relay, f"h,webhook,url,DEMO,DEMO,{service.url}/auth")
    for _ in range(3):
        with pytest.raises(LoginRefused):
            await push_relay.connect("DEMO", ClientType.CAR, carpass="wrong")
    with pytest.raises(LoginRefused):  # an app with a wrong password is not a car alert
        await push_relay.connect("DEMO", ClientType.APP, carpass="wrong")
    car = await push_relay.car()
    await pinged(car)
    await car.aclose()
    car = await push_relay.car()  # a second success: nothing more to say
    await car.send("P", "Adone")
    requests = await service.wait_for(3, "/auth")
    assert [r.json()["text"] for r in requests] == [
        "Vehicle authentication failed (127.0.0.1)",
        "Vehicle authentication successful (127.0.0.1)",
        "done",
    ]


async def test_pending_notification_delivered_after_restart(
    restart_config: Config, service: FakeService
) -> None:
    config, path = restart_config, restart_config.db
    # First run: the service takes the request and never answers; the relay stops
    # with the notification in flight.
    service.script("/slow", Reply(hang=True))
    async with running_relay(config) as relay:
        await subscribe(relay, f"s1,webhook,url,DEMO,DEMO,{service.url}/slow")
        await car_says(relay, "ADoor open")
        [first] = await service.wait_for(1, "/slow")
    assert [row[1] for row in _pending_rows(path)] == ["s1"]
    # Second run: delivered without the car saying anything again.
    async with running_relay(config) as relay:
        second = (await service.wait_for(2, "/slow"))[1]
        assert second.json()["id"] == first.json()["id"]
        assert second.json()["text"] == "Door open"
        push = dispatcher(relay.handle)
        await wait_until(lambda: (push.stats.delivered == 1))
        await relay.handle.store.flush()
    assert _pending_rows(path) == []


async def test_expired_pending_notification_is_dropped_at_start(
    restart_config: Config, service: FakeService
) -> None:
    config, path = restart_config, restart_config.db
    service.script("/late", Reply(hang=True))
    async with running_relay(config) as relay:
        await subscribe(relay, f"e1,webhook,url,DEMO,DEMO,{service.url}/late")
        await car_says(relay, "Aold news")
        await service.wait_for(1, "/late")
    run_sql(path, "UPDATE push_pending SET expires=1")
    async with running_relay(config) as relay:
        await relay.handle.store.flush()
        assert _pending_rows(path) == []
    assert len(service.on("/late")) == 1


@asynccontextmanager
async def running_relay(config: Config) -> AsyncIterator[RelayUnderTest]:
    """A relay stopped (like Ctrl-C) when the block ends."""
    async with trio.open_nursery() as nursery:
        handle: RelayHandle = await nursery.start(run_relay, config)
        yield RelayUnderTest(handle, config, config.db)
        nursery.cancel_scope.cancel()


def _pending_rows(target: str) -> list[tuple[Any, ...]]:
    return run_sql(target, "SELECT nid, appid, attempts FROM push_pending")


def test_fast_settings_are_config_fields() -> None:
    assert set(FAST) <= set(attrs.fields_dict(Config))
