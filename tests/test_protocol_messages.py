"""Message, CommandResponse and the typed views of S/D/L/W/F/Y, with real messages."""

from __future__ import annotations

import attrs
import pytest

from protocol import (
    MULTILINE_COMMANDS,
    SERVER_COMMANDS,
    TPMS,
    CommandResponse,
    Doors,
    Firmware,
    Location,
    Message,
    NewTPMS,
    Status,
    WheelSeries,
)
from protocol.messages import FieldView, command_number

S_DATA = (
    "30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,105,"
    ",7.2,12.0,80,7.2,95,1,0,0,0,0,0"
)
D_DATA = "160,8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"
L_DATA = "22.270553,114.186994,90,0,1,1,55,0,0,0,0,0,0,100,AS,12,2,55,100"
W_DATA = "29,27,40,31,29,27,40,31,1"
F_DATA = "1.5.0,VIN123456789012345,5,1,TRDM,DNET,25000,86400,DEMO-HW,Wifi-online"
Y_DATA = "4,FL,FR,RL,RR,4,200.0,200.0,276.0,276.0,4,27,27,31,31,1,4,100,100,100,100,1,4,1,1,1,1"

VIEWS: list[tuple[type[FieldView], str]] = [
    (Status, S_DATA),
    (Doors, D_DATA),
    (Location, L_DATA),
    (TPMS, W_DATA),
    (Firmware, F_DATA),
]


def n_fields(cls: type[FieldView]) -> int:
    return len([f for f in attrs.fields(cls) if f.name != "extra"])  # type: ignore[arg-type]


# --- Message --------------------------------------------------------------------------


def test_message_parse() -> None:
    assert Message.parse("A") == Message("A", "")
    assert Message.parse("S80,K") == Message("S", "80,K")
    assert Message.parse("c1,0,,x") == Message("c", "1,0,,x")
    assert Message.parse("  ") == Message(" ", " ")


def test_message_parse_empty() -> None:
    # A value parser: ValueError; only the session turns it into a protocol error.
    with pytest.raises(ValueError, match="empty"):
        Message.parse("")


def test_message_text_and_fields() -> None:
    msg = Message.parse("S80,K,,done")
    assert msg.text() == "S80,K,,done"
    assert msg.fields() == ["80", "K", "", "done"]
    assert Message("A").fields() == []
    assert Message("Z", "0").fields() == ["0"]
    assert Message("X", ",").fields() == ["", ""]


def test_message_is_frozen_and_hashable() -> None:
    msg = Message("A")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        msg.code = "B"  # type: ignore[misc]
    assert len({Message("A"), Message("A"), Message("B")}) == 2


# --- CommandResponse -------------------------------------------------------------------


def test_command_response_parse() -> None:
    r = CommandResponse.parse("1,0,0,3,S,0")
    assert (r.number, r.result, r.rest) == (1, 0, ("0", "3", "S", "0"))
    r = CommandResponse.parse("20")
    assert (r.number, r.result, r.rest) == (20, 0, ())
    r = CommandResponse.parse("3,1,failed")
    assert (r.number, r.result, r.rest) == (3, 1, ("failed",))
    assert CommandResponse.OK == 0


@pytest.mark.parametrize(
    "data", ["", "abc", "x,0", "1,x", ",", "1" * 5000, "²,0", "1,²", "-1,0", " 1,0", "1,+0"]
)
def test_command_response_garbage(data: str) -> None:
    """Issue 10 item 6: a value parser raises ValueError, never a protocol error."""
    with pytest.raises(ValueError):
        CommandResponse.parse(data)


@pytest.mark.parametrize(
    ("data", "last"),
    [
        ("1,0,0,3,S,0", False),
        ("1,0,1,3,D,0", False),
        ("1,0,2,3,L,0", True),
        ("3,0,0,2,feature,1", False),
        ("3,0,1,2,feature,1", True),
        ("3,1,failed", True),
        ("1,2,unsupported", True),
        ("20,0", True),
        ("20,0,0,3", True),  # not a list command
        ("1,0", True),  # no index/count: treat as last
        ("1,0,x,y", True),
        ("1,0,0,0", True),
        ("1,0,5,3", True),
    ],
)
def test_command_response_is_last_line(data: str, last: bool) -> None:
    assert CommandResponse.parse(data).is_last_line() is last


def test_command_sets() -> None:
    assert frozenset({1, 3}) == MULTILINE_COMMANDS
    assert frozenset({30, 31, 32}) == SERVER_COMMANDS


@pytest.mark.parametrize(
    ("data", "number"),
    [
        ("1", 1),
        ("30,1,2", 30),
        ("007,x", 7),
        ("", None),
        ("x,1", None),
        ("-1", None),
        (" 1", None),
        ("²", None),
        ("\u0661", None),
        ("1" * 5000, None),
    ],
)
def test_command_number(data: str, number: int | None) -> None:
    assert command_number(data) == number


# --- field views -----------------------------------------------------------------------


# What real cars send, field by field (the views name each position).
REAL_FIELDS: list[tuple[type[FieldView], str, dict[str, str | None]]] = [
    (Status, S_DATA, {
        "soc": "30", "units": "K", "chargestate": "done", "chargemode": "standard",
        "idealrange": "105", "estimatedrange": "85", "cac100": "160",
        "chargetype": "",  # sent empty: an empty string, not None
        "chargepower": "7.2", "battvoltage": "12.0", "soh": "80", "charge_endtime": "0"}),
    (Doors, D_DATA, {  # the demo car's D misses the trailing field
        "doors1": "160", "doors2": "8", "lockunlock": "4", "temp_battery": "30",
        "speed": "55", "vehicle12v": "12.0", "temp_charger": "13.5",
        "vehicle12v_current": "30",
        "temp_cabin": None}),  # not sent by this car
    (Location, L_DATA, {
        "latitude": "22.270553", "longitude": "114.186994", "direction": "90",
        "gpslock": "1", "gpsmode": "AS", "satcount": "12", "gpsquality": "100"}),
    (TPMS, W_DATA, {
        "fr_pressure": "29", "fr_temp": "27", "rr_pressure": "40", "rr_temp": "31",
        "fl_pressure": "29", "fl_temp": "27", "rl_pressure": "40", "rl_temp": "31",
        "staletpms": "1"}),
    (Firmware, F_DATA, {
        "version": "1.5.0", "vin": "VIN123456789012345", "signal_quality": "5",
        "vehicle_type": "TRDM", "network": "DNET", "hardware": "DEMO-HW",
        "modem_mode": "Wifi-online"}),
]


@pytest.mark.parametrize(("cls", "data", "fields"), REAL_FIELDS,
                         ids=[cls.__name__ for cls, _, _ in REAL_FIELDS])
def test_real_message_fields(cls: type[FieldView], data: str,
                             fields: dict[str, str | None]) -> None:
    view = cls.from_data(data)
    assert {name: getattr(view, name) for name in fields} == fields
    assert view.to_data() == data


def test_status_real_message() -> None:
    assert len(S_DATA.split(",")) == 42
    s = Status.from_message(Message("S", S_DATA))
    assert s.chargetype is not None
    assert s.extra == ()
    assert s.to_data() == S_DATA
    assert s.to_message() == Message("S", S_DATA)


def test_doors_real_message_missing_trailing_field() -> None:
    d = Doors.from_data(D_DATA)
    assert d.temp_cabin is None
    assert d.extra == ()


@pytest.mark.parametrize(("cls", "data"), VIEWS)
def test_view_extra_fields_preserved(cls: type[FieldView], data: str) -> None:
    # pad to the view's full length first (the demo car's D omits the last field)
    full = data + ",0" * (n_fields(cls) - len(data.split(",")))
    more = full + ",future1,,future3"
    view = cls.from_data(more)
    assert view.extra == ("future1", "", "future3")  # type: ignore[attr-defined]
    assert view.to_data() == more
    assert cls.from_data(view.to_data()) == view


@pytest.mark.parametrize(("cls", "data"), VIEWS)
def test_view_truncated_message(cls: type[FieldView], data: str) -> None:
    short = ",".join(data.split(",")[:3])
    view = cls.from_data(short)
    values = view.values()
    assert values[:3] == data.split(",")[:3]
    assert all(v is None for v in values[3:])
    assert view.to_data() == short


@pytest.mark.parametrize(("cls", "data"), VIEWS)
def test_view_empty_and_as_dict(cls: type[FieldView], data: str) -> None:
    empty = cls.from_data("")
    assert all(v is None for v in empty.values())
    assert empty.to_data() == ""
    d = cls.from_data(data).as_dict()
    assert len(d) == n_fields(cls)
    assert "extra" not in d


@pytest.mark.parametrize(("cls", "data"), VIEWS)
def test_view_from_message_wrong_code(cls: type[FieldView], data: str) -> None:
    with pytest.raises(ValueError):
        cls.from_message(Message("?", data))


def test_view_codes() -> None:
    assert [cls.CODE for cls, _ in VIEWS] == ["S", "D", "L", "W", "F"]
    assert NewTPMS.CODE == "Y"


def test_constructed_view_keeps_positions() -> None:
    # An unset field before a set one is written empty, not dropped.
    s = Status(soc="50", chargestate="done")
    assert s.to_data() == "50,,,,done"
    assert Status.from_data(s.to_data()).chargestate == "done"
    w = TPMS(fr_pressure="30", extra=("x",))
    assert w.to_data() == "30" + "," * 8 + ",x"
    assert TPMS.from_data(w.to_data()).extra == ("x",)


# --- NewTPMS (Y) -------------------------------------------------------------------------


def test_new_tpms_demo_car_without_pressure_validity() -> None:
    y = NewTPMS.from_message(Message("Y", Y_DATA))
    assert y.names == ("FL", "FR", "RL", "RR")
    assert y.pressure == WheelSeries(("200.0", "200.0", "276.0", "276.0"), None)
    assert y.temperature == WheelSeries(("27", "27", "31", "31"), "1")
    assert y.health == WheelSeries(("100", "100", "100", "100"), "1")
    assert y.alert.values == ("1", "1", "1", "1")
    assert y.extra == ()
    assert y.to_data() == Y_DATA
    assert y.to_message() == Message("Y", Y_DATA)


def test_new_tpms_full_layout_with_mapping() -> None:
    data = "2,FL,FR,2,200,210,1,2,20,21,1,2,90,91,0,2,0,1,1,2,0,1,1"
    y = NewTPMS.from_data(data)
    assert y.names == ("FL", "FR")
    assert y.pressure == WheelSeries(("200", "210"), "1")
    assert y.temperature == WheelSeries(("20", "21"), "1")
    assert y.health == WheelSeries(("90", "91"), "0")
    assert y.alert == WheelSeries(("0", "1"), "1")
    assert y.mapping == WheelSeries(("0", "1"), "1")
    assert y.extra == ()
    assert y.to_data() == data


def test_new_tpms_cut_short() -> None:
    y = NewTPMS.from_data("4,FL,FR,RL,RR,4,200,200,276,276,1")
    assert y.pressure == WheelSeries(("200", "200", "276", "276"), "1")
    assert y.temperature == WheelSeries()
    assert y.mapping is None
    assert y.to_data() == "4,FL,FR,RL,RR,4,200,200,276,276,1"
    assert NewTPMS.from_data("4,FL,FR,RL,RR").to_data() == "4,FL,FR,RL,RR"


@pytest.mark.parametrize(
    "data",
    [
        "",
        "garbage",
        "5,FL,FR",  # count larger than what follows
        "²,FL",  # a Unicode digit int() refuses
        "\u0661,FL",  # a Unicode digit int() accepts
        "01,FL",  # leading zero: not how modules write counts
        "1" * 5000,  # past int()'s digit limit
        "0",
        "0,0",
        "0,0,0",
        "4,FL,FR,RL,RR,0",
        "4,FL,FR,RL,RR,0,4,1,2,3,4",
        "2,A,B,2,1,2,x,0",
        "1,A,1,²,1,01,x",
    ],
)
def test_new_tpms_odd_data_round_trips(data: str) -> None:
    y = NewTPMS.from_data(data)
    assert y.to_data() == data
    assert NewTPMS.from_data(y.to_data()) == y


def test_new_tpms_garbage_goes_to_extra() -> None:
    y = NewTPMS.from_data("garbage,1,2")
    assert y.names is None
    assert y.extra == ("garbage", "1", "2")


def test_new_tpms_wrong_code() -> None:
    with pytest.raises(ValueError):
        NewTPMS.from_message(Message("W", W_DATA))
