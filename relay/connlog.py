"""Recent v2 logins, accepted and refused (with the reason), for operators.

Memory only and bounded by one server-wide ring of the last ``MAX_EVENTS`` logins,
whatever the number of vehicles: per-vehicle lists cost ~0.9 KB for each of
~19,000 idle cars. A vehicle's recent logins are picked from the ring (an
operator's page view, not a hot path). The log lines say the same; this is what
the web console's operator pages show without a log file.
"""

from __future__ import annotations

import time
from collections import deque

import attrs

PER_VEHICLE = 20  # shown per vehicle at most
MAX_EVENTS = 10_000


@attrs.frozen
class LoginEvent:
    at: float  # unix time
    vehicleid: str
    client_type: str  # car, app, batch ...
    address: str
    accepted: bool
    reason: str = ""  # why it was refused


class ConnectionLog:
    def __init__(self, per_vehicle: int = PER_VEHICLE, max_events: int = MAX_EVENTS) -> None:
        self._per_vehicle = per_vehicle
        self._events: deque[LoginEvent] = deque(maxlen=max_events)

    def login(self, vehicleid: str, client_type: str, address: str, *, accepted: bool,
              reason: str = "") -> None:
        # Vehicle ids of refused logins are whatever a client sent: cut to size.
        self._events.append(LoginEvent(time.time(), vehicleid[:32], client_type, address,
                                       accepted, reason[:200]))

    def recent(self, vehicleid: str) -> list[LoginEvent]:
        """The vehicle's logins still in the ring, newest first, at most ``per_vehicle``."""
        found: list[LoginEvent] = []
        for event in reversed(self._events):
            if event.vehicleid == vehicleid:
                found.append(event)
                if len(found) == self._per_vehicle:
                    break
        return found
