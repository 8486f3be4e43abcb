"""Issue 9 defect 2: a CR or LF inside a message must never become extra lines.

A car's decrypted message may hold CR/LF. Relayed raw to plain (scheme 1) or
WebSocket apps, ``gFLEET,x\\r\\nS99,...\\r\\nc20,0,...`` from one owner's car gave
another owner's app a fake status and a fake "lock succeeded". Now the session
refuses such a message at decode (the relay logs and drops it, an ``h`` in it is
not acked, the connection goes on) and refuses to encode one.
"""

from __future__ import annotations

import logging

import pytest
import trio

from protocol import (
    NEED_DATA,
    ClientSession,
    ClientType,
    LocalProtocolError,
    Message,
    RefusedMessage,
    RemoteProtocolError,
    ServerSession,
)
from tests.conftest import RelayUnderTest, StartRelay
from tests.protocol_helpers import established_pair
from tests.raw_v2 import RawScheme0
from tests.settle import pinged, settle
from tools.v2client import V2Client

FORGED = "FLEET,x\r\nS99,K,0,0,done\r\nc20,0,forged lock ok"


async def plain_app(relay: RelayUnderTest, username: str, password: str) -> V2Client:
    app = await relay.connect("*", ClientType.APP, username=username, password=password)
    await pinged(app)
    return app


def texts(msgs: list[Message]) -> list[str]:
    return [m.text() for m in msgs]


async def test_group_data_cannot_forge_lines_in_another_owners_app(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 2: bob's car, alice's plain (scheme 1) app in the same group."""
    relay: RelayUnderTest = await start_relay(allow_plain_login=True)
    alice = await plain_app(relay, "demo", "demopass")  # vehicle DEMO, owner demo
    await alice.send("G", "FLEET")
    await pinged(alice)
    bob_car = await RawScheme0.login(relay.handle.v2_port, "OTHERCAR", "OTHERPASS")
    await pinged(bob_car)
    with caplog.at_level(logging.WARNING, logger="relay.v2"):
        await bob_car.send_text("g" + FORGED)
        await bob_car.send_text("gFLEET,honest data")
        got = texts(await alice.receive_until("g"))
    # Only the honest update arrives; nothing the forged one carried.
    assert got == ["gOTHERCAR,FLEET,honest data"]
    # Dropped, not disconnected: the car still talks (its ping is answered).
    assert await settle(bob_car, alice) == [[], []]
    assert "message 'g' dropped: message holds a CR or LF" in caplog.text


async def test_car_cannot_spoof_z_t_c_to_its_own_apps(start_relay: StartRelay) -> None:
    """Issue 9 defect 2: the same path let a car fake Z, T and c lines to its apps."""
    relay: RelayUnderTest = await start_relay(allow_plain_login=True)
    car = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO")
    await pinged(car)
    app = await plain_app(relay, "demo", "demopass")
    assert await pinged(car) == ["Z1"]
    for spoof in ("S80,K\r\nZ0", "S80,K\nT99999", "S80,K\rc20,0", "X\r\nc20,0,ok", "\r", "P\n"):
        await car.send_text(spoof)
    await car.send_text("S81,K")
    assert texts(await app.receive_until("T")) == ["S81,K", "T0"]
    assert (await settle(car, app))[1] == []
    # Nothing of the refused messages was stored for later app logins either.
    latest = await relay.handle.store.latest("DEMO")
    assert {code: m.data for code, m in latest.items()} == {"S": "81,K"}


async def test_h_record_with_a_line_break_is_not_acked(relay: RelayUnderTest) -> None:
    """Issue 9 defect 2: refused at decode, so not stored and not acknowledged."""
    car = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO")
    await pinged(car)
    await car.send_text("h7,0,*-LOG-Trip,1,86400,trip\r\nc20,0")
    await car.send_text("h8,0,*-LOG-Trip,2,86400,clean")
    assert await car.receive_text() == "h8"  # acked once committed
    assert await pinged(car) == []
    records = await relay.handle.store.historical_records("DEMO", "*-LOG-Trip")
    assert [r.data for r in records] == ["clean"]


async def test_app_messages_with_line_breaks_are_dropped(start_relay: StartRelay) -> None:
    """Issue 9 defect 2: from an app too (a bare CR survives plain line splitting)."""
    relay: RelayUnderTest = await start_relay(allow_plain_login=True)
    car = await relay.car()
    await pinged(car)
    app = await plain_app(relay, "demo", "demopass")
    await pinged(car)
    await app.stream.send_all(b"C20,1\rC22,1\r\nGFLE\rET\r\nC20,2\r\n")
    assert (await settle(app, car))[1] == ["C20,2"]


# --------------------------------------------------------------------------- sans-IO


def established(scheme0: bool) -> tuple[ClientSession, ServerSession]:
    return established_pair(scheme0)


@pytest.mark.parametrize("scheme0", [True, False])
@pytest.mark.parametrize(
    "msg",
    [
        Message("g", FORGED), Message("S", "1\r"), Message("S", "\n"), Message("\r", "x"),
        Message("\n"), Message(""), Message("SS", "1"), Message("", "S1"),
    ],
)
def test_encoder_refuses_line_breaks_and_bad_codes(scheme0: bool, msg: Message) -> None:
    """Issue 9 defect 2: as h11 on send: LocalProtocolError, and nothing encoded."""
    client, server = established(scheme0)
    with pytest.raises(LocalProtocolError):
        server.send(msg)
    with pytest.raises(LocalProtocolError):
        client.send(msg)
    # send_many checks every message before encoding any: scheme 0's cipher must not
    # advance for bytes that are then thrown away.
    with pytest.raises(LocalProtocolError):
        server.send_many([Message("Z", "1"), msg])
    client.receive_data(server.send(Message("Z", "2")))
    assert client.next_event() == Message("Z", "2")


def test_decoder_refuses_line_breaks_and_goes_on() -> None:
    """Issue 9 defect 2: a RefusedMessage event; the session stays usable."""
    client, server = established(scheme0=False)
    server.receive_data(b"S1\rS2\r\nS3\r\n")
    event = server.next_event()
    assert isinstance(event, RefusedMessage) and event.code == "S"
    assert "CR or LF" in event.reason
    assert server.next_event() == Message("S", "3")
    assert server.next_event() is NEED_DATA
    # The client side (tools) refuses the same.
    client.receive_data(b"Z1\rZ0\r\nZ1\r\n")
    assert isinstance(client.next_event(), RefusedMessage)
    assert client.next_event() == Message("Z", "1")


def test_welcome_with_a_cr_is_refused() -> None:
    server = ServerSession()
    server.receive_data(b"MP-A 1 alice pw DEMO\rZ1\r\n")
    with pytest.raises(RemoteProtocolError, match="CR or LF"):
        server.next_event()
    client = ClientSession(ClientType.APP, "DEMO\r\nZ1", username="alice", password="pw")
    with pytest.raises(LocalProtocolError):
        client.welcome()


def test_provisioning_fields_cannot_break_the_line() -> None:
    server = ServerSession()
    server.receive_data(b"AP-C 0 KEY\r\n")
    server.next_event()
    with pytest.raises(LocalProtocolError):
        server.answer_provision(("stoken", "digest\r\nMP-S", "payload"))


async def test_unencodable_stored_message_is_skipped_not_fatal(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 2: data stored before the input check (a CR in a stored message)
    is left out of an app's replay; the app keeps its connection."""
    await relay.handle.store.put_latest("DEMO", "W", "1,2\r\nZ1")
    await relay.handle.store.put_latest("DEMO", "S", "55,K")
    with caplog.at_level(logging.WARNING, logger="relay.v2"):
        app = await relay.app()
        got = texts(await app.receive_until("T"))
    assert got[:2] == ["Z0", "S55,K"] and got[2] in ("T0", "T1")
    assert "message 'W' not sent" in caplog.text
    await app.send("A")
    assert (await app.receive()).text() == "a"
    with trio.fail_after(5):
        await app.aclose()
