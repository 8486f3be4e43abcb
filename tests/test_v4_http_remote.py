"""API v4 remote actions end to end: 202, pending -> done/failed as the car answers."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from tests.conftest import RelayUnderTest
from tests.test_v4_http_support import (
    V4,
    assert_error,
    assert_hal,
    assert_single,
    bearer,
    make_token,
    receiver,
    v4api,
    v4relay,
)
from tools.v2client import V2Client

__all__ = ["receiver", "v4api", "v4relay"]  # fixtures

VEH = f"{V4}/user/vehicles/DEMO"


async def poll(api: httpx.AsyncClient, href: str, headers: dict[str, str]) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            action: dict[str, Any] = assert_hal(await api.get(href, headers=headers))
            if action["status"] != "pending":
                return action
            await trio.sleep(0.02)


async def test_remote_action_done_and_failed(v4relay: RelayUnderTest,
                                             v4api: httpx.AsyncClient) -> None:
    headers = bearer(await make_token(v4api))
    car: V2Client = await v4relay.car()
    assert (await car.receive()).code == "Z"

    response = await v4api.post(f"{VEH}/remote", headers=headers,
                                json={"action": "climate.on"})
    action = assert_hal(response, 202)
    href = f"{VEH}/remote/{action['id']}"
    assert response.headers["location"] == href
    assert_single(action, href)
    assert (action["status"], action["action"], action["command"]) == ("pending", "climate.on",
                                                                        26)
    command = await car.receive()
    assert command.text() == "C26,1"
    await car.send("c", "26,0,ok")
    done = await poll(v4api, href, headers)
    assert done["status"] == "done" and done["outcome"]["code"] == 200

    # The car refuses a lock: failed, with its text; the PIN never shows.
    action = assert_hal(await v4api.post(f"{VEH}/remote", headers=headers,
                                         json={"action": "lock", "pin": "1234"}), 202)
    assert (await car.receive()).text() == "C20,1234"
    await car.send("c", "20,1,wrong pin")
    failed = await poll(v4api, action["_links"]["self"]["href"], headers)
    assert failed["status"] == "failed" and failed["outcome"]["code"] == 422
    assert "wrong pin" in failed["outcome"]["message"] and "1234" not in str(failed)

    # Refused before anything is sent.
    assert_error(await v4api.post(f"{VEH}/remote", headers=headers, json={"action": "lock"}),
                 400, "PIN")
    assert_error(await v4api.post(f"{VEH}/remote", headers=headers, json={"action": "horn"}),
                 501, "horn")
    assert_error(await v4api.post(f"{VEH}/remote", headers=headers, json={"action": "fly"}),
                 400, "unknown action")
    assert_error(await v4api.get(f"{VEH}/remote/nosuch", headers=headers), 404)

    # The car gone: the action fails with 409.
    await car.aclose()
    with trio.fail_after(10):
        while v4relay.handle.hub.car_connected("DEMO"):
            await trio.sleep(0.02)
    action = assert_hal(await v4api.post(f"{VEH}/remote", headers=headers,
                                         json={"action": "wakeup"}), 202)
    offline = await poll(v4api, action["_links"]["self"]["href"], headers)
    assert offline["status"] == "failed" and offline["outcome"]["code"] == 409
