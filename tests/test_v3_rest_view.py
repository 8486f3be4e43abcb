"""A v3 car's synthesised messages read as the REST API and API v4 read a v2 car's.

The mapping is only right if what reads stored messages finds the v3 values in
the fields and bits it reads: ``relay.http.formatting`` for REST and
``relay.v4.datapaths`` for API v4.
"""

from __future__ import annotations

from protocol.ovms_v3.state import VehicleState
from relay.http import formatting
from relay.store import StoredMessage
from relay.v4 import datapaths

NOW = 1_700_000_000.0

METRICS = {
    "v.b.soc": "81.5", "v.c.state": "charging", "v.c.mode": "range", "v.c.charging": "yes",
    "v.b.range.ideal": "250", "v.b.range.est": "199", "v.c.voltage": "230",
    "v.c.current": "16", "v.e.locked": "yes", "v.e.valet": "no", "v.e.awake": "yes",
    "v.e.alarm": "yes", "v.d.cp": "yes", "v.p.odometer": "12345.6", "v.e.temp": "18",
    "v.p.latitude": "52.52", "v.p.longitude": "13.405", "v.p.direction": "90",
    "v.p.altitude": "35", "v.p.gpslock": "yes", "v.p.speed": "0",
    "v.t.pressure": "230,231,229,230", "v.t.temp": "20,21,22,23",
}


def stored() -> dict[str, StoredMessage]:
    state = VehicleState()
    for metric, value in METRICS.items():
        assert state.apply(metric, value.encode()).rejected is None, metric
    return {m.code: StoredMessage(m.code, m.data, NOW, False, "")
            for m in state.messages(state.codes())}


def test_rest_status_and_charge() -> None:
    latest = stored()
    status = formatting.status(latest, NOW)
    assert status["soc"] == "81.5"
    assert status["carlocked"] and status["carawake"] and status["alarmsounding"]
    assert not status["valetmode"]
    charge = formatting.charge(latest, NOW)
    assert charge["chargestate"] == "charging" and charge["mode"] == "range"
    assert charge["linevoltage"] == "230" and charge["chargecurrent"] == "16"
    assert charge["charging"] and charge["cp_dooropen"]


def test_rest_location_and_tpms() -> None:
    latest = stored()
    loc = formatting.location(latest, NOW)
    assert (loc["latitude"], loc["longitude"]) == ("52.520000", "13.405000")
    tpms = formatting.tpms(latest, NOW)
    assert tpms["fl_pressure_kpa"] == "230" and tpms["rr_temperature"] == "23"
    assert tpms["staletpms"] == "1"


def test_v4_paths() -> None:
    latest = {code: msg.data for code, msg in stored().items()}
    for path, value in (("vehicle.alarm", True), ("vehicle.awake", True),
                        ("vehicle.doors.locked", True), ("vehicle.doors.valet", False),
                        ("vehicle.charging.active", True),
                        ("vehicle.charging.chargePortOpen", True)):
        assert datapaths.value_of(path, latest) is value, path
    assert datapaths.value_of("vehicle.position.latitude", latest) == 52.52
    assert datapaths.value_of("vehicle.energy.electric.level", latest) == 81.5
