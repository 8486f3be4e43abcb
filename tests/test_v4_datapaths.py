"""relay.v4.datapaths: the data path table, values from real messages, and the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from relay.v4 import datapaths
from relay.v4.datapaths import PATHS, TABLE, parse_literal, value_of

ROOT = Path(__file__).resolve().parent.parent

# Reference messages of the demo car (see test_protocol_messages.py).
S_DATA = (
    "30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,105,"
    ",7.2,12.0,80,7.2,95,1,0,0,0,0,0"
)
D_DATA = "160,8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"
L_DATA = "22.270553,114.186994,90,0,1,1,55,0,0,0,0,0,0,100,AS,12,2,55,100"
F_DATA = "1.5.0,VIN123456789012345,5,1,TRDM,DNET,25000,86400,DEMO-HW,Wifi-online"
DEMO = {"S": S_DATA, "D": D_DATA, "L": L_DATA, "F": F_DATA}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("vehicle.energy.electric.level", 30.0),
        ("vehicle.energy.electric.autonomy", 85.0),
        ("vehicle.energy.electric.idealAutonomy", 105.0),
        ("vehicle.energy.electric.health", 80.0),
        ("vehicle.charging.status", "done"),
        ("vehicle.charging.mode", "standard"),
        ("vehicle.charging.power", 7.2),
        ("vehicle.charging.plugged", False),
        ("vehicle.doors.locked", True),  # doors2 = 8: bit 3
        ("vehicle.ignition", True),  # doors1 = 160: bit 7
        ("vehicle.handbrake", False),
        ("vehicle.awake", False),  # doors3 = 1: bit 0 only
        ("vehicle.alarm", False),
        ("vehicle.battery.12v", 12.0),
        ("vehicle.battery.12vCharging", True),  # doors5 = 25: bit 4
        ("vehicle.preconditioning", False),
        ("vehicle.speed", 55.0),
        ("vehicle.odometer", 0.0),
        ("vehicle.temperature.ambient", 25.0),
        ("vehicle.temperature.cabin", None),  # the D is one field short
        ("vehicle.position.latitude", 22.270553),
        ("vehicle.position.longitude", 114.186994),
        ("vehicle.position.gpsLock", True),
        ("vehicle.vin", "VIN123456789012345"),
        ("vehicle.firmware.version", "1.5.0"),
    ],
)
def test_values_of_the_demo_car(path: str, expected: object) -> None:
    assert value_of(path, DEMO) == expected


def test_missing_message_or_field_is_none() -> None:
    for spec in TABLE:
        assert value_of(spec.path, {}) is None
        assert value_of(spec.path, {"S": "", "D": "", "L": "", "F": ""}) is None


def test_bad_numbers_are_none() -> None:
    for text in ("nan", "inf", "-inf", "x", "1e999", "9" * 50, " "):
        assert value_of("vehicle.energy.electric.level", {"S": text}) is None
    assert value_of("vehicle.doors.locked", {"D": "0,8.5"}) is None
    assert value_of("vehicle.doors.locked", {"D": "0,x"}) is None


def test_miles_are_converted() -> None:
    snap = {"S": "50,M,0,0,done,standard,100,100", "D": "0,0,5,0,0,0,125,1000",
            "L": "1,1,0,0,1,1,30"}
    assert value_of("vehicle.energy.electric.autonomy", snap) == pytest.approx(160.9344)
    assert value_of("vehicle.odometer", snap) == pytest.approx(160.9344)  # tenths of miles
    assert value_of("vehicle.tripmeter", snap) == pytest.approx(20.1168)
    assert value_of("vehicle.speed", snap) == pytest.approx(48.28032)


def test_scaled_fields() -> None:
    assert value_of("vehicle.charging.energy", {"S": "50,K,0,0,x,x,0,0,0,0,0,123"}) == \
        pytest.approx(12.3)
    assert value_of("vehicle.odometer", {"D": "0,0,4,0,0,0,0,123456"}) == pytest.approx(12345.6)


def test_alarm_reads_either_firmwares_bit() -> None:
    """doors4: OVMS v2 modules set bit 2 (value 4), v3 modules bit 1 (value 2)."""
    assert value_of("vehicle.alarm", {"D": "0,0,5,0,0,0,0,0,0,0,0,0,0,0,0,4"}) is True
    assert value_of("vehicle.alarm", {"D": "0,0,5,0,0,0,0,0,0,0,0,0,0,0,0,6"}) is True
    assert value_of("vehicle.alarm", {"D": "0,0,5,0,0,0,0,0,0,0,0,0,0,0,0,2"}) is True
    assert value_of("vehicle.alarm", {"D": "0,0,5,0,0,0,0,0,0,0,0,0,0,0,0,1"}) is False


def test_unknown_path_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        value_of("vehicle.nope", DEMO)


def test_parse_literal() -> None:
    assert parse_literal("vehicle.energy.electric.level", " 50 ") == 50.0
    assert parse_literal("vehicle.doors.locked", "TRUE") is True
    assert parse_literal("vehicle.doors.locked", "0") is False
    assert parse_literal("vehicle.charging.status", "charging") == "charging"
    with pytest.raises(ValueError, match="'x' is not a number"):
        parse_literal("vehicle.speed", "x")
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_literal("vehicle.ignition", "2")


def test_table_is_consistent() -> None:
    assert len(PATHS) == len(TABLE)  # no duplicates
    for spec in TABLE:
        assert spec.path.startswith("vehicle.")
        assert re.fullmatch(r"[a-z][A-Za-z0-9.]*", spec.path), spec.path
        assert (spec.unit is None) == (spec.kind != "number"), spec.path
        assert (spec.bit is not None or spec.mask is not None) == (spec.kind == "boolean"
                                                                   and spec.field != "gpslock")
    # /status is the table read as a tree: no path may be a prefix of another.
    for a in PATHS:
        for b in PATHS:
            assert not b.startswith(a + "."), (a, b)


def test_issue_paths_exist() -> None:
    for path in ("vehicle.energy.electric.level", "vehicle.energy.electric.autonomy",
                 "vehicle.charging.status", "vehicle.charging.power", "vehicle.doors.locked",
                 "vehicle.ignition", "vehicle.speed", "vehicle.odometer", "vehicle.battery.12v",
                 "vehicle.temperature.ambient", "vehicle.position.latitude",
                 "vehicle.position.longitude"):
        assert path in PATHS


def test_docs_table_matches() -> None:
    """docs/api-v4.md documents exactly this table (path, message, field, unit)."""
    text = (ROOT / "docs" / "api-v4.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(vehicle\.[^`]+)` \| `([SDLF])` (\w+)[^|]*\| (\w+) \| ([^|]*) \|",
                      text, re.MULTILINE)
    documented = {path: (code, field, kind, unit.strip() or None)
                  for path, code, field, kind, unit in rows}
    expected = {s.path: (s.code, s.field, s.kind, s.unit) for s in TABLE}
    assert documented == expected


def test_position_of() -> None:
    assert datapaths.position_of(DEMO) == (22.270553, 114.186994)
    assert datapaths.position_of({"L": "1,2,0,0,0"}) is None  # no fix
    assert datapaths.position_of({"L": "0,0,0,0,1"}) is None
    assert datapaths.position_of({"L": "91,0"}) is None
    assert datapaths.position_of({}) is None
