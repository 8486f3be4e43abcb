"""Trips, derived server-side from the car's ignition and position stream.

Feed ``feed`` one ``Sample`` per car message (``sample_from_snapshot`` builds
it from the vehicle's latest ``S``/``D``/``L``), and call ``tick`` on a timer:
a parked car usually stops sending, so the trip has to end without a message.

- A trip starts when the ignition is seen on (``D`` doors1 bit 7).
- It ends once the ignition has been off for ``end_after`` seconds; a shorter
  stop (a red light with start-stop, a quick errand) continues the same trip.
  The end time is when the ignition went off, not when we noticed.
- A car that goes silent with the ignition on (lost signal, module reset)
  ends its trip at its last sample after ``max_silence`` seconds.
- Distance is the sum of great-circle legs between successive positions with
  a GPS fix. Energy is the net of the car's ``L`` energy counters over the
  trip; the counters are per trip in the car and may reset at ignition on, so
  a counter that goes down is taken as restarted from zero.

Feeding the whole snapshot on every message is safe: an unchanged position
adds no distance, an unchanged counter no energy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from relay.v4 import datapaths, hal
from relay.v4.durations import format_duration


@attrs.frozen
class TripConfig:
    end_after: float = 300.0
    max_silence: float = 3600.0
    # Trips shorter than this are dropped: moving the car in the driveway is not a trip.
    min_distance_km: float = 0.0


DEFAULT = TripConfig()


@attrs.frozen
class Place:
    latitude: float
    longitude: float


@attrs.frozen
class Sample:
    at: float
    ignition: bool | None = None
    place: Place | None = None
    odometer_km: float | None = None
    energy_used_kwh: float | None = None  # the car's counters (L energyused/energyrecd)
    energy_recovered_kwh: float | None = None
    soc: float | None = None


@attrs.frozen
class Trip:
    start_at: float
    end_at: float
    start_place: Place | None
    end_place: Place | None
    distance_km: float
    energy_used_kwh: float | None  # net: used minus recovered; None without counters
    soc_start: float | None = None
    soc_end: float | None = None
    odometer_start_km: float | None = None
    odometer_end_km: float | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_at - self.start_at)

    @property
    def average_speed_kmh(self) -> float | None:
        hours = self.duration_s / 3600
        return self.distance_km / hours if hours > 0 else None


@attrs.frozen
class _Counter:
    """Accumulates increments of a counter the car may reset to zero."""

    last: float | None = None
    total: float = 0.0
    seen: bool = False

    def feed(self, value: float | None) -> _Counter:
        if value is None:
            return self
        if self.last is None:
            return _Counter(value, self.total, True)
        step = value - self.last if value >= self.last else value
        return _Counter(value, self.total + step, True)


@attrs.frozen
class OpenTrip:
    start_at: float
    start_place: Place | None
    last_place: Place | None
    last_at: float
    distance_km: float = 0.0
    used: _Counter = _Counter()
    recovered: _Counter = _Counter()
    soc_start: float | None = None
    odometer_start_km: float | None = None
    off_since: float | None = None  # ignition off since then (still within end_after)


@attrs.frozen
class TripState:
    """What the builder remembers (persist it with ``state_to_json``)."""

    ignition: bool | None = None
    last_at: float | None = None
    # Latest known values, for the start of a trip whose first sample lacks them.
    place: Place | None = None
    odometer_km: float | None = None
    energy_used_kwh: float | None = None
    energy_recovered_kwh: float | None = None
    soc: float | None = None
    open: OpenTrip | None = None


def sample_from_snapshot(at: float, snapshot: datapaths.Snapshot) -> Sample:
    """A sample from the vehicle's latest messages (code -> data)."""
    position = datapaths.position_of(snapshot)

    def number(path: str) -> float | None:
        value = datapaths.value_of(path, snapshot)
        return value if isinstance(value, float) else None

    ignition = datapaths.value_of("vehicle.ignition", snapshot)
    return Sample(
        at=at,
        ignition=ignition if isinstance(ignition, bool) else None,
        place=Place(*position) if position is not None else None,
        odometer_km=number("vehicle.odometer"),
        energy_used_kwh=number("vehicle.energy.used"),
        energy_recovered_kwh=number("vehicle.energy.recovered"),
        soc=number("vehicle.energy.electric.level"),
    )


def _close(state: TripState, trip: OpenTrip, end_at: float, config: TripConfig
           ) -> tuple[TripState, list[Trip]]:
    energy: float | None = None
    if trip.used.seen:
        energy = trip.used.total - (trip.recovered.total if trip.recovered.seen else 0.0)
    done = Trip(
        start_at=trip.start_at, end_at=max(end_at, trip.start_at), start_place=trip.start_place,
        end_place=trip.last_place, distance_km=trip.distance_km, energy_used_kwh=energy,
        soc_start=trip.soc_start, soc_end=state.soc,
        odometer_start_km=trip.odometer_start_km, odometer_end_km=state.odometer_km,
    )
    closed = attrs.evolve(state, open=None)
    if done.distance_km < config.min_distance_km:
        return closed, []
    return closed, [done]


def tick(state: TripState, now: float, config: TripConfig = DEFAULT
         ) -> tuple[TripState, list[Trip]]:
    """End the open trip if the car has been off (or silent) long enough by ``now``."""
    trip = state.open
    if trip is None:
        return state, []
    if trip.off_since is not None and now - trip.off_since >= config.end_after:
        return _close(state, trip, trip.off_since, config)
    if trip.off_since is None and now - trip.last_at >= config.max_silence:
        return _close(state, trip, trip.last_at, config)
    return state, []


def feed(state: TripState, sample: Sample, config: TripConfig = DEFAULT
         ) -> tuple[TripState, list[Trip]]:
    """Take one sample; return the new state and any trips that ended."""
    if state.last_at is not None and sample.at < state.last_at:
        # Out of order (a delayed historical message): the stream has moved on.
        return state, []
    state, ended = tick(state, sample.at, config)
    ignition = sample.ignition if sample.ignition is not None else state.ignition
    place = sample.place if sample.place is not None else state.place
    used = sample.energy_used_kwh if sample.energy_used_kwh is not None \
        else state.energy_used_kwh
    recovered = sample.energy_recovered_kwh if sample.energy_recovered_kwh is not None \
        else state.energy_recovered_kwh
    odometer = sample.odometer_km if sample.odometer_km is not None else state.odometer_km
    soc = sample.soc if sample.soc is not None else state.soc

    trip = state.open
    if trip is None and ignition:
        trip = OpenTrip(
            start_at=sample.at, start_place=place, last_place=place, last_at=sample.at,
            used=_Counter().feed(used), recovered=_Counter().feed(recovered),
            soc_start=soc, odometer_start_km=odometer,
        )
    elif trip is not None:
        distance = trip.distance_km
        if sample.place is not None and trip.last_place is not None:
            distance += datapaths.haversine_km(trip.last_place.latitude,
                                               trip.last_place.longitude,
                                               sample.place.latitude, sample.place.longitude)
        off_since: float | None
        if ignition:
            off_since = None
        else:
            off_since = trip.off_since if trip.off_since is not None else sample.at
        trip = attrs.evolve(
            trip,
            # A trip that started before any position was known starts at the first one.
            start_place=trip.start_place if trip.start_place is not None else sample.place,
            last_place=sample.place if sample.place is not None else (trip.last_place or place),
            last_at=sample.at, distance_km=distance,
            used=trip.used.feed(sample.energy_used_kwh),
            recovered=trip.recovered.feed(sample.energy_recovered_kwh),
            off_since=off_since,
        )
    new_state = TripState(ignition, sample.at, place, odometer, used, recovered, soc, trip)
    return new_state, ended


def current(state: TripState) -> Trip | None:
    """The trip in progress (ending now, as far as we know), or None."""
    trip = state.open
    if trip is None:
        return None
    end = trip.off_since if trip.off_since is not None else trip.last_at
    _, done = _close(state, trip, end, DEFAULT)
    return done[0] if done else None


# --- JSON -----------------------------------------------------------------------------


def _point(place: Place | None) -> dict[str, Any] | None:
    if place is None:
        return None
    return {"type": "Point", "coordinates": [hal.json_number(place.longitude),
                                             hal.json_number(place.latitude)]}


def _quantity(value: float | None, unit: str, digits: int) -> dict[str, Any] | None:
    if value is None:
        return None
    return {"value": hal.json_number(round(value, digits)), "unit": unit}


def trip_json(trip: Trip) -> dict[str, Any]:
    """The API resource of a trip (positions as GeoJSON Points; missing values omitted)."""
    out: dict[str, Any] = {
        "startedAt": hal.rfc3339(trip.start_at),
        "endedAt": hal.rfc3339(trip.end_at),
        "startPosition": _point(trip.start_place),
        "endPosition": _point(trip.end_place),
        "distance": _quantity(trip.distance_km, "km", 3),
        "duration": format_duration(round(trip.duration_s)),
        "durationSeconds": round(trip.duration_s),
        "energyUsed": _quantity(trip.energy_used_kwh, "kWh", 3),
        "averageSpeed": _quantity(trip.average_speed_kmh, "km/h", 1),
        "socStart": _quantity(trip.soc_start, "%", 1),
        "socEnd": _quantity(trip.soc_end, "%", 1),
        "odometerStart": _quantity(trip.odometer_start_km, "km", 1),
        "odometerEnd": _quantity(trip.odometer_end_km, "km", 1),
    }
    return {k: v for k, v in out.items() if v is not None}


def trip_to_json(trip: Trip) -> dict[str, Any]:
    """Lossless, for the store."""
    return attrs.asdict(trip)


def trip_from_json(data: Mapping[str, Any]) -> Trip:
    fields = dict(data)
    for key in ("start_place", "end_place"):
        fields[key] = Place(**fields[key]) if fields.get(key) else None
    return Trip(**fields)


def state_to_json(state: TripState) -> dict[str, Any]:
    return attrs.asdict(state)


def state_from_json(data: Mapping[str, Any]) -> TripState:
    fields = dict(data)
    fields["place"] = Place(**fields["place"]) if fields.get("place") else None
    raw_open = fields.get("open")
    if raw_open:
        trip = dict(raw_open)
        for key in ("start_place", "last_place"):
            trip[key] = Place(**trip[key]) if trip.get(key) else None
        trip["used"] = _Counter(**trip["used"])
        trip["recovered"] = _Counter(**trip["recovered"])
        fields["open"] = OpenTrip(**trip)
    return TripState(**fields)
