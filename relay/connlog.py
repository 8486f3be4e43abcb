"""Recent v2 logins per vehicle, accepted and refused (with the reason), for operators.

Memory only and bounded: the last ``PER_VEHICLE`` logins of at most ``MAX_VEHICLES``
vehicles (the least recently seen vehicle is forgotten first). The log lines say
the same; this is what the web console's operator pages show without a log file.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque

import attrs

PER_VEHICLE = 20
MAX_VEHICLES = 50_000


@attrs.frozen
class LoginEvent:
    at: float  # unix time
    vehicleid: str
    client_type: str  # car, app, batch ...
    address: str
    accepted: bool
    reason: str = ""  # why it was refused


class ConnectionLog:
    def __init__(self, per_vehicle: int = PER_VEHICLE, max_vehicles: int = MAX_VEHICLES) -> None:
        self._per_vehicle = per_vehicle
        self._max_vehicles = max_vehicles
        self._events: OrderedDict[str, deque[LoginEvent]] = OrderedDict()

    def login(self, vehicleid: str, client_type: str, address: str, *, accepted: bool,
              reason: str = "") -> None:
        # Vehicle ids of refused logins are whatever a client sent: cut to size.
        vehicleid = vehicleid[:32]
        events = self._events.get(vehicleid)
        if events is None:
            if len(self._events) >= self._max_vehicles:
                self._events.popitem(last=False)
            events = self._events[vehicleid] = deque(maxlen=self._per_vehicle)
        else:
            self._events.move_to_end(vehicleid)
        events.append(LoginEvent(time.time(), vehicleid, client_type, address, accepted,
                                 reason[:200]))

    def recent(self, vehicleid: str) -> list[LoginEvent]:
        """Newest first."""
        return list(reversed(self._events.get(vehicleid, ())))
