"""The official OVMS notify script: a batch client that sends one ``P`` and leaves.

It logs in with scheme 0 as ``MP-B`` and an unpadded digest (Perl's
``b64digest``), waits for the login replay, sends ``P<alerttype><text>`` and
closes. Issue 10 item 4: the vehicle's apps get the ``P`` and so does every push
subscriber of the vehicle (here a webhook on a local HTTP server); the car and
the sender get nothing.
"""

from __future__ import annotations

import trio

from tests.conftest import StartRelay
from tests.raw_v2 import RawScheme0
from tests.settle import pinged
from tests.test_push_support import FakeService
from tests.test_push_webhook import FAST, service, subscribe

__all__ = ["service"]  # the fixture


async def test_notify_script_reaches_apps_and_push_subscribers(
    start_relay: StartRelay, service: FakeService
) -> None:
    relay = await start_relay(webhook_allow=[service.url + "/"], **FAST)
    await subscribe(relay, f"phone1,webhook,url,DEMO,DEMO,{service.url}/notify")
    car = await relay.car()
    await pinged(car)
    app = await relay.app()
    await pinged(app)
    await pinged(car)

    notify = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO", "B", padded=False)
    await notify.receive_until("T")
    await notify.send_text("PICharge finished at 23:00")
    with trio.fail_after(10):
        assert [m.text() for m in await app.receive_until("P")] == [
            "PICharge finished at 23:00"]
    [request] = await service.wait_for(1, "/notify")
    body = request.json()
    assert {k: body[k] for k in ("vehicleid", "appid", "alerttype", "text")} == {
        "vehicleid": "DEMO", "appid": "phone1", "alerttype": "I",
        "text": "Charge finished at 23:00"}
    assert await pinged(notify) == []
    await notify.aclose()
    assert await pinged(car) == []
