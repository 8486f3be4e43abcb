"""ovms-app against a relay, with a simulated car.

The relay runs in the test's own trio loop (tests.conftest); so does ovms-app's
session, except in one test that runs the command as a shell would, as a
subprocess (exit codes and error messages).
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from collections.abc import AsyncIterator

import attrs
import pytest
import trio

from protocol import CommandResponse, Message
from tests.conftest import RelayUnderTest, StartRelay
from tools import app_client
from tools.app_client import AppError, as_json, describe, fields_of, is_last_answer, parse_args
from tools.car import CarConfig, SimCar

S_MSG = ("30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,"
         "105,,7.2,12.0,80,7.2,95,1,0,0,0,0,0")


@pytest.fixture
async def relay_under_test(start_relay: StartRelay) -> AsyncIterator[RelayUnderTest]:
    yield await start_relay()


@pytest.fixture
def server(relay_under_test: RelayUnderTest) -> int:
    return relay_under_test.handle.v2_port


@attrs.frozen
class Result:
    """What a finished ovms-app left: as subprocess.CompletedProcess has it."""

    returncode: int
    stdout: bytes
    stderr: bytes


async def app(port: int, *args: str) -> Result:
    """ovms-app in process: its session in the test's loop, its output captured."""
    parsed = parse_args(["--port", str(port), *args])
    out = io.StringIO()
    code = await app_client.session(parsed, app_client.Printer(out, json=parsed.json))
    return Result(code, out.getvalue().encode(), b"")


async def app_process(port: int, *args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [sys.executable, "-m", "tools.app_client", "--port", str(port), *args],
        capture_stdout=True, capture_stderr=True, check=False)


async def start_car(port: int, nursery: trio.Nursery) -> SimCar:
    car = SimCar(CarConfig(host="127.0.0.1", port=port, vehicleid="DEMO", carpass="DEMO",
                           idle_interval=30.0, connected_interval=30.0))
    await nursery.start(car.run)
    return car


async def test_prints_decoded_messages(server: int, nursery: trio.Nursery) -> None:
    await start_car(server, nursery)
    result = await app(server, "--vehicle", "DEMO", "--carpass", "DEMO", "--count", "6")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 6
    assert lines[0] == "Z  car connected"
    assert lines[1].startswith("F  firmware: 3.3.004-sim, VIN SIMVIN00000000000")
    assert lines[2].startswith("S  status: SOC ")


async def test_json_lines(server: int, nursery: trio.Nursery) -> None:
    await start_car(server, nursery)
    result = await app(server, "--vehicle", "DEMO", "--carpass", "DEMO", "--count", "4",
                       "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [r["code"] for r in records] == ["Z", "F", "S", "D"]
    assert records[0]["fields"] == {"count": 1}
    assert records[2]["kind"] == "status" and records[2]["fields"]["units"] == "K"


async def test_command_and_exit_codes(server: int, nursery: trio.Nursery) -> None:
    car = await start_car(server, nursery)
    base = ["--vehicle", "DEMO", "--carpass", "DEMO"]
    result = await app(server, *base, "--command", "22,1234")
    assert result.returncode == 0
    assert result.stdout.decode() == "c  command 22 (unlock): ok\n"
    assert not car.state.locked
    assert (await app(server, *base, "--command", "15,99")).returncode == 3
    assert (await app(server, *base, "--command", "25")).returncode == 4
    result = await app(server, *base, "--command", "1", "--json")
    assert [json.loads(x)["fields"]["rest"][0] for x in result.stdout.decode().splitlines()] \
        == [str(k) for k in range(16)]


async def test_connection_and_usage_errors(server: int,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # As a subprocess once: the command's exit code and message as a shell sees them.
    result = await app_process(server, "--vehicle", "DEMO", "--carpass", "WRONG",
                               "--count", "1")
    assert result.returncode == 1
    assert result.stderr.decode().strip() == "ovms-app: error: login refused for vehicle DEMO"

    # The rest in process. No car: the relay answers the command itself (result 1).
    result = await app(server, "--vehicle", "DEMO", "--carpass", "DEMO", "--command", "20")
    assert result.returncode == 3
    assert "Vehicle is not connected" in result.stdout.decode()
    # A usage error ends before any connection.
    assert app_client.run(["--port", str(server), "--vehicle", "DEMO"]) == 2
    assert capsys.readouterr().err.startswith("ovms-app: error:")
    # A port bound but not listening refuses (a fixed low port may be some test's relay):
    # the AppError that run() reports as above (exit 1).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        with pytest.raises(AppError, match="cannot connect"):
            await app(closed.getsockname()[1], "--vehicle", "DEMO", "--carpass", "DEMO")


async def test_push_and_group_subscriptions(
    server: int, nursery: trio.Nursery, relay_under_test: RelayUnderTest
) -> None:
    car = await start_car(server, nursery)
    results: list[Result] = []

    async def watch() -> None:
        results.append(await app(server, "--vehicle", "TESTCAR", "--carpass", "NETPASS",
                                 "--group", "fleet", "--push",
                                 "app1,ntfy,production,https://ntfy.example/t",
                                 "--duration", "2.5"))

    async with trio.open_nursery() as inner:
        inner.start_soon(watch)
        await trio.sleep(1.5)
        await car._send([Message("g", "fleet,22.28,114.16")])
    assert results[0].returncode == 0, results[0].stderr
    assert "g  group fleet: DEMO 22.28,114.16" in results[0].stdout.decode().splitlines()
    rows = relay_under_test.sql("SELECT appid, vehicleid FROM push_subscriptions")
    assert rows == [("app1", "TESTCAR")]


def test_decoding() -> None:
    s = Message("S", S_MSG)
    assert describe(s).startswith("S  status: SOC 30%, ideal range 105 km, estimated 85 km")
    assert fields_of(s)["soc"] == "30" and fields_of(s)["chargestate"] == "done"
    assert describe(Message("Z", "0")) == "Z  car not connected"
    assert describe(Message("T", "5")) == "T  last car message 5 s ago"
    assert describe(Message("c", "20,1,Bad pin")) == "c  command 20 (lock): failed: Bad pin"
    assert describe(Message("P", "ACharging stopped")) == \
        "P  push notification (A): Charging stopped"
    assert describe(Message("Q", "future,code")) == "Q  future,code"
    record = json.loads(as_json(Message("Y", "4,FL,FR,RL,RR,4,200,200,276,276,1")))
    assert record["fields"]["wheels"] == ["FL", "FR", "RL", "RR"]
    assert record["fields"]["pressure"] == ["200", "200", "276", "276"]
    # Issue 10 item 3: the server's answers count k from 1 to n; the car's lists from 0.
    assert not is_last_answer(CommandResponse.parse("31,0,1,2,x"))
    assert is_last_answer(CommandResponse.parse("31,0,2,2,x"))
    assert not is_last_answer(CommandResponse.parse("32,0,1,2,x"))
    assert is_last_answer(CommandResponse.parse("32,0,2,2,x"))
    assert is_last_answer(CommandResponse.parse("30,0,1,1,x"))
    assert not is_last_answer(CommandResponse.parse("1,0,0,2,x"))
    assert is_last_answer(CommandResponse.parse("1,0,1,2,x"))
    assert is_last_answer(CommandResponse.parse("20,0"))


def test_tls_defaults_to_the_tls_port() -> None:
    """Issue 10 item 16: ``--tls`` (or --cafile/--insecure) means port 6870 unless --port."""
    login = ["--vehicle", "DEMO", "--carpass", "DEMO"]
    assert parse_args(login).port == 6867
    assert parse_args([*login, "--tls"]).port == 6870
    assert parse_args([*login, "--insecure"]).port == 6870
    assert parse_args([*login, "--tls", "--port", "7000"]).port == 7000


async def test_push_alone_exits_once_the_server_handled_it(
    server: int, relay_under_test: RelayUnderTest
) -> None:
    """Issue 10 item 16: ``ovms-app --push`` subscribes and exits (it used to watch
    until interrupted); the subscription is stored by then."""
    with trio.fail_after(20):  # a guard against the old endless watch, not a timing check
        result = await app(server, "--vehicle", "TESTCAR", "--carpass", "NETPASS", "--push",
                           "app2,ntfy,production,https://ntfy.example/t")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "p  push subscription app2 (ntfy) handled by the server "
        "(stored unless the vehicle password is wrong)"]
    await relay_under_test.handle.store.flush()
    rows = relay_under_test.sql("SELECT appid, vehicleid FROM push_subscriptions")
    assert rows == [("app2", "TESTCAR")]
