"""Vehicle control over REST: a command to a scripted car over real sockets, and its answer."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import (
    CREDS,
    api,
    assert_json,
    assert_text,
    client,
    scripted_car,
    sync,
)
from tests.settle import pinged
from tools.v2client import V2Client

__all__ = ["api"]  # fixtures


class Pending:
    """An HTTP call running in the background while the test plays the car."""

    def __init__(self) -> None:
        self.response: httpx.Response | None = None
        self.done = trio.Event()

    def result(self) -> httpx.Response:
        assert self.response is not None
        return self.response


async def start_call(nursery: trio.Nursery, http: httpx.AsyncClient, method: str, path: str,
                     **kwargs: Any) -> Pending:
    pending = Pending()

    async def run() -> None:
        pending.response = await http.request(method, path, **kwargs)
        pending.done.set()

    nursery.start_soon(run)
    return pending


async def answer(car: V2Client, expected: str, *replies: str) -> None:
    """The car receives ``expected`` and answers with ``replies`` (``c`` lines)."""
    msg = await car.receive()
    assert msg.text() == expected
    for reply in replies:
        await car.send("c", reply)


async def finished(pending: Pending) -> httpx.Response:
    with trio.fail_after(10):
        await pending.done.wait()
    return pending.result()


async def test_lock_round_trip(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    pending = await start_call(nursery, api, "PUT", "/api/lock/DEMO",
                               params={**CREDS, "pin": "1234"})
    await answer(car, "C20,1234", "20,0")
    assert assert_json(await finished(pending)) == {"command": 20, "result": 0, "text": ""}


async def test_car_offline_is_409(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    assert_text(await api.put("/api/lock/DEMO", params={**CREDS, "pin": "1234"}), 409,
                "Vehicle not connected")


async def test_silent_car_is_504_and_its_late_answer_is_discarded(
    start_relay: StartRelay, nursery: trio.Nursery
) -> None:
    relay = await start_relay(command_timeout=0.3)
    car = await scripted_car(relay)
    app = await relay.app()
    await pinged(app)
    assert await sync(car) == ["Z1"]
    async with client(relay) as http:
        pending = await start_call(nursery, http, "PUT", "/api/lock/DEMO",
                                   params={**CREDS, "pin": "1234"})
        assert (await car.receive()).text() == "C20,1234"
        assert_text(await finished(pending), 504, "No answer from the vehicle within 0.3 s")
    await car.send("c", "20,0")
    await sync(car)
    # The answer belonged to the HTTP request that gave up: nobody else gets it.
    assert await pinged(app) == []


async def test_car_refusals_carry_its_text(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    cases = [
        ("DELETE", "/api/lock/DEMO", {"pin": "9"}, "C22,9", "22,1,Wrong PIN", 422, "Wrong PIN"),
        ("PUT", "/api/homelink/DEMO", {"button": "1"}, "C24,1", "24,2", 400,
         "Command not supported by the vehicle"),
        ("PUT", "/api/reset/DEMO", {}, "C5", "5,3", 400,
         "Command not implemented by the vehicle module"),
        ("PUT", "/api/valet/DEMO", {"pin": "1"}, "C21,1", "21,1", 422, "Command failed"),
    ]
    for method, path, params, expected, reply, status, text in cases:
        pending = await start_call(nursery, api, method, path, params={**CREDS, **params})
        await answer(car, expected, reply)
        assert_text(await finished(pending), status, text)


async def test_each_endpoint_sends_its_command(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    cases = [
        ("PUT", "/api/charge/DEMO", {}, "C11"),
        ("PUT", "/api/charge/DEMO", {"action": "stop"}, "C12"),
        ("DELETE", "/api/charge/DEMO", {}, "C12"),
        ("PUT", "/api/charge/DEMO", {"mode": "range"}, "C10,3"),
        ("PUT", "/api/charge/DEMO", {"current": "16"}, "C15,16"),
        ("PUT", "/api/charge/DEMO", {"mode": "storage", "current": "10"}, "C16,1,10"),
        ("PUT", "/api/valet/DEMO", {"pin": "77"}, "C21,77"),
        ("DELETE", "/api/valet/DEMO", {"pin": "77"}, "C23,77"),
        ("PUT", "/api/homelink/DEMO", {"button": "2"}, "C24,2"),
        ("PUT", "/api/features/DEMO", {"feature": "15", "value": "1"}, "C2,15,1"),
        ("PUT", "/api/parameters/DEMO", {"parameter": "4", "value": "a,b"}, "C4,4,a,b"),
    ]
    for method, path, params, expected in cases:
        pending = await start_call(nursery, api, method, path, params={**CREDS, **params})
        number = expected[1:].split(",")[0]
        await answer(car, expected, f"{number},0")
        assert assert_json(await finished(pending))["command"] == int(number)


async def test_list_commands_collect_every_line(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    pending = await start_call(nursery, api, "GET", "/api/features/DEMO", params=CREDS)
    await answer(car, "C1", "1,0,0,3,10", "1,0,1,3,0", "1,0,2,3,5")
    assert assert_json(await finished(pending)) == [
        {"feature": 0, "value": "10"}, {"feature": 1, "value": "0"},
        {"feature": 2, "value": "5"}]
    pending = await start_call(nursery, api, "GET", "/api/parameters/DEMO", params=CREDS)
    await answer(car, "C3", "3,0,0,2,user", "3,0,1,2,x,y")
    assert assert_json(await finished(pending)) == [
        {"parameter": 0, "value": "user"}, {"parameter": 1, "value": "x,y"}]


async def test_generic_command_with_form_body(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    pending = await start_call(nursery, api, "POST", "/api/command/DEMO", params=CREDS,
                               data={"command": "7", "parameters": "stat"})
    await answer(car, "C7,stat", "7,0,Charging, 80%")
    assert assert_json(await finished(pending)) == {
        "command": 7, "result": 0, "lines": ["Charging, 80%"]}
    pending = await start_call(nursery, api, "POST", "/api/command/DEMO", params=CREDS,
                               json={"command": 3})
    await answer(car, "C3", "3,0,0,2,a", "3,0,1,2,b")
    assert assert_json(await finished(pending)) == {
        "command": 3, "result": 0, "lines": ["0,2,a", "1,2,b"]}


async def test_server_commands_need_no_car(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    assert_text(await api.post("/api/command/DEMO", params={**CREDS, "command": "31"}), 422,
                "No historical data available")
    car = await scripted_car(relay)
    await car.send("h", "1,0,T,0,3600,x")
    await car.receive_until("h")
    answer = assert_json(await api.post("/api/command/DEMO", params={**CREDS, "command": "32",
                                                                      "parameters": "T"}))
    assert answer["command"] == 32 and len(answer["lines"]) == 1
    assert answer["lines"][0].startswith("1,1,T,") and answer["lines"][0].endswith(",0,x")


async def test_car_leaving_mid_command_is_409(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    pending = await start_call(nursery, api, "PUT", "/api/lock/DEMO",
                               params={**CREDS, "pin": "1"})
    assert (await car.receive()).text() == "C20,1"
    await car.aclose()
    assert_text(await finished(pending), 409, "Vehicle disconnected before answering")


async def test_answers_go_to_their_senders_in_order(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery
) -> None:
    car = await scripted_car(relay)
    app = await relay.app()
    await pinged(app)
    await sync(car)
    await app.send("C", "18")
    assert (await car.receive()).text() == "C18"
    pending = await start_call(nursery, api, "PUT", "/api/lock/DEMO",
                               params={**CREDS, "pin": "5"})
    assert (await car.receive()).text() == "C20,5"
    await car.send("c", "18,0")
    await car.send("c", "20,0")
    await sync(car)
    assert await pinged(app) == ["c18,0"]
    assert assert_json(await finished(pending))["command"] == 20


async def test_bad_parameters_are_400_and_never_reach_the_car(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    car = await scripted_car(relay)
    cases = [
        ("PUT", "/api/lock/DEMO", {}, "parameter pin is required"),
        ("PUT", "/api/lock/DEMO", {"pin": "1,2"},
         "parameter pin: 1-64 characters, no commas or control characters"),
        ("PUT", "/api/lock/DEMO", {"pin": "1\r\nC5"},
         "parameter pin: 1-64 characters, no commas or control characters"),
        ("PUT", "/api/homelink/DEMO", {"button": "3"},
         "parameter button must be a whole number from 0 to 2"),
        ("PUT", "/api/charge/DEMO", {"mode": "turbo"},
         "parameter mode must be standard, storage, range or performance"),
        ("PUT", "/api/charge/DEMO", {"action": "go"}, "parameter action must be start or stop"),
        ("POST", "/api/command/DEMO", {"command": "x"},
         "parameter command must be a whole number from 0 to 999999"),
        ("POST", "/api/command/DEMO", {"command": "7", "parameters": "a\nb"},
         "parameter parameters: at most 1000 characters, no control characters"),
    ]
    for method, path, params, text in cases:
        assert_text(await api.request(method, path, params={**CREDS, **params}), 400, text)
    assert await sync(car) == []
