"""The v3 metric -> v2 field mapping (protocol/ovms_v3/metrics.py, format.py).

Expected texts are what a v3 module's own v2 server sends for the same values
(read from the firmware's ovms_server_v2 component), written out by hand here.
"""

from __future__ import annotations

import pytest

from protocol import fields
from protocol.messages import TPMS, Doors, Firmware, Location, NewTPMS, Status
from protocol.ovms_v3 import metrics
from protocol.ovms_v3.format import message_for
from protocol.ovms_v3.metrics import Convert, FieldSource


def build(code: str, values: dict[str, str], units: str = "K") -> str:
    msg = message_for(code, values, units)
    assert msg is not None and msg.code == code
    assert msg.problem() is None
    return msg.data


def test_status_fields() -> None:
    s = Status.from_data(build("S", {
        "v.b.soc": "81.5", "v.c.voltage": "229.7", "v.c.current": "15.9",
        "v.c.state": "charging", "v.c.substate": "onrequest", "v.c.mode": "range",
        "v.b.range.ideal": "250.9", "v.b.range.est": "199.2", "v.c.climit": "16",
        "v.c.kwh": "3.27", "v.b.cac": "160.5", "v.c.duration.range": "30",
        "v.c.duration.soc": "45", "v.e.cooling": "no", "v.b.power": "-7.2",
        "v.c.charging": "yes", "v.b.voltage": "380.25", "v.b.soh": "97.6",
        "v.c.type": "type2", "v.c.timermode": "yes", "v.c.timestamp": "1700000000"}))
    assert (s.soc, s.units, s.linevoltage, s.chargecurrent) == ("81.5", "K", "229", "15")
    assert (s.chargestate, s.chargemode, s.chargestate_n, s.chargemode_n) == (
        "charging", "range", "1", "3")
    assert s.chargesubstate == "3"
    assert (s.idealrange, s.estimatedrange, s.chargelimit) == ("250", "199", "16")
    assert s.chargekwh == "32"  # 1/10 kWh, truncated
    assert s.cac100 == "160.50"
    assert (s.charge_etr_limit, s.charge_etr_range, s.charge_etr_soc) == ("30", "30", "45")
    assert s.cooldown_active == "-1"
    assert (s.chargepower, s.battvoltage, s.soh) == ("7.20", "380.25", "97")
    assert (s.chargetype, s.chargetimermode, s.charge_endtime) == ("type2", "1", "1700000000")
    assert s.extra == ()


def test_status_defaults_are_the_modules() -> None:
    s = Status.from_data(build("S", {"v.b.soc": "50"}))
    assert (s.chargestate, s.chargemode, s.chargestate_n) == ("stopped", "standard", "21")
    assert (s.linevoltage, s.cooldown_active, s.chargepower) == ("0", "-1", "0.00")


def test_etr_limit_takes_the_sooner_limit() -> None:
    def etr(rng: str, soc: str) -> str | None:
        view = Status.from_data(build("S", {"v.c.duration.range": rng,
                                            "v.c.duration.soc": soc}))
        return view.charge_etr_limit
    assert etr("30", "45") == "30"
    assert etr("60", "45") == "45"
    assert etr("-1", "45") == "45"


def test_charge_power_only_while_charging() -> None:
    s = Status.from_data(build("S", {"v.b.power": "-7.2", "v.c.charging": "no"}))
    assert s.chargepower == "0.00"
    s = Status.from_data(build("S", {"v.b.power": "0", "v.c.charging": "yes"}))
    assert s.chargepower == "0.00"


def test_miles() -> None:
    s = Status.from_data(build("S", {"v.b.range.ideal": "160.9344"}, units="M"))
    assert (s.units, s.idealrange) == ("M", "100")
    d = Doors.from_data(build("D", {"v.p.odometer": "16093.44", "v.p.speed": "100"}, "M"))
    assert d.odometer == "100000"  # 1/10 mile
    assert d.speed == "100"  # a module's v2 server leaves D's speed in km/h
    loc = Location.from_data(build("L", {"v.p.speed": "100"}, "M"))
    assert loc.speed == "62.1"


def test_doors_bits() -> None:
    d = Doors.from_data(build("D", {
        "v.d.fl": "yes", "v.d.cp": "yes", "v.c.charging": "yes", "v.e.on": "no",
        "v.e.locked": "yes", "v.e.headlights": "yes", "v.d.trunk": "yes",
        "v.e.awake": "yes", "v.e.alarm": "yes", "v.d.rr": "yes", "v.e.hvac": "yes",
        "v.p.odometer": "12345.67", "v.b.12v.voltage": "12.6", "v.e.cabintemp": "21.5"}))
    assert d.doors1 == str(1 | 4 | 16)
    assert d.doors2 == str(8 | 32 | 128)
    assert d.lockunlock == "4"
    assert d.doors3 == "3"  # bit 0 (v3 modules) and bit 1 (the REST field)
    assert d.doors4 == "6"  # bit 1 (v3 modules) and bit 2 (the REST field)
    assert d.doors5 == str(2 | 128)
    assert d.odometer == "123456"
    assert (d.vehicle12v, d.temp_cabin, d.staletemps) == ("12.6", "21.5", "1")


def test_unlocked_is_five() -> None:
    assert Doors.from_data(build("D", {"v.e.locked": "no"})).lockunlock == "5"


def test_location() -> None:
    loc = Location.from_data(build("L", {
        "v.p.latitude": "52.52", "v.p.longitude": "-13.4", "v.p.gpslock": "yes",
        "v.e.drivemode": "26", "v.b.power": "12.3456", "v.p.gpsmode": "AA",
        "v.p.trip": "12.34", "v.p.gpsstale": "no"}))
    assert (loc.latitude, loc.longitude) == ("52.520000", "-13.400000")
    assert (loc.gpslock, loc.stalegps, loc.drivemode, loc.power) == ("1", "1", "1a", "12.346")
    assert (loc.gpsmode, loc.tripmeter) == ("AA", "123")


def test_tpms_old_from_wheel_metrics_and_vectors() -> None:
    w = TPMS.from_data(build("W", {"v.tp.fl.p": "206.8", "v.tp.fl.t": "21"}))
    assert (w.fl_pressure, w.fl_temp, w.fr_pressure, w.staletpms) == ("30.0", "21", "0", "1")
    w = TPMS.from_data(build("W", {"v.t.pressure": "206.8,213.7,220.6,227.5",
                                   "v.t.temp": "20,21,22,23"}))
    assert (w.fl_pressure, w.fr_pressure, w.rl_pressure, w.rr_pressure) == (
        "30.0", "31.0", "32.0", "33.0")
    assert (w.fl_temp, w.rr_temp, w.staletpms) == ("20", "23", "1")


def test_tpms_new() -> None:
    y = NewTPMS.from_data(build("Y", {"v.t.pressure": "230,231.5,229,230",
                                      "v.t.alert": "0,0,1,0"}))
    assert y.names == ("FL", "FR", "RL", "RR")
    assert y.pressure.values == ("230", "231.5", "229", "230")
    assert y.pressure.validity == "1"
    assert y.temperature.values == () and y.temperature.validity == "-1"
    assert y.alert.values == ("0", "0", "1", "0")
    big = NewTPMS.from_data(build("Y", {"v.t.pressure": "1234567,0.000001,-0,2.50"}))
    assert big.pressure.values == ("1234567", "0.000001", "0", "2.5")


def test_firmware() -> None:
    f = Firmware.from_data(build("F", {
        "m.version": "3.3.004-32-g1234/ota_0/main", "v.vin": "5YJRE1A31A1P01234",
        "m.net.sq": "-67", "v.type": "TR", "m.net.provider": "Vodafone, DE",
        "m.hardware": "OVMS WIFI BLE BT cores=2"}))
    assert (f.version, f.vin, f.signal_quality, f.write_enabled) == (
        "3.3.004-32-g1234/ota_0/main", "5YJRE1A31A1P01234", "23", "1")
    assert (f.vehicle_type, f.network) == ("TR", "Vodafone; DE")  # no field separator
    assert f.hardware == "OVMS WIFI BLE BT cores=2"


def test_no_values_no_message() -> None:
    for code in metrics.CODES:
        assert message_for(code, {}, "K") is None
    assert message_for("S", {"v.d.fl": "yes"}, "K") is None


def test_unconvertible_value_falls_back_to_default() -> None:
    s = Status.from_data(build("S", {"v.b.soc": "50", "v.c.voltage": "abc"}))
    assert s.linevoltage == "0"


def test_every_field_of_the_layouts_is_accounted_for() -> None:
    """Each field of S, D, L, W, F is mapped, constant or a documented gap, so a
    field added to protocol/fields.py must be decided on here."""
    gaps = {("S", "units"), ("F", "service_seconds")}
    for code in ("S", "D", "L", "W", "F"):
        mapped = {s.field for s in metrics.sources(code)}
        for name in fields.LAYOUTS[code].names():
            assert name in mapped or (code, name) in gaps, (code, name)


def test_mapping_refuses_names_the_layouts_lack() -> None:
    with pytest.raises(KeyError):
        FieldSource("S", "nosuchfield", ("v.b.soc",), Convert.NUMBER)
    with pytest.raises(KeyError):
        FieldSource("D", "doors1", ("v.d.fl",), Convert.BIT, bit="nosuchbit")
    with pytest.raises(ValueError, match="bitfield"):
        FieldSource("D", "doors1", ("v.d.fl",), Convert.BOOL)
    with pytest.raises(ValueError, match="not a bit of"):
        FieldSource("D", "doors1", ("v.e.locked",), Convert.BIT, bit="carlocked")


def test_codes_for() -> None:
    assert metrics.codes_for("v.b.soc") == {"S"}
    assert metrics.codes_for("v.c.charging") == {"S", "D"}
    assert metrics.codes_for("v.t.pressure") == {"W", "Y"}
    assert metrics.codes_for("x.custom.metric") == frozenset()
