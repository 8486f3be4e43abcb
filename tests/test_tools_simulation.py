"""The vehicle model behind ovms-car: pure, so every property is a direct check."""

from __future__ import annotations

import itertools

import attrs
import pytest

from protocol import TPMS, Doors, Location, NewTPMS, Status
from tools import simulation as sim


def day(index: int = 0, steps: int = 48 * 6, dt: float = 600.0):
    """(state, records completed in that step) for each 10-minute step of two days."""
    state = sim.new_vehicle(index)
    out = []
    for _ in range(steps):
        state, records = sim.step(state, dt)
        out.append((state, records))
    return out


def test_route_geometry() -> None:
    route = sim.Route()
    assert 5.0 < route.length_km < 15.0
    assert route.position(0.0)[:2] == sim.DEFAULT_ROUTE[0]
    # Positions wrap around the loop.
    assert route.position(route.length_km + 1.0) == pytest.approx(route.position(1.0))
    assert sim.distance_km((0.0, 0.0), (0.0, 1.0)) == pytest.approx(111.19, rel=1e-3)
    assert sim.bearing_deg((0.0, 0.0), (1.0, 0.0)) == pytest.approx(0.0)
    assert sim.bearing_deg((0.0, 0.0), (0.0, 1.0)) == pytest.approx(90.0)
    with pytest.raises(ValueError):
        sim.Route(((1.0, 1.0),))


def test_the_car_drives_charges_and_drives_again() -> None:
    states = [s for s, _ in day()]
    modes = {s.mode for s in states}
    assert modes == {sim.Mode.PARKED, sim.Mode.DRIVING, sim.Mode.CHARGING}
    for before, after in itertools.pairwise(states):
        if before.mode is after.mode is sim.Mode.DRIVING:
            assert after.soc < before.soc
            assert after.odometer_km > before.odometer_km
            assert (after.latitude, after.longitude) != (before.latitude, before.longitude)
        if before.mode is after.mode is sim.Mode.CHARGING:
            assert after.soc > before.soc
            assert (after.latitude, after.longitude) == (before.latitude, before.longitude)
        assert after.odometer_km >= before.odometer_km
        assert 0.0 <= after.soc <= 100.0


def test_trips_and_charges_are_logged() -> None:
    records = [r for _, rs in day() for r in rs]
    types = {r.rtype for r in records}
    assert types == {"*-LOG-Trip", "*-LOG-Charge"}
    numbers = [r.number for r in records]
    assert numbers == sorted(set(numbers))  # unique and increasing


@pytest.mark.parametrize("index", [0, 1, 7])
def test_messages_agree_with_each_other(index: int) -> None:
    for state, _ in day(index, steps=48 * 3):
        s = Status.from_message(sim.status(state))
        d = Doors.from_message(sim.doors(state))
        loc = Location.from_message(sim.location(state))
        w = TPMS.from_message(sim.tpms_old(state))
        y = NewTPMS.from_message(sim.tpms_new(state))
        doors1 = int(d.doors1 or 0)
        doors2 = int(d.doors2 or 0)
        charging = s.chargestate == "charging"
        assert bool(doors1 & 16) == charging == state.charging  # b4 charging
        assert bool(doors1 & 4) == charging  # b2 charge port open
        assert bool(doors1 & 128) == state.driving  # b7 car on
        assert bool(doors2 & 8) == state.locked == (d.lockunlock == "4")
        assert d.speed == loc.speed == loc.gpsspeed
        assert d.tripmeter == loc.tripmeter
        assert float(s.chargecurrent or 0) > 0 if charging else s.chargecurrent == "0"
        assert float(s.estimatedrange or 0) <= float(s.idealrange or 0)
        assert y.names == ("FL", "FR", "RL", "RR")
        psi = {"FL": w.fl_pressure, "FR": w.fr_pressure, "RL": w.rl_pressure,
               "RR": w.rr_pressure}
        for name, kpa in zip(y.names, y.pressure.values, strict=True):
            assert float(kpa) / sim.KPA_PER_PSI == pytest.approx(float(psi[name] or 0), abs=0.6)


def test_full_set_is_every_code_once() -> None:
    msgs = sim.messages(sim.new_vehicle(0))
    assert [m.code for m in msgs] == ["S", "D", "L", "W", "Y", "F", "V"]
    assert msgs[-1].data == sim.CAPABILITIES


def test_historical_message_keeps_the_record_time() -> None:
    record = sim.HistoricalRecord("*-LOG-Trip", 7, "12.5,80,75,900,1000", sim_time=100.0)
    msg = sim.historical(42, record, now=160.0)
    assert msg.code == "h"
    assert msg.data == f"42,-60,*-LOG-Trip,7,{sim.RECORD_LIFETIME_S},12.5,80,75,900,1000"


def run(state: sim.VehicleState, number: int, *params: str) -> sim.CommandResult:
    return sim.handle_command(state, number, list(params))


def test_lock_unlock_valet() -> None:
    s = attrs.evolve(sim.new_vehicle(0), locked=False)
    r = run(s, 20, "1234")
    assert r.replies == ("20,0",) and r.state.locked
    assert Doors.from_message(sim.doors(r.state)).lockunlock == "4"
    r = run(r.state, 22, "1234")
    assert r.replies == ("22,0",) and not r.state.locked
    r = run(r.state, 21, "1234")
    assert r.state.valet and int(Doors.from_message(sim.doors(r.state)).doors2 or 0) & 16
    assert not run(r.state, 23, "1234").state.valet


def test_charge_commands() -> None:
    s = sim.new_vehicle(0)
    r = run(s, 11)
    assert r.replies == ("11,0",) and r.state.charging
    assert Status.from_message(sim.status(r.state)).chargestate == "charging"
    r = run(r.state, 12)
    assert r.replies == ("12,0",) and not r.state.charging
    assert r.state.charge_state == "stopped"
    assert run(r.state, 10, "3").state.charge_mode == 3
    assert run(r.state, 10, "2").replies[0].startswith("10,1,")
    assert run(r.state, 15, "16").state.charge_limit_a == 16
    assert run(r.state, 15, "99").replies[0].startswith("15,1,")
    r16 = run(r.state, 16, "1", "10")
    assert (r16.state.charge_mode, r16.state.charge_limit_a) == (1, 10)
    driving = attrs.evolve(s, mode=sim.Mode.DRIVING)
    assert run(driving, 11).replies == ("11,1,Vehicle is driving",)


def test_feature_and_parameter_lists() -> None:
    s = sim.new_vehicle(0)
    r = run(s, 2, "8", "1")
    assert r.replies == ("2,0",)
    lines = run(r.state, 1).replies
    assert len(lines) == sim.FEATURES_MAX
    assert lines[0] == f"1,0,0,{sim.FEATURES_MAX},0"
    assert lines[8] == f"1,0,8,{sim.FEATURES_MAX},1"
    r = run(s, 4, "5", "hello,world")
    params = run(r.state, 3).replies
    assert len(params) == sim.PARAMS_MAX and params[5] == f"3,0,5,{sim.PARAMS_MAX},hello,world"
    assert run(s, 2, "99", "1").replies == ("2,1,Invalid index",)
    assert run(s, 2, "1", "x").replies == ("2,1,Invalid value",)


def test_other_commands() -> None:
    s = sim.new_vehicle(0)
    assert run(s, 18).state.awake
    assert run(s, 24, "1").state.homelink_presses == 1
    assert run(s, 24, "7").replies[0].startswith("24,1,")
    reboot = run(s, 5)
    assert reboot.reboot and reboot.replies == ("5,0",) and reboot.state.reboots == 1
    alert = run(s, 6)
    assert alert.replies == ("6,0",) and alert.notifications[0].startswith("I")
    assert run(s, 7, "stat").replies[0].startswith("7,0,Parked, SOC")
    assert run(s, 25).replies == ("25,2,Unsupported command",)
    assert run(s, 99).replies == ("99,2,Unsupported command",)
