"""Alert resources from stored historical records (no I/O).

Two record types feed ``/alerts``:

- ``*-Log-Notification``: the push dispatcher stores one for every car ``P``
  (data ``<type letter>,<text>``), and for the server's own "Vehicle
  authentication failed/successful (<address>)" notices, which are shown as
  the server alerts ``auth.failed``/``auth.succeeded`` (translated).
- ``*-Log-V4Alert``: alerts the v4 engine raises itself (data: JSON
  ``{"key": ..., "params": {...}}``), e.g. ``monitor.callbackFailed``.

An alert's id is ``<n|s><unix time>-<record number>``: unique per vehicle, and
enough to find the record again for ``GET .../alerts/{id}``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

from relay.v4 import hal

PUSH_TYPE = "*-Log-Notification"
SERVER_TYPE = "*-Log-V4Alert"
_PREFIX = {PUSH_TYPE: "n", SERVER_TYPE: "s"}
_AUTH_RE = re.compile(r"Vehicle authentication (failed|successful) \((.{0,200})\)")
_ID_RE = re.compile(r"([ns])(\d{1,12})-(\d{1,6})")


@attrs.frozen
class AlertRef:
    htype: str
    ts: int
    recordnumber: int


def alert_id(htype: str, ts: int, recordnumber: int) -> str:
    return f"{_PREFIX[htype]}{ts}-{recordnumber}"


def parse_alert_id(text: str) -> AlertRef | None:
    match = _ID_RE.fullmatch(text)
    if match is None:
        return None
    htype = PUSH_TYPE if match.group(1) == "n" else SERVER_TYPE
    return AlertRef(htype, int(match.group(2)), int(match.group(3)))


def server_record(key: str, **params: object) -> str:
    """The data of a ``*-Log-V4Alert`` record."""
    return json.dumps({"key": key, "params": params}, sort_keys=True)


def alert_from_record(htype: str, ts: int, vehicleid: str, data: str,
                      locale: str | None) -> dict[str, Any] | None:
    """The alert resource (without HAL members) of one record; None if unreadable."""
    if htype == PUSH_TYPE:
        letter, _, text = data.partition(",")
        auth = _AUTH_RE.fullmatch(text) if letter == "A" else None
        if auth is not None:
            key = "auth.failed" if auth.group(1) == "failed" else "auth.succeeded"
            return hal.server_alert(key, occurred_at=ts, locale=locale, vehicleid=vehicleid,
                                    peer=auth.group(2))
        return hal.alert_from_push(letter[:1] + text, occurred_at=ts, locale=locale)
    try:
        record = json.loads(data)
        key = record["key"]
        params = dict(record.get("params") or {})
        if key not in hal.ALERT_TEXTS:
            return None
        params.setdefault("vehicleid", vehicleid)
        alert = hal.server_alert(key, occurred_at=ts, locale=locale, **params)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if "monitorId" in params:
        alert["monitorId"] = params["monitorId"]
    return alert
