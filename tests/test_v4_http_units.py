"""Unit tests of the pieces behind the v4 HTTP layer: no sockets."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from relay import db
from relay.http.authenticator import bearer_token
from relay.store.sqlite import SQLiteConnection
from relay.v4 import alerts, hal, persist, trips
from relay.v4.actions import ActionTable, action_json
from relay.v4.routes import V
from relay.v4.web import vehicle_href
from tests.conftest import sqlite_only


def test_bearer_token_parsing() -> None:
    assert bearer_token(b"Bearer abc") == "abc"
    assert bearer_token(b"bearer   abc ") == "abc"
    assert bearer_token(b"Basic abc") is None
    assert bearer_token(b"Bearer ") is None
    assert bearer_token(None) is None


def test_maintenance_from_firmware() -> None:
    f = "1.5.0,VIN1,5,1,TRDM,DNET,25000,172800,HW,Wifi"
    body = hal.maintenance_resource(f, received_at=1_700_000_000)
    assert body == {"distanceToService": {"value": 25000, "unit": "km"},
                    "timeToService": {"value": 2, "unit": "d"},
                    "serviceDueAt": hal.rfc3339(1_700_172_800)}
    # Negative means unknown; a unix time is a due date.
    assert hal.maintenance_resource("1,V,5,1,NL,D,-1,-1", received_at=0) == {}
    due = hal.maintenance_resource("1,V,5,1,NL,D,,1700086400", received_at=1_700_000_000)
    assert due["timeToService"] == {"value": 1, "unit": "d"}


def test_vehicle_type_info() -> None:
    assert hal.vehicle_type_info("TRDM") == {"typeCode": "TRDM", "brand": "Tesla",
                                             "model": "Roadster"}
    assert hal.vehicle_type_info("HIONVFL") == {"typeCode": "HIONVFL", "brand": "Hyundai",
                                                "model": "Ioniq"}
    assert hal.vehicle_type_info("XX") == {"typeCode": "XX"}
    assert hal.vehicle_type_info("") == {}


def test_alert_records() -> None:
    car = alerts.alert_from_record(alerts.PUSH_TYPE, 100, "DEMO", "A,Door open", "fr")
    assert car is not None and (car["source"], car["type"], car["text"]) == (
        "vehicle", "alert", "Door open")
    auth = alerts.alert_from_record(alerts.PUSH_TYPE, 100, "DEMO",
                                    "A,Vehicle authentication failed (10.0.0.5)", "de")
    assert auth is not None and auth["key"] == "auth.failed"
    assert auth["text"] == "Authentifizierung für Fahrzeug DEMO von 10.0.0.5 fehlgeschlagen"
    data = alerts.server_record("monitor.callbackFailed", label="x", target="https://h",
                                attempts=4, monitorId="m1")
    server = alerts.alert_from_record(alerts.SERVER_TYPE, 5, "DEMO", data, None)
    assert server is not None and server["monitorId"] == "m1"
    assert server["text"].endswith("failed after 4 attempts")
    assert alerts.alert_from_record(alerts.SERVER_TYPE, 5, "DEMO", "junk", None) is None
    assert alerts.alert_from_record(alerts.SERVER_TYPE, 5, "DEMO",
                                    json.dumps({"key": "nope"}), None) is None
    ref = alerts.parse_alert_id(alerts.alert_id(alerts.SERVER_TYPE, 5, 7))
    assert ref == alerts.AlertRef(alerts.SERVER_TYPE, 5, 7)
    assert alerts.parse_alert_id("x5-7") is None


def test_action_table_is_bounded_and_expires() -> None:
    table = ActionTable(max_size=3, ttl=10)
    first = table.new("DEMO", "demo", "wakeup", 18, now=0)
    for k in range(3):
        table.new("DEMO", "demo", "wakeup", 18, now=k)
    assert len(table) == 3 and table.get(first.actionid, 3) is None  # oldest went first
    pending = table.new("DEMO", "demo", "lock", 20, now=5)
    done = table.new("DEMO", "demo", "wakeup", 18, now=5)
    done.settle(200, "ok", now=6, result=0)
    assert table.get(done.actionid, 15) is done
    assert table.get(done.actionid, 16) is None  # ttl after it settled
    assert table.get(pending.actionid, 1000) is pending  # pending ones wait for the car
    body = action_json(done, vehicle_href("DEMO", "remote", done.actionid))
    assert body["status"] == "done" and body["outcome"] == {"code": 200, "message": "ok",
                                                            "result": 0}


def test_trip_without_a_position_at_ignition_starts_at_the_first_fix() -> None:
    state, _ = trips.feed(trips.TripState(), trips.Sample(0, ignition=True))
    state, _ = trips.feed(state, trips.Sample(10, place=trips.Place(48.0, 2.0)))
    state, _ = trips.feed(state, trips.Sample(20, place=trips.Place(48.1, 2.0)))
    state, _ = trips.feed(state, trips.Sample(30, ignition=False))
    _, [trip] = trips.tick(state, 1000)
    assert trip.start_place == trips.Place(48.0, 2.0)
    assert trip.distance_km == pytest.approx(11.12, abs=0.01)


@sqlite_only("a SQLite file of schema version 2")
def test_schema_3_migrates_from_2_and_purges_telemetry(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = db.connect(path)
    for table in ("v4_monitors", "v4_trips", "v4_trip_state", "v4_telemetry",
                  "v4_callback_pending"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("ALTER TABLE vehicles DROP COLUMN name")  # version 5's
    for column in ("claim_node", "claim_until"):  # version 6's
        conn.execute(f"ALTER TABLE push_pending DROP COLUMN {column}")
    conn.execute("PRAGMA user_version=2")
    conn.close()
    conn = db.connect(path)
    try:
        # Through version 3 (these tables) and 4 (v4_callback_pending) to the latest.
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM v4_callback_pending").fetchone()[0] == 0
        conn.executemany("INSERT INTO v4_telemetry VALUES (?, ?, ?, ?)",
                         [("DEMO", ts, "vehicle.speed", 1.0) for ts in range(10)])
        assert persist.purge_telemetry(SQLiteConnection(conn), now=107, limit=3, retention=100) == 3
        assert persist.purge_telemetry(SQLiteConnection(conn), now=107, limit=3, retention=100) == 3
        assert persist.purge_telemetry(SQLiteConnection(conn), now=107, limit=3, retention=100) == 1
        left = conn.execute("SELECT MIN(ts), COUNT(*) FROM v4_telemetry").fetchone()
        assert tuple(left) == (7, 3)
    finally:
        conn.close()
    assert isinstance(conn, sqlite3.Connection)


def test_vehicle_links_use_the_route_template() -> None:
    assert V.replace("{vehicleid}", "DEMO") == vehicle_href("DEMO")
