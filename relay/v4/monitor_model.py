"""A monitor as the server holds it: the limits on what one may ask, and its parts.

``relay.v4.monitor_parse`` builds one from a request body (and writes it back);
``relay.v4.monitors`` evaluates it. Plain frozen data, no behaviour.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import attrs

from relay.v4 import datapaths, expr

# --- limits ---------------------------------------------------------------------------
# Bounds on what one monitor may ask, so a single body cannot make the server
# keep huge state or call out at a high rate.
MAX_TRIGGERS = 20
MAX_WINDOWS = 20
MAX_LABEL = 200
MAX_REFRESH = 7 * 86400
MAX_RETRIES = 10
MAX_RETRY_DELAY = 86400
MAX_BATCH_SIZE = 100
MAX_BATCH_WINDOW = 86400
MAX_ATTRIBUTES = 20
MAX_URL = 2000
MAX_RADIUS_KM = 20038.0  # half of the equator: every point of Earth is closer than this

EXTENDED = ("vehicle.alerts", "vehicle.status", "vehicle.position", "vehicle.telemetry")
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
OPS = ("lowerThan", "greaterThan", "equals", "notEquals", "between")
POLICIES = ("None", "Always", "Transient")

# Members a client may send back unchanged from a GET (HAL and bookkeeping).
READ_ONLY = frozenset({"_links", "_embedded", "id", "createdAt", "updatedAt", "status"})

Transition = Literal["In", "Out"]
Recurrence = Literal["Daily", "Weekly"]


# --- model ----------------------------------------------------------------------------


@attrs.frozen
class Circle:
    latitude: float
    longitude: float
    radius_km: float


@attrs.frozen
class ZoneTrigger:
    transition: Transition
    circle: Circle


@attrs.frozen
class TimeWindow:
    recurrence: Recurrence
    start: str  # as the client wrote it, e.g. "PT14H30M"
    duration: str
    start_s: float  # offset from local midnight, seconds (< 1 day)
    duration_s: float
    days: tuple[int, ...] = ()  # 0 = Monday; only for Weekly


@attrs.frozen
class TimeTrigger:
    windows: tuple[TimeWindow, ...]
    tz: str = "UTC"


@attrs.frozen
class DataTrigger:
    path: str
    op: str
    raw: tuple[str, ...]  # the values as given
    values: tuple[datapaths.Value, ...]  # parsed to the path's kind


Condition: TypeAlias = ZoneTrigger | TimeTrigger | DataTrigger


@attrs.frozen
class Trigger:
    name: str
    condition: Condition


@attrs.frozen
class RetryPolicy:
    policy: str = "Always"
    max_retry_number: int = 3
    retry_delay: int = 60


@attrs.frozen
class BatchNotify:
    size: int = 1
    time_window: int = 0


@attrs.frozen
class CallbackAttribute:
    type: Literal["Query", "Header"]
    key: str
    value: str


@attrs.frozen
class Callback:
    target: str
    name: str = ""
    attributes: tuple[CallbackAttribute, ...] = ()


@attrs.frozen
class Monitor:
    label: str
    callback: Callback
    triggers: tuple[Trigger, ...]
    expression_text: str
    expression: expr.Expr = attrs.field(eq=False)
    refresh_event: int = 0
    retry: RetryPolicy = RetryPolicy()
    batch: BatchNotify = BatchNotify()
    extended: tuple[str, ...] = ()

    def trigger(self, name: str) -> Trigger:
        for trig in self.triggers:
            if trig.name == name:
                return trig
        raise KeyError(name)
