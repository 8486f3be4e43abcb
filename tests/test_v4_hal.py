"""relay.v4.hal: HAL objects and pages, times, GeoJSON, status, actions, alerts."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest

from relay.v4 import hal
from relay.v4.jsonparse import InvalidRequest, NotSupported

S_DATA = (
    "30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,105,"
    ",7.2,12.0,80,7.2,95,1,0,0,0,0,0"
)
D_DATA = "160,8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"
L_DATA = "22.270553,114.186994,90,12,1,1,55,0,0,0,0,0,0,100,AS,12,2,55,100"


# --- times and errors -----------------------------------------------------------------


def test_rfc3339() -> None:
    assert hal.rfc3339(0) == "1970-01-01T00:00:00Z"
    assert hal.rfc3339(1774951200.9) == "2026-03-31T10:00:00Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-03-31T10:00:00Z", 1774951200), ("2026-03-31T12:00:00+02:00", 1774951200),
     ("2026-03-31t10:00:00z", 1774951200), ("2026-03-31T10:00:00.5Z", 1774951200.5)],
)
def test_parse_rfc3339(text: str, expected: float) -> None:
    assert hal.parse_rfc3339(text) == expected


@pytest.mark.parametrize("text", ["2026-03-31", "2026-03-31T10:00:00", "yesterday", "Z"])
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        hal.parse_rfc3339(text, field="from")
    assert info.value.message == (
        f"from: {text!r} is not an RFC 3339 time such as 2026-01-31T08:00:00Z")


def test_error_body() -> None:
    assert hal.error_body(404, "no such vehicle") == {"code": 404, "message": "no such vehicle"}


def test_single() -> None:
    out = hal.single({"id": "m1", "label": "x"}, href="/api/v4/vehicles/DEMO/monitors/m1",
                     created_at=0, updated_at=60, links={"vehicle": "/api/v4/vehicles/DEMO"})
    assert out == {
        "id": "m1", "label": "x",
        "_links": {"self": {"href": "/api/v4/vehicles/DEMO/monitors/m1"},
                   "vehicle": {"href": "/api/v4/vehicles/DEMO"}},
        "createdAt": "1970-01-01T00:00:00Z", "updatedAt": "1970-01-01T00:01:00Z",
        "_embedded": {},
    }


# --- pagination on 25 items -----------------------------------------------------------

ITEMS = [{"n": i} for i in range(25)]
PATH = "/api/v4/vehicles/DEMO/alerts"


def page(**query: str) -> dict[str, Any]:
    return hal.collection(ITEMS, name="alerts", path=PATH, query=query)


def href_query(href: str) -> dict[str, str]:
    path, _, qs = href.partition("?")
    assert path == PATH
    return dict(urllib.parse.parse_qsl(qs))


def test_default_first_page() -> None:
    out = page()
    assert [i["n"] for i in out["_embedded"]["alerts"]] == list(range(10))
    assert out["total"] == 25 and out["currentPage"] == 1 and out["totalPage"] == 3
    links = out["_links"]
    assert set(links) == {"self", "first", "next", "last"}
    assert href_query(links["self"]["href"]) == {"indexRange": "0-9", "pageSize": "10"}
    assert href_query(links["next"]["href"]) == {"indexRange": "10-19", "pageSize": "10"}
    assert href_query(links["last"]["href"]) == {"indexRange": "20-29", "pageSize": "10"}
    assert links["first"]["href"] == f"{PATH}?indexRange=0-9&pageSize=10"


def test_middle_page_by_index_range() -> None:
    out = page(indexRange="10-19")
    assert [i["n"] for i in out["_embedded"]["alerts"]] == list(range(10, 20))
    assert out["currentPage"] == 2 and out["totalPage"] == 3
    assert href_query(out["_links"]["prev"]["href"])["indexRange"] == "0-9"
    assert href_query(out["_links"]["next"]["href"])["indexRange"] == "20-29"


def test_last_page_is_short_and_has_no_next() -> None:
    out = page(indexRange="20-29")
    assert [i["n"] for i in out["_embedded"]["alerts"]] == [20, 21, 22, 23, 24]
    assert out["currentPage"] == 3
    assert "next" not in out["_links"] and "prev" in out["_links"]


def test_page_size() -> None:
    out = page(pageSize="7")
    assert len(out["_embedded"]["alerts"]) == 7
    assert out["totalPage"] == 4
    assert href_query(out["_links"]["last"]["href"]) == {"indexRange": "21-27", "pageSize": "7"}
    out = page(pageSize="7", indexRange="21-")
    assert [i["n"] for i in out["_embedded"]["alerts"]] == [21, 22, 23, 24]
    assert out["currentPage"] == 4


def test_following_next_links_visits_every_item_once() -> None:
    seen: list[int] = []
    query: dict[str, str] = {"pageSize": "4", "locale": "fr"}
    for _ in range(20):
        out = page(**query)
        seen.extend(i["n"] for i in out["_embedded"]["alerts"])
        if "next" not in out["_links"]:
            break
        query = href_query(out["_links"]["next"]["href"])
        assert query["locale"] == "fr"  # other parameters survive in links
    assert seen == list(range(25))


def test_index_range_sets_the_size() -> None:
    out = page(indexRange="5-9", pageSize="10")
    assert [i["n"] for i in out["_embedded"]["alerts"]] == [5, 6, 7, 8, 9]
    assert out["currentPage"] == 2 and out["totalPage"] == 5
    assert href_query(out["_links"]["prev"]["href"])["indexRange"] == "0-4"


def test_range_past_the_end_is_empty() -> None:
    out = page(indexRange="30-39")
    assert out["_embedded"]["alerts"] == [] and out["total"] == 25


def test_empty_collection() -> None:
    out = hal.collection([], name="trips", path="/t", query={})
    assert out["total"] == 0 and out["totalPage"] == 1 and out["currentPage"] == 1
    assert set(out["_links"]) == {"self", "first", "last"}
    assert out["_embedded"] == {"trips": []}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"pageSize": "0"}, "pageSize: must be between 1 and 100, got 0"),
        ({"pageSize": "101"}, "pageSize: must be between 1 and 100, got 101"),
        ({"pageSize": "ten"}, "pageSize: 'ten' is not a non-negative integer"),
        ({"pageSize": "-1"}, "pageSize: '-1' is not a non-negative integer"),
        ({"indexRange": "5"}, "indexRange: '5' is not of the form a-b, e.g. 0-9"),
        ({"indexRange": "a-b"}, "indexRange: 'a' is not a non-negative integer"),
        ({"indexRange": "-5"}, "indexRange: '' is not a non-negative integer"),
        ({"indexRange": "1-²"}, "indexRange: '²' is not a non-negative integer"),
    ],
)
def test_bad_paging(query: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        page(**query)
    assert info.value.message == message


def test_reversed_or_long_ranges_are_served_as_the_nearest_page() -> None:
    assert hal.parse_paging({"indexRange": "9-5"}) == hal.PageRequest(9, 1)
    assert hal.parse_paging({"indexRange": "0-200"}) == hal.PageRequest(0, 100)


def test_collection_page_for_store_side_slicing() -> None:
    req = hal.parse_paging({"indexRange": "10-14"})
    out = hal.collection_page(ITEMS[10:15], total=25, page=req, name="alerts", path=PATH,
                              query={"indexRange": "10-14"})
    assert out["currentPage"] == 3 and out["totalPage"] == 5


# --- GeoJSON --------------------------------------------------------------------------


def assert_geojson_point_feature(feature: dict[str, Any]) -> None:
    """RFC 7946 sections 3.1.2 and 3.2, as far as a Point Feature goes."""
    assert feature["type"] == "Feature"
    geometry = feature["geometry"]
    assert geometry["type"] == "Point"
    coordinates = geometry["coordinates"]
    assert 2 <= len(coordinates) <= 3
    assert all(isinstance(c, int | float) and not isinstance(c, bool) for c in coordinates)
    lon, lat = coordinates[:2]
    assert -180 <= lon <= 180 and -90 <= lat <= 90
    assert isinstance(feature["properties"], dict)
    json.dumps(feature, allow_nan=False)


def test_position_feature() -> None:
    feature = hal.position_feature(L_DATA, units="K", updated_at=1774951200)
    assert feature is not None
    assert_geojson_point_feature(feature)
    assert feature["geometry"]["coordinates"] == [114.186994, 22.270553, 12]
    props = feature["properties"]
    assert props["heading"] == 90 and props["speed"] == 55
    assert props["gpsLock"] is True and props["stale"] is False
    assert props["gpsQuality"] == 100 and props["satellites"] == 12 and props["hdop"] == 2
    assert props["updatedAt"] == "2026-03-31T10:00:00Z"
    assert props["units"]["speed"] == "km/h"


def test_position_feature_as_hal_object() -> None:
    feature = hal.position_feature(L_DATA, updated_at=0)
    assert feature is not None
    out = hal.single(feature, href="/api/v4/vehicles/DEMO/lastPosition", created_at=0,
                     updated_at=0)
    assert_geojson_point_feature(out)  # HAL members are GeoJSON foreign members
    assert out["_links"]["self"]["href"].endswith("/lastPosition")


def test_position_feature_miles_and_missing_parts() -> None:
    feature = hal.position_feature("48.5,2.25,,,,,10", units="M", updated_at=0)
    assert feature is not None
    assert_geojson_point_feature(feature)
    assert feature["geometry"]["coordinates"] == [2.25, 48.5]  # no altitude sent
    assert feature["properties"]["speed"] == pytest.approx(16.09344)
    assert "heading" not in feature["properties"]


@pytest.mark.parametrize("data", ["", "0,0,90,0,0", "95,2", "48,200", "nan,2", "x,y", "48"])
def test_no_position(data: str) -> None:
    assert hal.position_feature(data, updated_at=0) is None


# --- status ---------------------------------------------------------------------------


def test_status_from_reference_messages() -> None:
    status = hal.status_resource({"S": S_DATA, "D": D_DATA})
    assert status["energy"]["electric"]["level"] == {"value": 30, "unit": "%"}
    assert status["energy"]["electric"]["autonomy"] == {"value": 85, "unit": "km"}
    assert status["energy"]["electric"]["health"] == {"value": 80, "unit": "%"}
    assert status["charging"]["status"] == "done"
    assert status["charging"]["plugged"] is False
    assert status["charging"]["power"] == {"value": 7.2, "unit": "kW"}
    assert status["doors"]["locked"] is True
    assert status["doors"]["frontLeftOpen"] is False
    assert status["doors"]["rearLeftOpen"] is True  # doors5 = 25: bit 0
    assert status["ignition"] is True  # doors1 = 160: bit 7
    assert status["preconditioning"] is False
    assert status["battery"] == {"12v": {"value": 12, "unit": "V"},
                                 "12vCurrent": {"value": 30, "unit": "A"},
                                 "12vCharging": True}
    assert status["temperature"]["ambient"] == {"value": 25, "unit": "°C"}
    assert "cabin" not in status["temperature"]  # the D had no temp_cabin: left out
    assert "position" not in status and "vin" not in status
    json.dumps(status, allow_nan=False)


def test_status_omits_everything_unknown() -> None:
    assert hal.status_resource({}) == {}
    assert hal.status_resource({"S": "55"}) == {
        "energy": {"electric": {"level": {"value": 55, "unit": "%"}}}}


def test_telemetry() -> None:
    items = hal.telemetry({"S": "55,M,0,0,charging,standard,0,100", "F": "3.3,VIN1"})
    by_path = {i["path"]: i for i in items}
    assert by_path["vehicle.energy.electric.autonomy"] == {
        "path": "vehicle.energy.electric.autonomy", "value": 160.9344, "unit": "km"}
    assert by_path["vehicle.charging.status"] == {"path": "vehicle.charging.status",
                                                  "value": "charging"}
    assert by_path["vehicle.vin"]["value"] == "VIN1"


# --- remote actions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "pin", "command"),
    [("lock", "1234", "20,1234"), ("unlock", "1234", "22,1234"), ("charge.start", None, "11"),
     ("charge.stop", None, "12"), ("climate.on", None, "26,1"), ("climate.off", None, "26,0"),
     ("wakeup", None, "18")],
)
def test_remote_commands(action: str, pin: str | None, command: str) -> None:
    assert hal.remote_command(action, pin=pin) == command


@pytest.mark.parametrize("action", ["horn", "lights"])
def test_horn_and_lights_unsupported(action: str) -> None:
    with pytest.raises(NotSupported) as info:
        hal.remote_command(action)
    assert info.value.status == 501
    assert info.value.message.startswith(f"{action}: the OVMS v2 protocol has no {action} "
                                         "command")


@pytest.mark.parametrize(
    ("action", "pin", "message"),
    [
        ("honk", None, "unknown action 'honk'; known: lock, unlock, charge.start, charge.stop, "
                       "climate.on, climate.off, wakeup, horn, lights"),
        ("lock", None, "lock needs the vehicle PIN (pin)"),
        ("unlock", "", "unlock needs the vehicle PIN (pin)"),
        ("lock", "12,5", "pin: at most 32 letters, digits or #*+-_."),
        ("lock", "12\n7,1", "pin: at most 32 letters, digits or #*+-_."),
        ("lock", "1" * 33, "pin: at most 32 letters, digits or #*+-_."),
        ("wakeup", "1234", "wakeup takes no pin"),
    ],
)
def test_remote_command_errors(action: str, pin: str | None, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        hal.remote_command(action, pin=pin)
    assert info.value.message == message


def test_parse_remote_request() -> None:
    assert hal.parse_remote_request('{"action": "lock", "pin": "1234"}') == ("lock", "1234")
    assert hal.parse_remote_request(b'{"action": "wakeup"}') == ("wakeup", None)
    with pytest.raises(InvalidRequest, match="action: required"):
        hal.parse_remote_request("{}")
    with pytest.raises(InvalidRequest, match="pin: must be a string"):
        hal.parse_remote_request('{"action": "lock", "pin": 1234}')
    with pytest.raises(InvalidRequest, match="duplicate key"):
        hal.parse_remote_request('{"action": "lock", "action": "unlock"}')


def test_action_outcome() -> None:
    assert hal.action_outcome(0) == (200, {"status": "Done"})
    assert hal.action_outcome(1, "wrong pin") == (
        422, {"code": 422, "message": "the car refused: wrong pin"})
    assert hal.action_outcome(2)[0] == 501
    assert hal.action_outcome(3, "x")[1]["message"] == "the car does not implement this command: x"
    assert hal.action_outcome(9)[0] == 502


# --- alerts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "locale"),
    [(None, "en"), ("", "en"), ("fr", "fr"), ("fr-FR", "fr"), ("de_AT", "de"), ("DE", "de"),
     ("es", "en"), ("zz-ZZ", "en"), ("en-GB", "en")],
)
def test_pick_locale(value: str | None, locale: str) -> None:
    assert hal.pick_locale(value) == locale


@pytest.mark.parametrize(
    ("locale", "text"),
    [
        ("en", "Authentication failed for vehicle DEMO from 10.0.0.5"),
        ("fr", "Échec de l'authentification pour le véhicule DEMO depuis 10.0.0.5"),
        ("de", "Authentifizierung für Fahrzeug DEMO von 10.0.0.5 fehlgeschlagen"),
    ],
)
def test_auth_failed_texts(locale: str, text: str) -> None:
    assert hal.alert_text("auth.failed", locale, vehicleid="DEMO", peer="10.0.0.5") == text


def test_every_alert_has_every_language_and_the_same_placeholders() -> None:
    import string

    required = {"auth.failed", "auth.succeeded", "vehicle.connected", "vehicle.disconnected"}
    assert required <= set(hal.ALERT_TEXTS)
    for key, texts in hal.ALERT_TEXTS.items():
        assert set(texts) == set(hal.LOCALES), key
        fields = [{f for _, f, _, _ in string.Formatter().parse(t) if f} for t in texts.values()]
        assert all(f == fields[0] for f in fields), key


def test_connected_texts() -> None:
    assert hal.alert_text("vehicle.connected", "de", vehicleid="X") == \
        "Fahrzeug X hat sich mit dem Server verbunden"
    assert hal.alert_text("vehicle.disconnected", "fr", vehicleid="X") == \
        "Le véhicule X s'est déconnecté du serveur"
    # A placeholder nobody filled stays visible rather than failing.
    assert hal.alert_text("vehicle.connected", "en") == \
        "Vehicle {vehicleid} connected to the server"


def test_server_alert() -> None:
    out = hal.server_alert("auth.succeeded", occurred_at=0, locale="de", vehicleid="DEMO",
                           peer="app")
    assert out == {"source": "server", "type": "info", "key": "auth.succeeded",
                   "text": "Erfolgreiche Authentifizierung für Fahrzeug DEMO von app",
                   "occurredAt": "1970-01-01T00:00:00Z"}
    assert hal.server_alert("auth.failed", occurred_at=0)["type"] == "alert"
    with pytest.raises(KeyError):
        hal.server_alert("nope", occurred_at=0)


def test_alert_from_push() -> None:
    assert hal.alert_from_push("AVehicle alarm is sounding!", occurred_at=0) == {
        "source": "vehicle", "type": "alert", "text": "Vehicle alarm is sounding!",
        "occurredAt": "1970-01-01T00:00:00Z"}
    assert hal.alert_from_push("ICharging done", occurred_at=0, locale="fr")["text"] == \
        "Charging done"  # the car's own words are not translated
    error = hal.alert_from_push("ERT,42,0x1f", occurred_at=0, locale="fr")
    assert error["type"] == "error"
    assert error["error"] == {"vehicleType": "RT", "code": "42", "data": "0x1f"}
    assert error["text"] == "Erreur du véhicule 42 (RT) : 0x1f"
    other = hal.alert_from_push("Qsomething", occurred_at=0)
    assert other["type"] == "other" and other["typeCode"] == "Q"


def test_parse_bool_param() -> None:
    assert hal.parse_bool_param("true", field="x") is True
    assert hal.parse_bool_param(None, field="x", default=True) is True
    with pytest.raises(InvalidRequest, match="x: expected true or false, got 'yes'"):
        hal.parse_bool_param("yes", field="x")
