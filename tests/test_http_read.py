"""REST read endpoints against a real relay fed by a scripted car.

Expected values are the public server's answers to the same car messages
(field names, value types, texts), except where PROTOCOL.md says we improve.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import httpx

from tests.conftest import RelayUnderTest
from tests.http_helpers import (
    CREDS,
    D_MSG,
    F_MSG,
    L_MSG,
    S_MSG,
    TESTCAR_L,
    TESTCAR_S,
    W_MSG,
    Y_MSG,
    api,
    assert_json,
    assert_text,
    scripted_car,
    sync,
    without_ages,
)

__all__ = ["api"]  # fixtures

DEMO_MESSAGES = (("F", F_MSG), ("S", S_MSG), ("D", D_MSG), ("L", L_MSG), ("W", W_MSG),
                 ("Y", Y_MSG))
TIME_RE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")

STATUS_DEMO = {
    "alarmsounding": 0, "bt_open": 0, "cac100": "160", "carawake": 0, "carlocked": 8,
    "caron": 128, "chargestate": "done", "charging": 0, "charging_12v": 16,
    "cooldown_active": "0", "cp_dooropen": 0, "estimatedrange": "85", "fl_dooropen": 0,
    "fr_dooropen": 0, "handbrake": 0, "idealrange": "105", "idealrange_max": "105",
    "mode": "standard", "odometer": "0", "parkingtimer": "0", "pilotpresent": 0, "soc": "30",
    "soh": "80", "speed": "55", "staleambient": "1", "staletemps": "1",
    "temperature_ambient": "25", "temperature_battery": "30", "temperature_cabin": None,
    "temperature_charger": "13.5", "temperature_motor": "45", "temperature_pem": "35",
    "tr_open": 0, "tripmeter": "0", "units": "K", "valetmode": 0, "vehicle12v": "12.0",
    "vehicle12v_current": "30", "vehicle12v_ref": "0",
}
CHARGE_DEMO = {
    "batt_capacity": "0", "batt_current": "1", "batt_range_speed": "0", "battvoltage": "12.0",
    "cac100": "160", "carawake": 0, "caron": 128, "charge_estimate": "0",
    "charge_etr_full": "0", "charge_etr_limit": "0", "charge_etr_range": "0",
    "charge_etr_soc": "0", "charge_kwh_grid": "0", "charge_kwh_grid_total": "0",
    "charge_limit_range": "80", "charge_limit_soc": "80", "chargeb4": "0",
    "chargecurrent": "0", "chargeduration": "0", "chargekwh": "0", "chargelimit": "13",
    "chargepower": "7.2", "chargepowerinput": "7.2", "chargerefficiency": "95",
    "chargestarttime": "0", "chargestate": "done", "chargesubstate": "7",
    "chargetimermode": "0", "chargetimerstale": "1", "chargetype": "", "charging": 0,
    "charging_12v": 16, "cooldown_active": "0", "cooldown_tbattery": "31",
    "cooldown_timelimit": "60", "cp_dooropen": 0, "estimatedrange": "85", "idealrange": "105",
    "idealrange_max": "105", "linevoltage": "0", "mode": "standard", "pilotpresent": 0,
    "soc": "30", "soh": "80", "staleambient": "1", "staletemps": "1",
    "temperature_ambient": "25", "temperature_battery": "30", "temperature_cabin": None,
    "temperature_charger": "13.5", "temperature_motor": "45", "temperature_pem": "35",
    "units": "K", "vehicle12v": "12.0", "vehicle12v_current": "30", "vehicle12v_ref": "0",
}
LOCATION_DEMO = {
    "altitude": "0", "direction": "90", "drivemode": "0", "energyrecd": "0",
    "energyused": "0", "gpslock": "1", "invefficiency": "100", "invpower": "0",
    "latitude": "22.270553", "longitude": "114.186994", "power": "0", "speed": "55",
    "stalegps": "1", "tripmeter": "0",
}
STATUS_TESTCAR = {
    "cac100": None, "chargestate": "charging", "cooldown_active": None,
    "estimatedrange": "270", "idealrange": "280", "idealrange_max": None, "mode": "standard",
    "soc": "80", "soh": None, "units": "K",
}
CHARGE_TESTCAR_SET = {"chargecurrent": "70", "chargestate": "charging",
                      "estimatedrange": "270", "idealrange": "280", "linevoltage": "220",
                      "mode": "standard", "soc": "80", "units": "K"}
LOCATION_TESTCAR = {
    "altitude": None, "direction": None, "drivemode": None, "energyrecd": None,
    "energyused": None, "gpslock": None, "invefficiency": None, "invpower": None,
    "latitude": "22.274165", "longitude": "114.185715", "power": None, "speed": None,
    "stalegps": None, "tripmeter": None,
}
TPMS_W = {
    "fl_pressure": "29", "fl_temperature": "27", "fr_pressure": "29", "fr_temperature": "27",
    "rl_pressure": "40", "rl_temperature": "31", "rr_pressure": "40", "rr_temperature": "31",
    "staletpms": "1",
}


def check_stamps(data: dict[str, Any], *codes: str) -> None:
    stamps = {k for k in data if k.startswith(("m_msgtime_", "m_msgage_"))}
    assert stamps == {f"m_msg{kind}_{c}" for c in codes for kind in ("time", "age")}
    for code in codes:
        assert TIME_RE.fullmatch(data[f"m_msgtime_{code}"])
        assert isinstance(data[f"m_msgage_{code}"], int)
        assert 0 <= data[f"m_msgage_{code}"] < 60


async def test_status_charge_location_match_the_reference(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    await scripted_car(relay, messages=DEMO_MESSAGES)
    status = assert_json(await api.get("/api/status/DEMO", params=CREDS))
    assert without_ages(status) == STATUS_DEMO
    check_stamps(status, "s", "d")
    charge = assert_json(await api.get("/api/charge/DEMO", params=CREDS))
    assert without_ages(charge) == CHARGE_DEMO
    check_stamps(charge, "s", "d")
    location = assert_json(await api.get("/api/location/demo", params=CREDS))
    assert without_ages(location) == LOCATION_DEMO
    check_stamps(location, "l")


async def test_short_messages_give_nulls_and_absent_messages_no_fields(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    await scripted_car(relay, "TESTCAR", (("S", TESTCAR_S), ("L", TESTCAR_L)))
    status = assert_json(await api.get("/api/status/TESTCAR", params=CREDS))
    assert without_ages(status) == STATUS_TESTCAR
    check_stamps(status, "s")
    charge = assert_json(await api.get("/api/charge/TESTCAR", params=CREDS))
    check_stamps(charge, "s")
    charge = without_ages(charge)
    assert set(charge) == set(CHARGE_DEMO) - {
        "carawake", "caron", "charging", "charging_12v", "cp_dooropen", "pilotpresent",
        "staleambient", "staletemps", "temperature_ambient", "temperature_battery",
        "temperature_cabin", "temperature_charger", "temperature_motor", "temperature_pem",
        "vehicle12v", "vehicle12v_current", "vehicle12v_ref"}
    assert {k: v for k, v in charge.items() if v is not None} == CHARGE_TESTCAR_SET
    location = assert_json(await api.get("/api/location/TESTCAR", params=CREDS))
    assert without_ages(location) == LOCATION_TESTCAR
    assert assert_json(await api.get("/api/tpms/TESTCAR", params=CREDS)) == {}


async def test_nothing_stored_gives_empty_objects(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    for what in ("status", "charge", "location", "tpms", "lock", "valet"):
        assert assert_json(await api.get(f"/api/{what}/TESTCAR", params=CREDS)) == {}
    assert assert_json(await api.get("/api/protocol/TESTCAR", params=CREDS)) == []
    assert assert_json(await api.get("/api/historical/TESTCAR", params=CREDS)) == []


async def test_tpms_from_w(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    await scripted_car(relay, "TESTCAR", (("W", W_MSG),))
    tpms = assert_json(await api.get("/api/tpms/TESTCAR", params=CREDS))
    assert without_ages(tpms) == TPMS_W
    check_stamps(tpms, "w")


async def test_tpms_prefers_y(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    # The public server answers 404 here (its Y handler crashes); we decode Y.
    await scripted_car(relay, messages=(("W", W_MSG), ("Y", Y_MSG)))
    tpms = assert_json(await api.get("/api/tpms/DEMO", params=CREDS))
    check_stamps(tpms, "w", "y")
    expected: dict[str, Any] = {}
    for wheel, kpa, temp in (("fl", "200.0", "27"), ("fr", "200.0", "27"),
                             ("rl", "276.0", "31"), ("rr", "276.0", "31")):
        expected[f"{wheel}_pressure_kpa"] = kpa
        expected[f"{wheel}_pressure"] = float(kpa) * 0.14503773773020923
        expected[f"{wheel}_temperature"] = temp
        expected[f"{wheel}_health"] = "100"
        expected[f"{wheel}_alert"] = "1"
    # This car omits the validity flag after the pressures (and after the alerts).
    expected.update({"stale_pressure": None, "stale_temperature": "1", "stale_health": "1",
                     "stale_alert": None, "staletpms": "1"})
    assert without_ages(tpms) == expected


async def test_protocol_lists_stored_messages_in_replay_order(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    await scripted_car(relay, messages=(("S", S_MSG), ("L", L_MSG), ("Y", Y_MSG), ("D", D_MSG),
                                        ("W", W_MSG), ("F", F_MSG)))
    rows = assert_json(await api.get("/api/protocol/DEMO", params=CREDS))
    assert [r["m_code"] for r in rows] == ["F", "S", "D", "L", "W", "Y"]
    assert rows[1] == {"m_code": "S", "m_msg": S_MSG, "m_msgtime": rows[1]["m_msgtime"],
                       "m_paranoid": 0, "m_ptoken": ""}
    assert all(TIME_RE.fullmatch(r["m_msgtime"]) for r in rows)


async def test_paranoid_status_is_502(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    await scripted_car(relay, messages=(("E", "Ttok1"), ("E", "MSencrypted")))
    assert_text(await api.get("/api/status/DEMO", params=CREDS), 502,
                "Paranoid vehicles not supported by api")
    rows = assert_json(await api.get("/api/protocol/DEMO", params=CREDS))
    assert rows == [{"m_code": "S", "m_msg": "encrypted", "m_msgtime": rows[0]["m_msgtime"],
                     "m_paranoid": 1, "m_ptoken": "tok1"}]


async def test_historical_summary_and_records(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    car = await scripted_car(relay)
    await car.send("H", "*-Test,0,3600,abc")
    await car.send("H", "*-Test,1,3600,defg")
    await car.send("h", "7,0,S,0,3600," + S_MSG)
    assert (await car.receive_until("h"))[-1].text() == "h7"  # committed
    await relay.handle.store.flush()
    rows = assert_json(await api.get("/api/historical/DEMO", params=CREDS))
    assert [without_times(r, "first", "last") for r in rows] == [
        {"h_recordtype": "*-Test", "distinctrecs": 2, "totalrecs": 2, "totalsize": "7"},
        {"h_recordtype": "S", "distinctrecs": 1, "totalrecs": 1,
         "totalsize": str(len(S_MSG))},
    ]
    assert all(TIME_RE.fullmatch(r["first"]) and TIME_RE.fullmatch(r["last"]) for r in rows)
    records = assert_json(await api.get("/api/historical/DEMO/*-Test", params=CREDS))
    assert [without_times(r, "h_timestamp") for r in records] == [
        {"h_recordnumber": 0, "h_data": "abc"}, {"h_recordnumber": 1, "h_data": "defg"}]
    future = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 3600))
    assert assert_json(await api.get("/api/historical/DEMO/*-Test",
                                     params={**CREDS, "since": future})) == []
    assert assert_json(await api.get("/api/historical/DEMO",
                                     params={**CREDS, "since": "0"})) == rows
    assert_text(await api.get("/api/historical/DEMO", params={**CREDS, "since": "soon"}), 400,
                "parameter since must be unix seconds or a UTC time 'YYYY-MM-DD HH:MM:SS' "
                "(or 'YYYY-MM-DD')")


def without_times(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


async def test_vehicles_and_connect_disconnect_send_z_to_the_car(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    car = await scripted_car(relay, messages=(("S", S_MSG),))
    vehicles = assert_json(await api.get("/api/vehicles", params=CREDS))
    assert vehicles == [
        {"id": "DEMO", "v_apps_connected": 0, "v_btcs_connected": 0, "v_net_connected": 1},
        {"id": "TESTCAR", "v_apps_connected": 0, "v_btcs_connected": 0, "v_net_connected": 0},
    ]
    connected = assert_json(await api.get("/api/vehicle/DEMO", params=CREDS))
    assert without_ages(connected) == {"v_apps_connected": 1, "v_btcs_connected": 0,
                                       "v_first_peer": 1, "v_net_connected": 1}
    check_stamps(connected, "s")
    assert await sync(car) == ["Z1"]
    # The same caller again: still one registration, not the first peer any more.
    again = assert_json(await api.get("/api/vehicle/DEMO", params=CREDS))
    assert (again["v_apps_connected"], again["v_first_peer"]) == (1, 0)
    vehicles = assert_json(await api.get("/api/vehicles", params=CREDS))
    assert vehicles[0]["v_apps_connected"] == 1
    assert_text(await api.delete("/api/vehicle/DEMO", params=CREDS), 200, "Disconnect OK")
    assert await sync(car) == ["Z0"]  # the repeated connect sent no Z
    vehicles = assert_json(await api.get("/api/vehicles", params=CREDS))
    assert vehicles[0]["v_apps_connected"] == 0
    # Without a stored S there is no message time.
    connected = assert_json(await api.get("/api/vehicle/TESTCAR", params=CREDS))
    assert connected == {"v_apps_connected": 1, "v_btcs_connected": 0, "v_first_peer": 1,
                         "v_net_connected": 0}


async def test_cookie_session_flow(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    car = await scripted_car(relay, messages=(("S", S_MSG), ("D", D_MSG)))
    login = await api.get("/api/cookie", params=CREDS)
    assert_text(login, 200, "Login ok")
    assert re.fullmatch(r"ovmsapisession=[0-9A-F-]{36}; Path=/; HttpOnly",
                        login.headers["set-cookie"])
    assert api.cookies.get("ovmsapisession")
    # From here on the cookie alone authenticates.
    assert len(assert_json(await api.get("/api/vehicles"))) == 2
    connected = assert_json(await api.get("/api/vehicle/DEMO"))
    assert connected["v_apps_connected"] == 1
    assert await sync(car) == ["Z1"]
    status = assert_json(await api.get("/api/status/DEMO"))
    assert without_ages(status) == STATUS_DEMO
    assert_text(await api.delete("/api/cookie"), 200, "Logout ok")
    # Logging out ends the session's vehicle registration too.
    assert await sync(car) == ["Z0"]
    assert_text(await api.get("/api/vehicles"), 401, "Authentication failed")


async def test_json_is_canonical(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    await scripted_car(relay, messages=DEMO_MESSAGES)
    for path in ("/api/status/DEMO", "/api/vehicles", "/api/protocol/DEMO", "/api/tpms/DEMO"):
        response = await api.get(path, params=CREDS)
        data = response.json()
        assert response.text == json.dumps(data, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False) + "\n"
