"""Issue 11 item 1: the command service (relay.commands) under REST, v4 and v2 apps.

On trio's MockClock (autojump) with an in-memory hub and car, and end to end for the
one defect it fixes: REST parameters the v2 line cannot carry are a 400, never sent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
import trio.testing

from protocol import ClientType, Message
from relay.commands import CommandService, Offline, Silent, Unsendable, command_message
from relay.hub import Hub, Peer
from tests.conftest import RelayUnderTest
from tests.http_helpers import CREDS, api, assert_text, scripted_car, sync
from tests.hub_helpers import memory_peer, texts

__all__ = ["api"]  # fixtures

TIMEOUT = 30.0


def connect(hub: Hub, client_type: ClientType, conn_id: str
            ) -> tuple[Peer, trio.MemoryReceiveChannel[Message]]:
    return memory_peer(hub, client_type, conn_id=conn_id, size=100)


drain = texts


async def next_command(to_car: trio.MemoryReceiveChannel[Message]) -> str:
    """The next command the car got (``Z`` peer counts skipped)."""
    while (msg := await to_car.receive()).code == "Z":
        pass
    return msg.text()


def service(hub: Hub) -> CommandService:
    # No store: commands 30-32 are not used here.
    store: Any = None
    return CommandService(hub, store, TIMEOUT)


async def test_answer_lines_are_collected_until_the_last(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = Hub()
    _car, to_car = connect(hub, ClientType.CAR, "car")
    commands = service(hub)
    result: list[Any] = []

    async def ask() -> None:
        result.append(await commands.call("V", 3, requester="t"))

    nursery.start_soon(ask)
    assert (await next_command(to_car)) == "C3"
    for line in ("3,0,0,2,a", "3,0,1,2,b,c"):
        hub.command_response("V", Message("c", line))
    await trio.testing.wait_all_tasks_blocked()
    answer = result[0]
    assert answer.result == 0 and answer.text == "1,2,b,c" and len(answer.lines) == 2


async def test_not_connected_is_offline() -> None:
    with pytest.raises(Offline) as caught:
        await service(Hub()).call("V", 20, "1234", requester="t")
    assert caught.value.status == 409 and caught.value.text == "Vehicle not connected"


async def test_a_silent_car_times_out_and_its_late_answer_goes_nowhere(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub = Hub()
    _car, to_car = connect(hub, ClientType.CAR, "car")
    _app, to_app = connect(hub, ClientType.APP, "app")
    start = trio.current_time()
    with pytest.raises(Silent) as caught:
        await service(hub).call("V", 20, "1234", requester="t")
    assert caught.value.status == 504
    assert trio.current_time() - start == pytest.approx(TIMEOUT)
    assert (await next_command(to_car)) == "C20,1234"
    before = drain(to_app)
    hub.command_response("V", Message("c", "20,0"))
    assert drain(to_app) == [] and "c20,0" not in before


async def test_a_car_leaving_before_it_answers_is_offline(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    hub = Hub()
    car, to_car = connect(hub, ClientType.CAR, "car")
    failure: list[BaseException] = []

    async def ask() -> None:
        try:
            await service(hub).call("V", 5, requester="t")
        except Offline as exc:
            failure.append(exc)

    nursery.start_soon(ask)
    assert (await next_command(to_car)) == "C5"
    hub.unregister(car)
    await trio.testing.wait_all_tasks_blocked()
    assert [str(e) for e in failure] == ["Vehicle disconnected before answering"]
    assert trio.current_time() < TIMEOUT


@pytest.mark.parametrize("args", ["a\r\nZ9", "a\nb", "x\r", "\ud800"])
def test_parameters_the_codec_refuses_cannot_be_sent(args: str) -> None:
    with pytest.raises(Unsendable) as caught:
        command_message(7, args)
    assert caught.value.status == 400
    assert command_message(7, "stat").text() == "C7,stat"


async def test_an_app_command_for_an_absent_car_is_answered_by_the_server() -> None:
    hub = Hub()
    app, to_app = connect(hub, ClientType.APP, "app")
    drain(to_app)
    await service(hub).from_client(app, 20, Message("C", "20,1234"))
    assert drain(to_app) == ["c20,1,Vehicle is not connected"]


@pytest.mark.parametrize("parameters", [r"\ud800", r"a\udfff"])
async def test_rest_parameters_the_v2_line_cannot_carry_are_400_and_never_sent(
    relay: RelayUnderTest, api: httpx.AsyncClient, parameters: str
) -> None:
    """Before: the request passed the parameter check, the car's encoder refused the
    line, and the caller waited for the command timeout (or lost the car)."""
    car = await scripted_car(relay)
    # A JSON escape for a lone surrogate: valid JSON, but no UTF-8 text.
    body = '{"command": 7, "parameters": "' + parameters + '"}'
    response = await api.post("/api/command/DEMO", params=CREDS, content=body.encode(),
                              headers={"content-type": "application/json"})
    assert_text(response, 400, "command 7 cannot be sent: parameters hold text that cannot "
                               "be encoded")
    # The car got nothing and is still connected and answering.
    assert await sync(car) == []
    assert relay.handle.hub.car_connected("DEMO")
