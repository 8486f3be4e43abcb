"""ovms-car against the real relay over real sockets (intervals shortened for tests)."""

from __future__ import annotations

import trio

from tests.conftest import RelayUnderTest
from tests.pg_server import writes_blocked
from tools import simulation as sim
from tools.car import CarConfig, CarError, SimCar, run, vehicle_ids


def make_car(relay: RelayUnderTest, **overrides: object) -> SimCar:
    config = CarConfig(host="127.0.0.1", port=relay.handle.v2_port, vehicleid="DEMO",
                       carpass="DEMO", idle_interval=30.0, connected_interval=0.1,
                       ack_timeout=0.2, reconnect_delay=0.1)
    for name, value in overrides.items():
        setattr(config, name, value)
    return SimCar(config)


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(0.01)


async def test_login_full_set_and_interval_follows_z(
    relay: RelayUnderTest, nursery: trio.Nursery
) -> None:
    car = make_car(relay)
    await nursery.start(car.run)
    await wait_for(lambda: car.stats.reports == 1)  # the full set right after login
    assert car.peers == 0 and car.interval == 30.0
    app = await relay.app()
    # The app gets the stored set (replay, ending in T), then the car, seeing Z1, sends
    # a full set at once and then reports every 0.1 s.
    replay = await app.receive_until("T")
    assert replay[0].code == "Z"
    codes = [m.code for m in await app.receive_until("V")]
    assert [c for c in codes if c not in "Tf"] == ["S", "D", "L", "W", "Y", "F", "V"]
    await wait_for(lambda: car.peers == 1)
    assert car.interval == 0.1
    reports = car.stats.reports
    await wait_for(lambda: car.stats.reports >= reports + 3)
    await app.aclose()
    await wait_for(lambda: car.peers == 0)
    assert car.interval == 30.0
    quiet_from = car.stats.reports
    await trio.sleep(0.5)
    assert car.stats.reports <= quiet_from + 1  # back to the idle interval


async def test_answers_lock_command(relay: RelayUnderTest, nursery: trio.Nursery) -> None:
    car = make_car(relay, connected_interval=30.0)
    car.state = sim.new_vehicle(0)
    car.state = sim.handle_command(car.state, 22, []).state  # start unlocked
    await nursery.start(car.run)
    app = await relay.app()
    await app.drain()
    await app.send("C", "20,1234")
    answer = [m.text() for m in await app.receive_until("c")]
    assert answer[-1] == "c20,0"
    assert car.state.locked
    await app.send("C", "22,1234")
    assert (await app.receive_until("c"))[-1].text() == "c22,0"
    assert not car.state.locked
    await app.send("C", "25")
    assert (await app.receive_until("c"))[-1].text() == "c25,2,Unsupported command"


async def test_multiline_feature_list(relay: RelayUnderTest, nursery: trio.Nursery) -> None:
    car = make_car(relay, connected_interval=30.0)
    await nursery.start(car.run)
    app = await relay.app()
    await app.drain()
    await app.send("C", "1")
    lines = [m.text() for m in await app.drain(0.5) if m.code == "c"]
    assert lines == [f"c1,0,{k},16,0" for k in range(16)]


async def test_unacked_record_is_resent(relay: RelayUnderTest, nursery: trio.Nursery) -> None:
    car = make_car(relay)
    await nursery.start(car.run)
    await wait_for(lambda: car.stats.reports == 1)
    # Hold the database's write lock: the relay cannot commit, so it cannot ack.
    with writes_blocked(relay.db):
        record = car.make_record("*-LOG-Test", "payload,with,commas")
        await car.send_record(record)
        await wait_for(lambda: car.stats.records_resent >= 1)
        assert len(car.unacked) == 1
    await wait_for(lambda: not car.unacked)
    assert car.stats.records_acked == 1
    await relay.handle.store.flush()
    rows = relay.sql("SELECT recordnumber, data FROM historical WHERE htype='*-LOG-Test'")
    assert set(rows) == {(record.number, "payload,with,commas")}


async def test_reboot_command_reconnects(relay: RelayUnderTest, nursery: trio.Nursery) -> None:
    car = make_car(relay, connected_interval=30.0)
    await nursery.start(car.run)
    app = await relay.app()
    await app.drain()
    await app.send("C", "5")
    assert (await app.receive_until("c"))[-1].text() == "c5,0"
    await wait_for(lambda: car.stats.logins == 2)
    assert car.state.reboots == 1


async def test_wrong_carpass_is_an_error(relay: RelayUnderTest) -> None:
    car = make_car(relay, carpass="WRONG")
    try:
        await car.run()
    except CarError as exc:
        assert "login refused" in str(exc)
    else:
        raise AssertionError("expected CarError")


async def test_many_cars_from_one_process(relay: RelayUnderTest, nursery: trio.Nursery) -> None:
    limiter = trio.CapacityLimiter(4)
    cars = [SimCar(CarConfig(host="127.0.0.1", port=relay.handle.v2_port, vehicleid=vid,
                             carpass=carpass, idle_interval=30.0), index=i,
                   login_limiter=limiter)
            for i, (vid, carpass) in enumerate([("DEMO", "DEMO"), ("TESTCAR", "NETPASS")])]
    for car in cars:
        await nursery.start(car.run)
    await wait_for(lambda: all(c.stats.reports == 1 for c in cars))
    app = await relay.app("TESTCAR")
    msgs = await app.receive_until("V")
    firmware = next(m for m in msgs if m.code == "F")
    assert "SIMVIN00000000001" in firmware.data  # car index 1 is its own vehicle


def test_vehicle_id_patterns() -> None:
    assert vehicle_ids("DEMO", 1) == ["DEMO"]
    assert vehicle_ids("SIM", 3, first=8) == ["SIM0008", "SIM0009", "SIM0010"]
    assert vehicle_ids("CAR{n:02d}", 2) == ["CAR00", "CAR01"]


def test_cli_usage_errors(capsys) -> None:  # type: ignore[no-untyped-def]
    assert run(["--vehicle", "DEMO"]) == 2
    assert "give --carpass" in capsys.readouterr().err
    assert run(["--carpass", "x"]) == 2
    assert run(["--vehicle", "DEMO", "--carpass", "x", "--cars", "0"]) == 2
