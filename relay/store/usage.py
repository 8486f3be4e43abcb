"""Usage repository: traffic per vehicle and UTC day (car and app, in and out)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from relay.store.backend import upsert_sql

if TYPE_CHECKING:
    from relay.store.backend import Connection

ADD_USAGE = upsert_sql("usage", ("vehicleid", "day"),
                       ("vehicleid", "day", "car_rx", "car_tx", "app_rx", "app_tx"),
                       add=("car_rx", "car_tx", "app_rx", "app_tx"))


def utc_day(when: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(when))


def read_usage(conn: Connection, vehicleid: str, first_day: str) -> dict[str, list[int]]:
    rows = conn.execute(
        "SELECT day, car_rx, car_tx, app_rx, app_tx FROM usage WHERE vehicleid=? AND day>=?",
        (vehicleid, first_day),
    ).fetchall()
    return {r[0]: [int(r[1]), int(r[2]), int(r[3]), int(r[4])] for r in rows}
