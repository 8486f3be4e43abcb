"""Issue 10 items 3 to 6: server commands, ``P`` from clients, ``T`` at login, a car's bad ``c``."""

from __future__ import annotations

import io
import logging
import time

import pytest
import trio

from protocol import Message
from relay.push.dispatcher import HISTORY_TYPE
from tests.conftest import T_NEVER, RelayUnderTest
from tests.raw_v2 import RawScheme0
from tools.app_client import Printer, run_command


def texts(msgs: list[Message]) -> list[str]:
    return [m.text() for m in msgs]


async def test_server_commands_count_k_from_1_to_n(relay: RelayUnderTest) -> None:
    """Issue 10 item 3: ``c32,0,1,3,...`` .. ``c32,0,3,3,...``, as the public server sends
    (an app that stops at k == n saw one record less before)."""
    car = await relay.car()
    await car.drain()
    for n in (1, 2, 3):
        await car.send("h", f"{n},-{60 * (4 - n)},T,{n},86400,rec{n}")
    await car.send("h", "9,0,U,1,86400,other")
    assert sorted(texts(await car.drain())) == ["h1", "h2", "h3", "h9"]
    app = await relay.app()
    await app.drain()
    await app.send("C", "32,T")
    lines = texts(await app.drain())
    assert [line.split(",")[:4] for line in lines] == [
        ["c32", "0", str(k), "3"] for k in (1, 2, 3)]
    assert [line.rsplit(",", 1)[1] for line in lines] == ["rec1", "rec2", "rec3"]
    await app.send("C", "31")
    assert [line.split(",")[:5] for line in texts(await app.drain())] == [
        ["c31", "0", "1", "2", "T"], ["c31", "0", "2", "2", "U"]]
    await app.send("C", "30")
    usage = texts(await app.drain())
    assert len(usage) == 1 and usage[0].startswith("c30,0,1,1,")


async def test_ovms_app_reads_every_record_up_to_k_equal_n(relay: RelayUnderTest) -> None:
    """Issue 10 item 3: the project's own app client (``ovms-app --command 32,T``)."""
    car = await relay.car()
    await car.drain()
    for n in (1, 2):
        await car.send("h", f"{n},-{60 * (3 - n)},T,{n},86400,rec{n}")
    await car.receive_until("h")
    await car.receive_until("h")
    app = await relay.app()
    await app.drain()
    out = io.StringIO()
    assert await run_command(app, "32,T", Printer(out), timeout=10) == 0
    printed = out.getvalue().splitlines()
    assert len(printed) == 2
    assert "1,2,T," in printed[0] and printed[0].endswith(",1,rec1")
    assert "2,2,T," in printed[1] and printed[1].endswith(",2,rec2")


async def test_notify_script_p_reaches_apps_and_push(relay: RelayUnderTest) -> None:
    """Issue 10 item 4: the official notify script logs in as a batch client (unpadded
    digest) and sends ``P``: the vehicle's apps get it and it goes to push delivery."""
    app = await relay.app()
    await app.receive_until("T")  # the login's messages end with the update age
    notify = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO", "B", padded=False)
    await notify.receive_until("T")
    await notify.send_text("PAHello from cron")
    assert texts(await app.receive_until("P")) == ["PAHello from cron"]
    assert await notify.drain() == []  # the sender gets no echo
    store = relay.handle.store
    with trio.fail_after(10):
        while not await store.historical_records("DEMO", HISTORY_TYPE):
            await trio.sleep(0.02)
    records = await store.historical_records("DEMO", HISTORY_TYPE)
    assert [r.data for r in records] == ["A,Hello from cron"]


async def test_p_from_an_app_reaches_the_other_apps(relay: RelayUnderTest) -> None:
    """Issue 10 item 4: from an app as from a batch client; never to the car."""
    car = await relay.car()
    await car.drain()
    first, second = await relay.app(), await relay.app()
    await first.drain()
    await second.drain()
    await car.drain()
    await first.send("P", "IDoor left open")
    assert texts(await second.receive_until("P")) == ["PIDoor left open"]
    assert texts(await car.drain()) == []
    assert texts(await first.drain()) == []


async def test_t_for_a_vehicle_without_stored_messages(relay: RelayUnderTest) -> None:
    """Issue 10 item 5: an app login still gets ``T``; with nothing stored, the public
    server's value for "never": 3020399 (MySQL's TIMEDIFF stops at 838:59:59)."""
    app = await relay.app("TESTCAR")
    assert texts(await app.receive_until("T")) == ["Z0", T_NEVER]
    batch = await relay.batch("TESTCAR")
    assert texts(await batch.receive_until("T")) == ["Z0", T_NEVER]


async def test_t_is_capped_as_on_the_public_server(relay: RelayUnderTest) -> None:
    await relay.handle.store.put_latest("TESTCAR", "S", "50,K", when=time.time() - 40 * 86400)
    app = await relay.app("TESTCAR")
    assert texts(await app.receive_until("T")) == ["Z0", "S50,K", T_NEVER]


@pytest.mark.parametrize("bad", ["", "abc", "x,0", "20,x", "²,0", "1" * 5000, "20,-1"])
async def test_malformed_car_answer_is_ignored_not_fatal(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture, bad: str
) -> None:
    """Issue 10 item 6: logged and ignored; the car keeps its connection and the
    waiting app gets the real answer."""
    car = await relay.car()
    await car.drain()
    app = await relay.app()
    await app.drain()
    await car.drain()
    await app.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    with caplog.at_level(logging.INFO, logger="relay.router"):
        await car.send("c", bad)
        await car.send("A")
        assert (await car.receive()).text() == "a"
    assert "malformed command answer ignored" in caplog.text
    await car.send("c", "20,0")
    assert texts(await app.receive_until("c")) == ["c20,0"]
