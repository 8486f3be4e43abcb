"""Cluster mode: what must happen once per event, whichever node holds what.

Three ``ovms-relay serve`` processes on PostgreSQL and NATS, the car on node a, apps on
b and c, and a real HTTP server standing in for the push service (webhook) and for
API v4 monitor callbacks.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import trio

from tests.pg_server import pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)
from tests.relay_processes import (
    CREDS,
    WAIT,
    RelayProcess,
    app_on,
    car_on,
    db,
    expect,
    relays,
)
from tests.test_v4_http_support import Receiver, receiver

__all__ = ["db", "pg_cluster", "pg_server", "receiver"]  # fixtures

LOW_BATTERY = {
    "label": "battery low",
    "subscribeParam": {"callback": {"target": "", "name": "HTTP_CB"}},
    "triggerParam": {"triggers": [{"name": "low", "data": {
        "data": "vehicle.energy.electric.level", "op": "lowerThan", "value": ["50"]}}],
        "bool.exp": "low"},
}


def status(soc: int) -> str:
    return f"{soc},K,0,0,stopped,standard,200,150"


def api(node: RelayProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.http_port}", timeout=WAIT)


async def pushes_delivered(node: RelayProcess) -> int:
    """The node's count of webhook deliveries (its /metrics)."""
    async with api(node) as client:
        text = (await client.get("/metrics")).text
    found = re.search(r'^ovms_push_total\{outcome="delivered",type="webhook"\} (\S+)$', text,
                      re.MULTILINE)
    return 0 if found is None else int(float(found.group(1)))


def texts(received: Receiver, path: str) -> list[str]:
    return [r.body.get("text", "") for r in received.received() if r.path == path]


async def test_push_and_monitors_fire_once_and_app_push_reaches_every_node(
        db: str, bus: str, tmp_path: Path, receiver: Receiver) -> None:
    extra = f'webhook_allow = ["{receiver.url}"]\nmonitor_tick = 0.2\n'
    async with relays(db, bus, tmp_path, ["a", "b", "c"], extra) as nodes:
        a, b, c = nodes["a"], nodes["b"], nodes["c"]
        car = await car_on(a)
        await expect(car, "Z0")
        app_b = await app_on(b)
        await expect(app_b, "Z1")
        app_c = await app_on(c)
        await expect(app_c, "Z1")
        await expect(car, "Z2")
        # A push subscription made on b, a v4 monitor made through b's REST API.
        await app_b.send("p", f"hook1,webhook,url,DEMO,DEMO,{receiver.url}push")
        await car.send("S", status(60))
        await expect(app_c, f"S{status(60)}")
        async with api(b) as rest:
            reply = await rest.post("/api/token", params={**CREDS, "permit": "v4"})
            assert reply.status_code == 201, reply.text
            auth = {"Authorization": f"Bearer {reply.json()['token']}"}
            body = {**LOW_BATTERY, "subscribeParam": {"callback": {
                "target": f"{receiver.url}cb", "name": "HTTP_CB"}}}
            reply = await rest.post("/api/v4/user/vehicles/DEMO/monitors", headers=auth,
                                    json=body)
            assert reply.status_code == 201, reply.text
        async with api(a) as rest:  # a, the car's node, runs it once it has heard
            with trio.fail_after(WAIT):
                while not (await rest.get("/api/v4/user/vehicles/DEMO/monitors",
                                          headers=auth)).json()["_embedded"]["monitors"]:
                    await trio.sleep(0.05)

        await car.send("S", status(60))  # the monitor's state on a: false ...
        await car.send("P", "Aone")
        await car.send("S", status(40))  # ... its edge
        await car.send("P", "Atwo")
        for app in (app_b, app_c):
            await expect(app, "PAone")
            await expect(app, "PAtwo")
        # An app's own P (the notify script) reaches the other apps on every node, and
        # the push subscriptions once (from the app's node).
        await app_c.send("P", "Ifrom the app")
        await expect(app_b, "PIfrom the app")
        await car.send("P", "Alast")  # the last event: everything else has been sent
        await expect(app_b, "PAlast")
        with trio.fail_after(WAIT):
            while "last" not in texts(receiver, "/push") or not texts(receiver, "/cb"):
                await trio.sleep(0.05)
        await trio.sleep(1.0)  # time for a duplicate to show up (the test can fail)
        assert sorted(texts(receiver, "/push")) == ["from the app", "last", "one", "two"]
        assert len(texts(receiver, "/cb")) == 1
        assert (await pushes_delivered(a), await pushes_delivered(b),
                await pushes_delivered(c)) == (3, 0, 1)
        for client in (app_b, app_c, car):
            await client.aclose()
