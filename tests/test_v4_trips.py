"""relay.v4.trips: trips from a scripted drive, stops, silence, counters, persistence."""

from __future__ import annotations

import json
import math

import pytest

from relay.v4 import datapaths, trips
from relay.v4.trips import Place, Sample, TripConfig, TripState

KM_PER_DEGREE = datapaths.EARTH_RADIUS_KM * math.pi / 180  # along a meridian


def test_haversine_known_figures() -> None:
    # One degree of latitude along a meridian is R * pi / 180 exactly.
    assert datapaths.haversine_km(48.0, 2.0, 49.0, 2.0) == pytest.approx(111.1951, abs=1e-3)
    # Paris (Notre-Dame) to London (Charing Cross): the published great-circle
    # figure is about 343.5 km.
    paris_london = datapaths.haversine_km(48.8530, 2.3499, 51.5074, -0.1278)
    assert paris_london == pytest.approx(343.5, abs=1.0)
    # Antipodes: half the circumference.
    assert datapaths.haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * 6371.0088)
    assert datapaths.haversine_km(10, 10, 10, 10) == 0


def drive(state: TripState, samples: list[Sample], config: TripConfig = trips.DEFAULT
          ) -> tuple[TripState, list[trips.Trip]]:
    done: list[trips.Trip] = []
    for sample in samples:
        state, ended = trips.feed(state, sample, config)
        done.extend(ended)
    return state, done


def northbound(t0: float, lat0: float, minutes: int, *, step: float = 0.01,
               energy0: float = 0.0) -> list[Sample]:
    """Ignition on, one position a minute, ``step`` degrees north each minute."""
    return [Sample(t0 + 60 * k, True, Place(lat0 + step * k, 2.0), energy_used_kwh=energy0
                   + 0.2 * k, soc=80 - k * 0.5) for k in range(minutes + 1)]


def test_scripted_drive() -> None:
    state = TripState()
    # Parked, ignition off.
    state, done = drive(state, [Sample(0, False, Place(48.0, 2.0), odometer_km=1000.0)])
    assert done == [] and state.open is None
    # 30 minutes north at 0.01 degree a minute: 0.3 degree = 33.36 km.
    state, done = drive(state, northbound(100, 48.0, 30))
    assert done == [] and state.open is not None
    # Ignition off at t=2000, still there at 2100, then silence.
    state, done = drive(state, [Sample(2000, False, Place(48.3, 2.0), odometer_km=1033.4),
                                Sample(2100, False)])
    assert done == []
    state, done = trips.tick(state, 2299)
    assert done == []
    state, done = trips.tick(state, 2300)
    assert len(done) == 1 and state.open is None
    trip = done[0]
    assert trip.start_at == 100 and trip.end_at == 2000
    assert trip.duration_s == 1900
    assert trip.start_place == Place(48.0, 2.0)
    assert trip.end_place == Place(48.3, 2.0)
    assert trip.distance_km == pytest.approx(0.3 * KM_PER_DEGREE, rel=1e-6)
    assert trip.distance_km == pytest.approx(33.3585, abs=1e-3)
    assert trip.average_speed_kmh == pytest.approx(trip.distance_km / (1900 / 3600))
    assert trip.energy_used_kwh == pytest.approx(6.0)
    assert trip.soc_start == 80 and trip.soc_end == 65
    assert trip.odometer_start_km == 1000.0 and trip.odometer_end_km == 1033.4


def test_short_stop_continues_the_trip() -> None:
    config = TripConfig(end_after=300)
    state, done = drive(TripState(), northbound(0, 48.0, 10))
    # Off for 4 minutes (< end_after), then on again and another 10 minutes.
    state, done = drive(state, [Sample(700, False), Sample(940, True)], config)
    assert done == []
    state, done = drive(state, northbound(1000, 48.1, 10), config)
    state, done2 = drive(state, [Sample(1700, False)], config)
    state, done3 = trips.tick(state, 2000, config)
    assert done == done2 == [] and len(done3) == 1
    trip = done3[0]
    assert trip.start_at == 0 and trip.end_at == 1700
    assert trip.distance_km == pytest.approx(0.2 * KM_PER_DEGREE, rel=1e-6)


def test_long_stop_makes_two_trips() -> None:
    state, _ = drive(TripState(), northbound(0, 48.0, 5))
    state, done = drive(state, [Sample(400, False)])
    # On again 10 minutes later: the first trip ends (at 400) before the second starts.
    state, done = drive(state, northbound(1000, 48.05, 5))
    assert len(done) == 1
    assert done[0].end_at == 400
    assert state.open is not None and state.open.start_at == 1000


def test_trip_ends_when_the_car_falls_silent() -> None:
    config = TripConfig(max_silence=600)
    state, _ = drive(TripState(), northbound(0, 48.0, 5), config)
    state, done = trips.tick(state, 300 + 599, config)
    assert done == []
    state, done = trips.tick(state, 300 + 600, config)
    assert len(done) == 1 and done[0].end_at == 300


def test_energy_counter_reset_mid_trip() -> None:
    samples = [Sample(0, True, energy_used_kwh=12.0), Sample(60, True, energy_used_kwh=12.5),
               Sample(120, True, energy_used_kwh=0.3),  # the car reset its counter
               Sample(180, True, energy_used_kwh=1.0, energy_recovered_kwh=0.2),
               Sample(240, True, energy_recovered_kwh=0.4), Sample(300, False)]
    state, _ = drive(TripState(), samples)
    _, done = trips.tick(state, 1000)
    assert done[0].energy_used_kwh == pytest.approx(0.5 + 0.3 + 0.7 - 0.2)


def test_no_counters_no_energy_and_no_positions_no_distance() -> None:
    state, _ = drive(TripState(), [Sample(0, True), Sample(60, True), Sample(120, False)])
    _, done = trips.tick(state, 1000)
    assert done[0].energy_used_kwh is None
    assert done[0].distance_km == 0
    assert done[0].start_place is None and done[0].average_speed_kmh is not None


def test_start_place_from_earlier_position() -> None:
    # The L came while parked; the D with ignition on arrives later without a position.
    state, _ = drive(TripState(), [Sample(0, False, Place(45.0, 5.0)), Sample(10, True),
                                   Sample(70, True, Place(45.01, 5.0)), Sample(80, False)])
    _, done = trips.tick(state, 1000)
    assert done[0].start_place == Place(45.0, 5.0)
    assert done[0].distance_km == pytest.approx(0.01 * KM_PER_DEGREE, rel=1e-6)


def test_out_of_order_samples_are_ignored() -> None:
    state, _ = drive(TripState(), northbound(0, 48.0, 3))
    again, done = trips.feed(state, Sample(30, True, Place(60.0, 2.0)))
    assert again == state and done == []


def test_min_distance_drops_tiny_trips() -> None:
    config = TripConfig(min_distance_km=0.5)
    state, _ = drive(TripState(), [Sample(0, True, Place(48.0, 2.0)),
                                   Sample(60, True, Place(48.001, 2.0)), Sample(70, False)],
                     config)
    state, done = trips.tick(state, 1000, config)
    assert done == [] and state.open is None


def test_current_trip() -> None:
    assert trips.current(TripState()) is None
    state, _ = drive(TripState(), northbound(0, 48.0, 2))
    now = trips.current(state)
    assert now is not None and now.start_at == 0 and now.end_at == 120


def test_sample_from_snapshot() -> None:
    snap = {"S": "55,K", "D": "128,0,5,0,0,0,0,123456",
            "L": "48.5,2.25,90,35,1,1,50,0,0,0,1.5,0.25"}
    sample = trips.sample_from_snapshot(1000, snap)
    assert sample == Sample(1000, True, Place(48.5, 2.25), 12345.6, 1.5, 0.25, 55.0)
    assert trips.sample_from_snapshot(0, {}) == Sample(0)
    off = trips.sample_from_snapshot(0, {"D": "0", "L": "48.5,2.25,90,35,0"})
    assert off.ignition is False and off.place is None  # no GPS lock: no place


def test_snapshot_stream_is_idempotent() -> None:
    """Feeding the whole snapshot on every message: repeats add nothing."""
    snap = {"D": "128", "L": "48.0,2.0,0,0,1,1,0,0,0,0,1.0"}
    state = TripState()
    for t in range(0, 300, 10):
        state, _ = trips.feed(state, trips.sample_from_snapshot(t, snap))
    snap = {"D": "128", "L": "48.1,2.0,0,0,1,1,0,0,0,0,3.0"}
    for t in range(300, 600, 10):
        state, _ = trips.feed(state, trips.sample_from_snapshot(t, snap))
    state, _ = trips.feed(state, trips.sample_from_snapshot(600, {**snap, "D": "0"}))
    _, done = trips.tick(state, 2000)
    assert done[0].distance_km == pytest.approx(0.1 * KM_PER_DEGREE, rel=1e-6)
    assert done[0].energy_used_kwh == pytest.approx(2.0)


def test_trip_json() -> None:
    trip = trips.Trip(start_at=1774951200, end_at=1774951200 + 1900,
                      start_place=Place(48.0, 2.0), end_place=Place(48.3, 2.0),
                      distance_km=33.35854, energy_used_kwh=6.0, soc_start=80.0, soc_end=65.0)
    out = trips.trip_json(trip)
    assert out == {
        "startedAt": "2026-03-31T10:00:00Z",
        "endedAt": "2026-03-31T10:31:40Z",
        "startPosition": {"type": "Point", "coordinates": [2, 48]},
        "endPosition": {"type": "Point", "coordinates": [2, 48.3]},
        "distance": {"value": 33.359, "unit": "km"},
        "duration": "PT31M40S",
        "durationSeconds": 1900,
        "energyUsed": {"value": 6, "unit": "kWh"},
        "averageSpeed": {"value": 63.2, "unit": "km/h"},
        "socStart": {"value": 80, "unit": "%"},
        "socEnd": {"value": 65, "unit": "%"},
    }


def test_persistence_roundtrip_mid_trip() -> None:
    state, _ = drive(TripState(), [*northbound(0, 48.0, 10), Sample(700, False)])
    stored = json.loads(json.dumps(trips.state_to_json(state)))
    restored = trips.state_from_json(stored)
    assert restored == state
    _, done_a = trips.tick(state, 5000)
    _, done_b = trips.tick(restored, 5000)
    assert done_a == done_b and len(done_a) == 1
    trip = done_a[0]
    assert trips.trip_from_json(json.loads(json.dumps(trips.trip_to_json(trip)))) == trip
    assert trips.state_from_json(trips.state_to_json(TripState())) == TripState()
