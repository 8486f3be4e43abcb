"""A simulated electric vehicle: pure state, time steps, v2 messages and command handling.

No I/O and no clock here: ``step(state, dt)`` advances the car by ``dt`` seconds
of simulated time, ``messages(state)`` renders what a module would report, and
``handle_command(state, number, params)`` applies an app's command. ``ovms-car``
drives this model over a socket; the unit tests drive it directly.

The car cycles through a day in its life: it drives a loop (position moving
along the route, SOC falling with distance), parks and charges when the battery
runs low, rests, and drives again. Everything it reports is derived from one
state, so the messages agree with each other: the doors bitfield says
"charging" exactly when ``S`` does, ``D`` and ``L`` carry the same speed and trip,
``W`` and ``Y`` the same tyre pressures.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence

import attrs

from protocol import Message

# A 40 kWh pack at 160 Wh/km: 250 km of ideal range, SOC falls 0.4 % per km.
BATTERY_KWH = 40.0
CONSUMPTION_KWH_PER_KM = 0.16
IDEAL_RANGE_KM = BATTERY_KWH / CONSUMPTION_KWH_PER_KM
# The estimated range is what the driver really gets: below the ideal one.
ESTIMATE_FACTOR = 0.85
LINE_VOLTAGE = 230.0
MAX_CHARGE_CURRENT = 32
# A trip ends after this distance (or when the battery is nearly flat); parked with
# this little charge left, the driver plugs in.
TRIP_KM = 25.0
CHARGE_BELOW_SOC = 35.0
FLAT_SOC = 10.0
# Charge mode number -> (name the module reports, SOC the charge stops at).
CHARGE_MODES: dict[int, tuple[str, float]] = {
    0: ("standard", 90.0),
    1: ("storage", 60.0),
    3: ("range", 100.0),
    4: ("performance", 100.0),
}
REST_AFTER_CHARGE_S = 15 * 60.0
# v2 module firmware lists 16 features and 32 parameters (commands 1 and 3).
FEATURES_MAX = 16
PARAMS_MAX = 32
KPA_PER_PSI = 6.894757293168361
# Historical records live this long on the server (the module's default for logs).
RECORD_LIFETIME_S = 31 * 86400
# Commands this model implements; ``V`` advertises exactly these.
CAPABILITIES = "C1-7,C10-12,C15-18,C20-24"
IMPLEMENTED_COMMANDS = frozenset({1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 15, 16, 17, 18,
                                  20, 21, 22, 23, 24})
COMMAND_NAMES: dict[int, str] = {
    1: "list features", 2: "set feature", 3: "list parameters", 4: "set parameter",
    5: "reboot", 6: "charge alert", 7: "text command", 10: "set charge mode",
    11: "start charge", 12: "stop charge", 15: "set charge current",
    16: "set charge mode and current", 17: "charge timer", 18: "wake up",
    19: "wake temperature system", 20: "lock", 21: "valet on", 22: "unlock",
    23: "valet off", 24: "homelink", 25: "cooldown", 30: "data usage",
    31: "historical summary", 32: "historical records", 40: "send SMS", 41: "USSD",
    49: "modem command",
}
# Command results (PROTOCOL.md section 4).
OK, FAILED, UNSUPPORTED = 0, 1, 2


class Mode(enum.Enum):
    PARKED = "parked"
    DRIVING = "driving"
    CHARGING = "charging"


Point = tuple[float, float]

# A loop through Hong Kong Island's north shore (the reference demo car's home), ~9 km.
DEFAULT_ROUTE: tuple[Point, ...] = (
    (22.270553, 114.186994),
    (22.280310, 114.185240),
    (22.283470, 114.170330),
    (22.284370, 114.158300),
    (22.281780, 114.152630),
    (22.276900, 114.160240),
    (22.275520, 114.172480),
    (22.271960, 114.181140),
)


def distance_km(a: Point, b: Point) -> float:
    """Great-circle (haversine) distance."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def bearing_deg(a: Point, b: Point) -> float:
    """Initial compass bearing from ``a`` to ``b``, 0-360."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    y = math.sin(lon2 - lon1) * math.cos(lat2)
    x = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(lon2 - lon1)
    return math.degrees(math.atan2(y, x)) % 360.0


@attrs.frozen
class Route:
    """A closed loop of waypoints; positions are distances along it, wrapping around."""

    points: tuple[Point, ...] = DEFAULT_ROUTE
    legs: tuple[float, ...] = attrs.field(init=False)

    @legs.default
    def _legs(self) -> tuple[float, ...]:
        if len(self.points) < 2:
            raise ValueError("a route needs at least two points")
        n = len(self.points)
        return tuple(distance_km(self.points[i], self.points[(i + 1) % n]) for i in range(n))

    @property
    def length_km(self) -> float:
        return sum(self.legs)

    def leg_at(self, pos_km: float) -> tuple[int, float]:
        """(leg index, fraction along that leg) at ``pos_km`` from the start."""
        pos = pos_km % self.length_km
        for i, leg in enumerate(self.legs):
            if pos < leg or i == len(self.legs) - 1:
                return i, min(1.0, pos / leg) if leg else 0.0
            pos -= leg
        raise AssertionError("unreachable")

    def position(self, pos_km: float) -> tuple[float, float, float]:
        """(latitude, longitude, heading) at ``pos_km``; straight lines between waypoints
        are close enough at city scale."""
        i, f = self.leg_at(pos_km)
        a, b = self.points[i], self.points[(i + 1) % len(self.points)]
        return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, bearing_deg(a, b)

    def speed_kph(self, pos_km: float) -> float:
        """Traffic: each leg has its own cruising speed, 30-70 km/h."""
        i, _ = self.leg_at(pos_km)
        return 30.0 + (i * 17 % 5) * 10.0


@attrs.frozen
class HistoricalRecord:
    """A record for the server's log (sent as ``h``): its type, number, data and time."""

    rtype: str
    number: int
    data: str
    sim_time: float


@attrs.frozen
class VehicleState:
    vin: str = "SIMVIN00000000001"
    mode: Mode = Mode.PARKED
    sim_time: float = 0.0  # seconds since the simulation started
    soc: float = 80.0
    odometer_km: float = 12345.0
    trip_km: float = 0.0
    route_km: float = 0.0  # position along the route
    speed_kph: float = 0.0
    latitude: float = DEFAULT_ROUTE[0][0]
    longitude: float = DEFAULT_ROUTE[0][1]
    heading: float = 0.0
    altitude: float = 30.0
    locked: bool = True
    valet: bool = False
    awake: bool = False
    charge_mode: int = 0
    charge_limit_a: int = MAX_CHARGE_CURRENT
    charge_state: str = "done"
    charge_kwh: float = 0.0
    charge_minutes: float = 0.0
    charge_timer_mode: int = 0
    charge_timer_start: int = 0
    mode_since: float = 0.0  # sim_time the current mode began
    trip_start_soc: float = 80.0
    charge_start_soc: float = 80.0
    temp_ambient: float = 25.0
    temp_battery: float = 26.0
    temp_motor: float = 25.0
    temp_pem: float = 25.0
    temp_charger: float = 25.0
    temp_cabin: float = 24.0
    tyre_psi: tuple[float, float, float, float] = (36.0, 36.0, 38.0, 38.0)  # FL FR RL RR
    tyre_temp: tuple[float, float, float, float] = (25.0, 25.0, 25.0, 25.0)
    v12: float = 12.6
    features: tuple[int, ...] = (0,) * FEATURES_MAX
    params: tuple[str, ...] = ("",) * PARAMS_MAX
    homelink_presses: int = 0
    reboots: int = 0
    firmware: str = "3.3.004-sim"
    network: str = "SIMNET"
    signal: int = 18
    records: int = 0  # historical records written so far (their record numbers)

    @property
    def charging(self) -> bool:
        return self.mode is Mode.CHARGING

    @property
    def driving(self) -> bool:
        return self.mode is Mode.DRIVING

    @property
    def charge_target_soc(self) -> float:
        return CHARGE_MODES.get(self.charge_mode, CHARGE_MODES[0])[1]

    @property
    def charge_current(self) -> float:
        return float(min(self.charge_limit_a, MAX_CHARGE_CURRENT)) if self.charging else 0.0

    @property
    def charge_power_kw(self) -> float:
        return LINE_VOLTAGE * self.charge_current / 1000.0

    @property
    def ideal_range_km(self) -> float:
        return IDEAL_RANGE_KM * self.soc / 100.0


def new_vehicle(index: int = 0, route: Route | None = None) -> VehicleState:
    """A plausible car, different per ``index`` (start position, SOC, VIN) but deterministic."""
    route = route or Route()
    start = (index * 1.37) % route.length_km
    lat, lon, heading = route.position(start)
    return VehicleState(
        vin=f"SIMVIN{index:011d}",
        soc=45.0 + (index * 7) % 50,
        odometer_km=10000.0 + (index * 977) % 40000,
        route_km=start,
        latitude=lat,
        longitude=lon,
        heading=heading,
    )


# --------------------------------------------------------------------------- time


def step(state: VehicleState, dt: float, route: Route | None = None,
         ) -> tuple[VehicleState, list[HistoricalRecord]]:
    """Advance ``dt`` seconds of simulated time; returns the new state and any
    historical records completed in that time (a trip, a charge)."""
    route = route or Route()
    records: list[HistoricalRecord] = []
    remaining = max(0.0, dt)
    # Sub-steps of at most a minute keep the transitions (battery low, charge done)
    # within a minute of where they belong, whatever ``dt`` the caller uses.
    while remaining > 0:
        chunk = min(remaining, 60.0)
        state, done = _substep(state, chunk, route)
        records.extend(done)
        remaining -= chunk
    return state, records


def _substep(
    s: VehicleState, dt: float, route: Route
) -> tuple[VehicleState, list[HistoricalRecord]]:
    now = s.sim_time + dt
    records: list[HistoricalRecord] = []
    if s.mode is Mode.DRIVING:
        speed = route.speed_kph(s.route_km)
        km = speed * dt / 3600.0
        pos = s.route_km + km
        lat, lon, heading = route.position(pos)
        soc = max(0.0, s.soc - km * CONSUMPTION_KWH_PER_KM / BATTERY_KWH * 100.0)
        warm = min(1.0, dt / 600.0)  # components warm towards their driving temperature
        s = attrs.evolve(
            s, sim_time=now, route_km=pos % route.length_km, speed_kph=speed, latitude=lat,
            longitude=lon, heading=heading, soc=soc, odometer_km=s.odometer_km + km,
            trip_km=s.trip_km + km,
            temp_motor=_towards(s.temp_motor, 60.0, warm),
            temp_pem=_towards(s.temp_pem, 50.0, warm),
            temp_battery=_towards(s.temp_battery, 32.0, warm),
            tyre_temp=tuple(_towards(t, 38.0, warm) for t in s.tyre_temp),  # type: ignore[arg-type]
            tyre_psi=tuple(_towards(p, 39.0 if i > 1 else 37.0, warm)
                           for i, p in enumerate(s.tyre_psi)),  # type: ignore[arg-type]
        )
        if s.trip_km >= TRIP_KM or s.soc <= FLAT_SOC:
            s, trip = _end_trip(s)
            records.append(trip)
            if s.soc <= CHARGE_BELOW_SOC:
                s = _start_charge(s)
        return s, records
    cool = min(1.0, dt / 1800.0)
    s = attrs.evolve(
        s, sim_time=now, speed_kph=0.0,
        temp_motor=_towards(s.temp_motor, s.temp_ambient, cool),
        temp_pem=_towards(s.temp_pem, s.temp_ambient, cool),
        tyre_temp=tuple(_towards(t, s.temp_ambient, cool) for t in s.tyre_temp),  # type: ignore[arg-type]
        tyre_psi=tuple(_towards(p, 38.0 if i > 1 else 36.0, cool)
                       for i, p in enumerate(s.tyre_psi)),  # type: ignore[arg-type]
    )
    if s.mode is Mode.CHARGING:
        kwh = s.charge_power_kw * dt / 3600.0
        soc = min(100.0, s.soc + kwh / BATTERY_KWH * 100.0)
        s = attrs.evolve(
            s, soc=soc, charge_kwh=s.charge_kwh + kwh, charge_minutes=s.charge_minutes + dt / 60,
            temp_charger=_towards(s.temp_charger, 45.0, min(1.0, dt / 600.0)),
            temp_battery=_towards(s.temp_battery, 30.0, min(1.0, dt / 600.0)),
        )
        if s.soc >= s.charge_target_soc:
            s, rec = _end_charge(s, "done")
            records.append(rec)
        return s, records
    # Parked: after a rest, drive again (if the battery allows; else charge).
    if now - s.mode_since >= REST_AFTER_CHARGE_S and not s.valet:
        s = _start_charge(s) if s.soc <= CHARGE_BELOW_SOC else _start_drive(s)
    return s, records


def _towards(value: float, target: float, fraction: float) -> float:
    return value + (target - value) * fraction


def _start_drive(s: VehicleState) -> VehicleState:
    return attrs.evolve(s, mode=Mode.DRIVING, mode_since=s.sim_time, locked=False, awake=True,
                        trip_km=0.0, trip_start_soc=s.soc)


def _end_trip(s: VehicleState) -> tuple[VehicleState, HistoricalRecord]:
    duration = s.sim_time - s.mode_since
    rec = HistoricalRecord(
        "*-LOG-Trip", s.records + 1,
        f"{s.trip_km:.1f},{s.trip_start_soc:.1f},{s.soc:.1f},{duration:.0f},{s.odometer_km:.1f}",
        s.sim_time,
    )
    s = attrs.evolve(s, mode=Mode.PARKED, mode_since=s.sim_time, speed_kph=0.0, locked=True,
                     awake=False, records=s.records + 1)
    return s, rec


def _start_charge(s: VehicleState) -> VehicleState:
    return attrs.evolve(s, mode=Mode.CHARGING, mode_since=s.sim_time, speed_kph=0.0,
                        charge_state="charging", charge_kwh=0.0, charge_minutes=0.0,
                        charge_start_soc=s.soc, awake=True)


def _end_charge(s: VehicleState, how: str) -> tuple[VehicleState, HistoricalRecord]:
    rec = HistoricalRecord(
        "*-LOG-Charge", s.records + 1,
        f"{s.charge_kwh:.2f},{s.charge_start_soc:.1f},{s.soc:.1f},{s.charge_minutes:.0f},{how}",
        s.sim_time,
    )
    s = attrs.evolve(s, mode=Mode.PARKED, mode_since=s.sim_time, charge_state=how,
                     awake=False, records=s.records + 1)
    return s, rec


# --------------------------------------------------------------------------- messages


def _f(value: float, digits: int = 0) -> str:
    return f"{value:.{digits}f}"


def _bits(*flags: tuple[int, bool]) -> str:
    return str(sum(1 << bit for bit, on in flags if on))


def status(s: VehicleState) -> Message:
    name, _ = CHARGE_MODES.get(s.charge_mode, CHARGE_MODES[0])
    state_n = {"charging": 1, "done": 4, "stopped": 21}.get(s.charge_state, 0)
    etr_full = 0
    etr_limit = 0
    if s.charging and s.charge_power_kw > 0:
        per_pct_min = BATTERY_KWH / 100.0 / s.charge_power_kw * 60.0
        etr_full = round((100.0 - s.soc) * per_pct_min)
        etr_limit = round(max(0.0, s.charge_target_soc - s.soc) * per_pct_min)
    battv = 340.0 + 60.0 * s.soc / 100.0
    batt_current = (-s.charge_power_kw * 1000.0 / battv if s.charging
                    else s.speed_kph * CONSUMPTION_KWH_PER_KM * 1000.0 / battv)
    fields = [
        _f(s.soc, 1), "K", _f(LINE_VOLTAGE if s.charging else 0), _f(s.charge_current),
        s.charge_state, name, _f(s.ideal_range_km), _f(s.ideal_range_km * ESTIMATE_FACTOR),
        str(s.charge_limit_a), _f(s.charge_minutes), "0", _f(s.charge_kwh * 10),
        "7" if s.charging else "0", str(state_n), str(s.charge_mode), str(s.charge_timer_mode),
        str(s.charge_timer_start), "0", "160", str(etr_full), str(etr_limit),
        _f(IDEAL_RANGE_KM * s.charge_target_soc / 100.0), _f(s.charge_target_soc), "0",
        _f(s.temp_battery), "0", str(etr_limit), "0", "0", _f(IDEAL_RANGE_KM), "type2",
        _f(s.charge_power_kw, 1), _f(battv, 1), "98", _f(s.charge_power_kw * 1.05, 1), "95",
        _f(batt_current, 1), "0", _f(s.charge_kwh * 1.05, 1), "0", _f(BATTERY_KWH, 1), "0",
    ]
    return Message("S", ",".join(fields))


def doors(s: VehicleState) -> Message:
    doors1 = _bits((2, s.charging), (3, s.charging), (4, s.charging), (6, not s.driving),
                   (7, s.driving))
    doors2 = _bits((3, s.locked), (4, s.valet))
    doors3 = _bits((1, s.awake or s.driving or s.charging))
    doors5 = _bits((4, s.driving or s.charging))
    v12 = s.v12 + (1.2 if (s.driving or s.charging) else 0.0)
    parked = 0 if s.driving else int(s.sim_time - s.mode_since)
    fields = [
        doors1, doors2, "4" if s.locked else "5", _f(s.temp_pem), _f(s.temp_motor),
        _f(s.temp_battery), _f(s.trip_km * 10), _f(s.odometer_km * 10), _f(s.speed_kph),
        str(parked), _f(s.temp_ambient), doors3, "1", "1", _f(v12, 1), "0", _f(s.v12, 1),
        doors5, _f(s.temp_charger), _f(1.5 if (s.driving or s.charging) else 0.2, 1),
        _f(s.temp_cabin),
    ]
    return Message("D", ",".join(fields))


def location(s: VehicleState) -> Message:
    power = s.speed_kph * CONSUMPTION_KWH_PER_KM
    fields = [
        f"{s.latitude:.6f}", f"{s.longitude:.6f}", _f(s.heading), _f(s.altitude), "1", "1",
        _f(s.speed_kph), _f(s.trip_km * 10), "0", _f(power, 1),
        _f(s.trip_km * CONSUMPTION_KWH_PER_KM * 1000), "0", _f(power, 1), "92", "AS", "12",
        "1.2", _f(s.speed_kph), "100",
    ]
    return Message("L", ",".join(fields))


def tpms_old(s: VehicleState) -> Message:
    fl, fr, rl, rr = s.tyre_psi
    tfl, tfr, trl, trr = s.tyre_temp
    fields = [_f(fr), _f(tfr), _f(rr), _f(trr), _f(fl), _f(tfl), _f(rl), _f(trl), "1"]
    return Message("W", ",".join(fields))


def tpms_new(s: VehicleState) -> Message:
    kpa = [_f(p * KPA_PER_PSI, 1) for p in s.tyre_psi]
    temps = [_f(t) for t in s.tyre_temp]
    fields = ["4", "FL", "FR", "RL", "RR", "4", *kpa, "1", "4", *temps, "1",
              "4", "100", "100", "100", "100", "1", "4", "0", "0", "0", "0", "1"]
    return Message("Y", ",".join(fields))


def firmware(s: VehicleState) -> Message:
    fields = [s.firmware, s.vin, str(s.signal), "1", "NL", s.network,
              _f(max(0.0, 30000.0 - s.odometer_km % 30000.0)), "86400", "OVMS WIFI BLE BT cores=2",
              "LTE-online"]
    return Message("F", ",".join(fields))


def capabilities(s: VehicleState) -> Message:
    return Message("V", CAPABILITIES)


def messages(s: VehicleState) -> list[Message]:
    """The full set a module sends after login and whenever a new app starts watching."""
    return [status(s), doors(s), location(s), tpms_old(s), tpms_new(s), firmware(s),
            capabilities(s)]


def historical(ackcode: int, record: HistoricalRecord, now: float) -> Message:
    """``h<ackcode>,<timediff>,<type>,<recordnumber>,<lifetime>,<data>``; ``timediff`` is
    the record's age, so a resent record keeps its original time."""
    timediff = -max(0, round(now - record.sim_time))
    return Message("h", f"{ackcode},{timediff},{record.rtype},{record.number},"
                        f"{RECORD_LIFETIME_S},{record.data}")


# --------------------------------------------------------------------------- commands


@attrs.frozen
class CommandResult:
    state: VehicleState
    replies: tuple[str, ...]  # data of each ``c`` line, e.g. "20,0"
    notifications: tuple[str, ...] = ()  # data of ``P`` push notifications
    reboot: bool = False  # the module restarts after answering


def _ok(state: VehicleState, number: int, *extra: str) -> CommandResult:
    return CommandResult(state, (",".join([str(number), str(OK), *extra]),))


def _fail(state: VehicleState, number: int, text: str, result: int = FAILED) -> CommandResult:
    return CommandResult(state, (f"{number},{result},{text}",))


def _int(params: Sequence[str], index: int) -> int | None:
    try:
        return int(params[index])
    except (IndexError, ValueError):
        return None


def handle_command(state: VehicleState, number: int, params: Sequence[str]) -> CommandResult:
    """Apply command ``number`` with its comma-separated ``params``; the answer lines follow
    the module firmware (lists as ``<n>,0,<index>,<count>,<value>``)."""
    s = state
    if number not in IMPLEMENTED_COMMANDS:
        return _fail(s, number, "Unsupported command", UNSUPPORTED)
    if number == 1:
        return CommandResult(s, tuple(f"1,0,{k},{FEATURES_MAX},{v}"
                                      for k, v in enumerate(s.features)))
    if number == 3:
        return CommandResult(s, tuple(f"3,0,{k},{PARAMS_MAX},{v}"
                                      for k, v in enumerate(s.params)))
    if number in (2, 4):
        index = _int(params, 0)
        limit = FEATURES_MAX if number == 2 else PARAMS_MAX
        if index is None or not 0 <= index < limit or len(params) < 2:
            return _fail(s, number, "Invalid index")
        if number == 2:
            value = _int(params, 1)
            if value is None:
                return _fail(s, number, "Invalid value")
            features = list(s.features)
            features[index] = value
            return _ok(attrs.evolve(s, features=tuple(features)), number)
        values = list(s.params)
        values[index] = ",".join(params[1:])
        return _ok(attrs.evolve(s, params=tuple(values)), number)
    if number == 5:
        return CommandResult(attrs.evolve(s, reboots=s.reboots + 1), (f"5,{OK}",), reboot=True)
    if number == 6:
        text = f"{s.charge_state.capitalize()}, SOC {s.soc:.0f}%, range {s.ideal_range_km:.0f} km"
        return CommandResult(s, (f"6,{OK}",), notifications=("I" + text,))
    if number == 7:
        command = ",".join(params).strip()
        if command in ("stat", "metrics list v.b.soc", ""):
            text = (f"{s.mode.value.capitalize()}, SOC {s.soc:.1f}%, "
                    f"ideal range {s.ideal_range_km:.0f} km, odometer {s.odometer_km:.1f} km")
            return _ok(s, 7, text)
        return _fail(s, 7, f"Unrecognised command: {command}")
    if number in (10, 16):
        mode = _int(params, 0)
        if mode not in CHARGE_MODES:
            return _fail(s, number, "Invalid charge mode")
        s = attrs.evolve(s, charge_mode=mode)
        if number == 10:
            return _ok(s, number)
        params = params[1:]
    if number in (15, 16):
        amps = _int(params, 0)
        if amps is None or not 1 <= amps <= MAX_CHARGE_CURRENT:
            return _fail(state, number, f"Charge current must be 1-{MAX_CHARGE_CURRENT} A")
        return _ok(attrs.evolve(s, charge_limit_a=amps), number)
    if number == 11:
        if s.driving:
            return _fail(s, number, "Vehicle is driving")
        if s.charging:
            return _ok(s, number)
        return _ok(_start_charge(s), number)
    if number == 12:
        if s.charging:
            s, _ = _end_charge(s, "stopped")
        return _ok(s, number)
    if number == 17:
        mode, start = _int(params, 0), _int(params, 1)
        if mode is None or mode not in (0, 1):
            return _fail(s, number, "Invalid timer mode")
        return _ok(attrs.evolve(s, charge_timer_mode=mode, charge_timer_start=start or 0), number)
    if number == 18:
        return _ok(attrs.evolve(s, awake=True), number)
    if number in (20, 22):
        return _ok(attrs.evolve(s, locked=number == 20), number)
    if number in (21, 23):
        return _ok(attrs.evolve(s, valet=number == 21), number)
    if number == 24:
        button = _int(params, 0)
        if button not in (0, 1, 2):
            return _fail(s, number, "Homelink button must be 0-2")
        return _ok(attrs.evolve(s, homelink_presses=s.homelink_presses + 1), number)
    raise AssertionError(f"command {number} listed as implemented but not handled")
