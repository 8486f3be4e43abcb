"""Vehicles the server itself wants fresh data of, besides the apps watching them.

An API v4 monitor waits, for days, for a condition on a vehicle's data ("SOC below
20 %"); it is only as timely as the car's reports. The v4 engine marks the
vehicles that have monitors here, and the v3 gateway (``relay.mqtt``) counts
them in a module's presence, so the module reports at its connected interval
while a monitor waits, as it does while an app is connected.

Kept out of the hub's app count on purpose: for a v2 car that count is ``Z``,
which the v2 protocol defines as the number of interactive apps, and which REST
shows as ``v_apps_connected``. A v2 car with a monitor keeps its own intervals.

One process's view, as the v4 engine's monitors are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("relay.wanted")

# Told (vehicle id, wanted) each time a vehicle starts or stops being wanted.
Listener = Callable[[str, bool], None]


class WantedVehicles:
    def __init__(self) -> None:
        self._wanted: set[str] = set()
        self._listeners: list[Listener] = []

    def set(self, vehicleid: str, wanted: bool) -> None:
        """Mark or unmark ``vehicleid``; listeners hear of changes only."""
        if wanted == (vehicleid in self._wanted):
            return
        if wanted:
            self._wanted.add(vehicleid)
        else:
            self._wanted.discard(vehicleid)
        for listener in list(self._listeners):
            try:
                listener(vehicleid, wanted)
            except Exception:  # a listener's bug must not fail the monitor's request
                log.exception("vehicle=%s wanted listener failed", vehicleid)

    def wanted(self, vehicleid: str) -> bool:
        return vehicleid in self._wanted

    def __len__(self) -> int:
        return len(self._wanted)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)


__all__ = ["Listener", "WantedVehicles"]
