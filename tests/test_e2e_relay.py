"""End-to-end: real relay, real sockets, real SQLite file."""

from __future__ import annotations

import trio

from protocol import Message
from tests.conftest import T_NEVER, RelayUnderTest, StartRelay
from tools.v2client import V2Client

S_MSG = (
    "30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,105,,"
    "7.2,12.0,80,7.2,95,1,0,0,0,0,0"
)
D_MSG = "160,8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"
L_MSG = "22.270553,114.186994,90,0,1,1,55,0,0,0,0,0,0,100,AS,12,2,55,100"
W_MSG = "29,27,40,31,29,27,40,31,1"
F_MSG = "1.5.0,VIN123456789012345,5,1,TRDM,DNET,25000,86400,DEMO-HW,Wifi-online"
X_MSG = "0,0,0,3.0,0.0,0.0,,stopped"
Y_MSG = "4,FL,FR,RL,RR,4,200.0,200.0,276.0,276.0,4,27,27,31,31,1,4,100,100,100,100,1,4,1,1,1,1"


def texts(msgs: list[Message]) -> list[str]:
    return [m.text() for m in msgs]


async def car_and_clients(relay: RelayUnderTest, *kinds: str) -> list[V2Client]:
    """DEMO's car, then one client per kind ("app" or "batch"), their logins settled."""
    clients = [await relay.car()]
    for kind in kinds:
        clients.append(await (relay.app() if kind == "app" else relay.batch()))
    for client in clients:
        await client.drain()
    return clients


async def test_car_alone_gets_z0_and_ping_ack(relay: RelayUnderTest) -> None:
    car = await relay.car()
    assert (await car.receive()).text() == "Z0"
    await car.send("A")
    assert (await car.receive()).text() == "a"


async def test_z_sequence_on_every_login_and_logout(relay: RelayUnderTest) -> None:
    car = await relay.car()
    assert texts(await car.drain()) == ["Z0"]
    app1 = await relay.app()
    assert texts(await app1.drain()) == ["Z1", T_NEVER]
    assert texts(await car.drain()) == ["Z1"]
    app2 = await relay.app()
    assert texts(await app2.drain()) == ["Z1", T_NEVER]
    assert texts(await car.drain()) == ["Z2"]
    batch = await relay.batch()
    assert texts(await batch.drain()) == ["Z1", T_NEVER]
    assert texts(await car.drain()) == []  # batch clients are not peers of the car
    await app1.aclose()
    assert texts(await car.drain()) == ["Z1"]
    await car.aclose()
    assert texts(await app2.drain()) == ["Z0"]
    assert texts(await batch.drain()) == ["Z0"]
    car = await relay.car()
    assert texts(await car.drain()) == ["Z1"]
    assert texts(await app2.drain()) == ["Z1"]
    assert texts(await batch.drain()) == ["Z1"]
    await batch.aclose()
    await app2.aclose()
    assert texts(await car.drain()) == ["Z0"]


async def test_app_without_car_gets_z0(relay: RelayUnderTest) -> None:
    app = await relay.app("TESTCAR")
    assert texts(await app.drain()) == ["Z0", T_NEVER]


async def test_live_relay_and_replay_order(relay: RelayUnderTest) -> None:
    car = await relay.car()
    await car.drain()
    app = await relay.app()
    await app.drain()
    for code, data in (("S", S_MSG), ("D", D_MSG), ("L", L_MSG), ("W", W_MSG), ("Y", Y_MSG),
                       ("X", X_MSG), ("F", F_MSG)):
        await car.send(code, data)
    live = texts(await app.drain())
    version = relay.config.server_version
    assert live == [
        "S" + S_MSG, "T0", "D" + D_MSG, "T0", "L" + L_MSG, "T0", "W" + W_MSG, "T0",
        "Y" + Y_MSG, "T0", "X" + X_MSG, "T0", "F" + F_MSG, "f" + version, "T0",
    ]
    later = await relay.app()
    replay = texts(await later.drain())
    assert replay[:8] == ["Z1", "F" + F_MSG, "S" + S_MSG, "D" + D_MSG, "L" + L_MSG,
                          "W" + W_MSG, "X" + X_MSG, "Y" + Y_MSG]
    assert replay[8] in ("T0", "T1") and len(replay) == 9


async def test_replay_survives_restart(start_relay: StartRelay, nursery: trio.Nursery) -> None:
    relay = await start_relay()
    car = await relay.car()
    await car.drain()
    await car.send("S", S_MSG)
    await car.send("A")
    assert (await car.receive()).text() == "a"
    await relay.handle.store.flush()
    rows = relay.sql("SELECT code, data FROM latest WHERE vehicleid='DEMO'")
    assert rows == [("S", S_MSG)]


async def test_command_answered_only_to_its_sender(relay: RelayUnderTest) -> None:
    car, app1, app2 = await car_and_clients(relay, "app", "app")
    await app1.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    await car.send("c", "20,0")
    assert texts(await app1.drain()) == ["c20,0"]
    assert texts(await app2.drain()) == []


async def test_multiline_command_3_goes_to_one_sender(relay: RelayUnderTest) -> None:
    car, app1, app2 = await car_and_clients(relay, "app", "app")
    await app1.send("C", "3")
    await app2.send("C", "1")
    assert texts(await car.drain()) == ["C3", "C1"]
    lines3 = ["3,0,0,3,param0", "3,0,1,3,param1", "3,0,2,3,param2"]
    lines1 = ["1,0,0,2,feat0", "1,0,1,2,feat1"]
    for line in lines3 + lines1:
        await car.send("c", line)
    assert texts(await app1.drain()) == ["c" + x for x in lines3]
    assert texts(await app2.drain()) == ["c" + x for x in lines1]


async def test_unsolicited_answer_goes_to_all_clients(relay: RelayUnderTest) -> None:
    car, app, batch = await car_and_clients(relay, "app", "batch")
    await car.send("c", "5,0")
    assert texts(await app.drain()) == ["c5,0"]
    assert texts(await batch.drain()) == ["c5,0"]


async def test_answer_for_departed_sender_is_discarded(relay: RelayUnderTest) -> None:
    car, app1, app2 = await car_and_clients(relay, "app", "app")
    await app1.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    await app1.aclose()
    assert texts(await car.drain()) == ["Z1"]
    await car.send("c", "20,0")
    assert texts(await app2.drain()) == []


async def test_command_without_car_fails_fast(relay: RelayUnderTest) -> None:
    app = await relay.app()
    await app.drain()
    await app.send("C", "20,1234")
    assert (await app.receive()).text() == "c20,1,Vehicle is not connected"


async def test_h_record_acked_after_commit(relay: RelayUnderTest) -> None:
    car = await relay.car()
    await car.drain()
    await car.send("h", "1,0,*-LOG-Trip,1,86400,trip data")
    await car.send("h", "2,-60,*-LOG-Trip,2,86400,more,data,with,commas")
    assert sorted(texts(await car.drain())) == ["h1", "h2"]
    rows = relay.sql("SELECT htype, recordnumber, data, expires - ts FROM historical "
                     "ORDER BY recordnumber")
    assert rows == [("*-LOG-Trip", 1, "trip data", 86400),
                    ("*-LOG-Trip", 2, "more,data,with,commas", 86400)]


async def test_server_commands_31_32(relay: RelayUnderTest) -> None:
    car = await relay.car()
    await car.drain()
    app = await relay.app()
    await app.drain()
    assert texts(await car.drain()) == ["Z1"]
    await app.send("C", "31")
    assert texts(await app.drain()) == ["c31,1,No historical data available"]
    await app.send("C", "32,*-LOG-Trip")
    assert texts(await app.drain()) == ["c32,1,No historical data available"]
    await car.send("H", "*-LOG-Trip,7,3600,first")
    await car.send("h", "9,0,*-LOG-Trip,8,3600,second")
    await car.send("h", "10,0,*-LOG-Batt,1,3600,cells")
    assert sorted(texts(await car.drain())) == ["h10", "h9"]
    assert texts(await car.drain()) == []  # server commands never reach the car
    await app.send("C", "31")
    summary = texts(await app.drain())
    assert len(summary) == 2
    # Issue 10 item 3: k runs from 1 to n, as the public server numbers them.
    assert summary[0].startswith("c31,0,1,2,*-LOG-Batt,1,1,5,")
    assert summary[1].startswith("c31,0,2,2,*-LOG-Trip,2,2,11,")
    await app.send("C", "32,*-LOG-Trip")
    records = texts(await app.drain())
    assert [r.split(",")[:4] for r in records] == [["c32", "0", "1", "2"], ["c32", "0", "2", "2"]]
    assert [r.split(",", 6)[6] for r in records] in (["7,first", "8,second"],)
    await app.send("C", "32,*-LOG-Trip,2999-01-01 00:00:00")
    assert texts(await app.drain()) == ["c32,1,No historical data available"]


async def test_usage_command_30(relay: RelayUnderTest) -> None:
    app = await relay.app("TESTCAR")
    await app.drain()
    await app.send("C", "30")
    reply = texts(await app.drain())
    assert len(reply) == 1 and reply[0].startswith("c30,0,1,1,")
    fields = reply[0].split(",")
    car_rx, car_tx, app_rx, app_tx = map(int, fields[5:9])
    assert car_rx == car_tx == 0
    assert app_rx > 0 and app_tx > 0


async def test_paranoid_messages(relay: RelayUnderTest) -> None:
    car, app = await car_and_clients(relay, "app")
    await car.send("E", "Ttoken1")
    await car.send("E", "MSsecretstatus")
    assert texts(await app.drain()) == ["ETtoken1", "EMSsecretstatus", "T0"]
    later = await relay.app()
    assert texts(await later.drain())[:2] == ["Z1", "EMSsecretstatus"]
    await car.send("E", "Ttoken2")  # a new token invalidates the stored paranoid messages
    await app.drain()
    fresh = await relay.app()
    assert [m for m in texts(await fresh.drain()) if m.startswith("E")] == []
    await app.send("E", "Mfromapp")
    assert "EMfromapp" in texts(await car.drain())


async def test_groups(relay: RelayUnderTest) -> None:
    car = await relay.car()
    await car.drain()
    await car.send("g", "fleet,22.1,114.2")
    await car.send("A")
    await car.receive_until("a")
    app = await relay.app("TESTCAR")
    await app.drain()
    await app.send("G", "fleet")
    assert texts(await app.drain()) == ["gDEMO,fleet,22.1,114.2"]
    await car.send("g", "fleet,22.3,114.4")
    assert texts(await app.drain()) == ["gDEMO,fleet,22.3,114.4"]


async def test_push_subscription_stored(relay: RelayUnderTest) -> None:
    app = await relay.app()
    await app.drain()
    await app.send("p", "app1,ntfy,production,DEMO,DEMO,https://ntfy.example/topic")
    await app.send("p", "app2,ntfy,production,DEMO,WRONG,https://ntfy.example/other")
    await app.send("A")
    await app.receive_until("a")
    subs = await relay.handle.store.push_subscriptions("DEMO")
    assert [(s.appid, s.pushkeyvalue) for s in subs] == [("app1", "https://ntfy.example/topic")]


async def test_push_notification_relayed(relay: RelayUnderTest) -> None:
    car, app = await car_and_clients(relay, "app")
    await car.send("P", "ACharging stopped")
    assert texts(await app.drain()) == ["PACharging stopped"]


async def test_duplicate_car_login_closes_the_first(relay: RelayUnderTest) -> None:
    car1 = await relay.car()
    app = await relay.app()
    await car1.drain()
    await app.drain()
    car2 = await relay.car()
    assert await car1.closed_by_server(5)
    assert texts(await car2.drain()) == ["Z1"]
    msgs = texts(await app.drain())
    assert msgs and set(msgs) <= {"Z1"}  # never a Z0 in between
    await car2.send("S", S_MSG)
    assert texts(await app.drain()) == ["S" + S_MSG, "T0"]


async def test_unknown_code_stored_and_relayed(relay: RelayUnderTest) -> None:
    car, app = await car_and_clients(relay, "app")
    await car.send("Q", "something,new")
    assert texts(await app.drain()) == ["Qsomething,new", "T0"]
