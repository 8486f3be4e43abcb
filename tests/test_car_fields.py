"""Issue 11 finding 3: one description of each car message's fields (protocol/fields.py).

REST formatting, the API v4 data paths and the typed views all read it, so a field
or a bit cannot mean one thing to REST and another to v4 (the alarm flag of doors4
did: REST read bit 2, v4 bits 1 and 2).
"""

from __future__ import annotations

import ast
from pathlib import Path

import attrs
import pytest

from protocol import fields
from protocol.messages import TPMS, Doors, FieldView, Firmware, Location, NewTPMS, Status
from relay.http import formatting
from relay.store import StoredMessage
from relay.v4 import datapaths

ROOT = Path(__file__).resolve().parent.parent
VIEWS: dict[str, type[FieldView]] = {
    "S": Status, "D": Doors, "L": Location, "W": TPMS, "F": Firmware}


def test_layouts_match_the_protocol_spec_order() -> None:
    """PROTOCOL.md section 4 lists the fields in this order (names as the views use them)."""
    assert fields.STATUS.names()[:8] == (
        "soc", "units", "linevoltage", "chargecurrent", "chargestate", "chargemode",
        "idealrange", "estimatedrange")
    assert len(fields.STATUS.fields) == 42
    assert fields.DOORS.names() == (
        "doors1", "doors2", "lockunlock", "temp_pem", "temp_motor", "temp_battery",
        "tripmeter", "odometer", "speed", "parktimer", "temp_ambient", "doors3",
        "staletemps", "staleambient", "vehicle12v", "doors4", "vehicle12v_ref", "doors5",
        "temp_charger", "vehicle12v_current", "temp_cabin")
    assert len(fields.LOCATION.fields) == 19
    assert len(fields.TPMS.fields) == 9
    assert len(fields.FIRMWARE.fields) == 10
    assert fields.NEW_TPMS.series[:4] == ("pressure", "temperature", "health", "alert")


def test_spec_bits() -> None:
    """The bits PROTOCOL.md section 4 names (bit 0 = value 1)."""
    expected = {
        "fl_dooropen": ("doors1", 0), "fr_dooropen": ("doors1", 1),
        "cp_dooropen": ("doors1", 2), "pilotpresent": ("doors1", 3),
        "charging": ("doors1", 4), "handbrake": ("doors1", 6), "caron": ("doors1", 7),
        "carlocked": ("doors2", 3), "valetmode": ("doors2", 4), "bt_open": ("doors2", 6),
        "tr_open": ("doors2", 7), "carawake": ("doors3", 1), "alarmsounding": ("doors4", 2),
        "charging_12v": ("doors5", 4),
    }
    for name, (field, bit) in expected.items():
        position = fields.DOORS.flag(name)
        assert (position.field.name, position.bit.bit) == (field, bit), name
        assert position.field.kind == "bitfield"
        assert position.index == fields.DOORS.index(field)


@pytest.mark.parametrize("code", sorted(VIEWS))
def test_views_are_the_layouts(code: str) -> None:
    view = VIEWS[code]
    layout = fields.LAYOUTS[code]
    assert view.CODE == code and view.LAYOUT is layout
    names = [f.name for f in attrs.fields(view) if f.name != "extra"]  # type: ignore[arg-type]
    assert tuple(names) == layout.names()
    assert NewTPMS.SERIES == fields.NEW_TPMS.series


def test_unknown_names_are_refused() -> None:
    with pytest.raises(KeyError):
        fields.DOORS.index("doors6")
    with pytest.raises(KeyError):
        fields.DOORS.flag("alarm")
    with pytest.raises(ValueError, match="duplicate"):
        fields.Layout("Q", "test", (fields.Field("a"), fields.Field("a")))


REST_FIELDS = [
    (fields.STATUS, formatting.STATUS_S_FIELDS, formatting.STATUS_S),
    (fields.STATUS, formatting.CHARGE_S_FIELDS, formatting.CHARGE_S),
    (fields.DOORS, formatting.STATUS_D_FIELDS, formatting.STATUS_D),
    (fields.DOORS, formatting.CHARGE_D_FIELDS, formatting.CHARGE_D),
    (fields.LOCATION, formatting.LOCATION_L_FIELDS, formatting.LOCATION_L),
    (fields.TPMS, formatting.TPMS_W_FIELDS, formatting.TPMS_W),
]


@pytest.mark.parametrize(("layout", "names", "positions"), REST_FIELDS)
def test_rest_fields_come_from_the_layout(
    layout: fields.Layout, names: dict[str, str], positions: dict[str, int]
) -> None:
    assert list(positions) == list(names)
    for rest, field in names.items():
        assert field in layout.names(), (layout.code, field)
        assert positions[rest] == layout.index(field)
        assert layout.field(field).kind != "bitfield"


def test_rest_flags_come_from_the_layout() -> None:
    for table in (formatting.STATUS_D_FLAGS, formatting.CHARGE_D_FLAGS):
        for name, (index, mask) in table.items():
            position = fields.DOORS.flag(name)
            assert (index, mask) == (position.index, position.bit.mask), name


def test_v4_paths_come_from_the_layout() -> None:
    kinds = {"number": "number", "text": "string"}
    for spec in datapaths.TABLE:
        layout = fields.LAYOUTS[spec.code]
        field = layout.field(spec.field)
        assert spec.index == layout.index(spec.field)
        if field.kind == "bitfield":
            assert spec.kind == "boolean" and spec.flag is not None, spec.path
            position = layout.flag(spec.flag)
            assert position.field is field
            extra = 0
            for name in spec.or_flags:
                extra |= layout.flag(name).bit.mask
            assert (spec.bit, spec.mask) == (position.bit.bit, position.bit.mask | extra)
        else:
            assert spec.flag is None and spec.bit is None, spec.path
            assert spec.kind == "boolean" or kinds[spec.kind] == field.kind, spec.path


def _reads_of_views(tree: ast.AST) -> list[tuple[str, str, int]]:
    """(view class, attribute, line) for every ``View.from_data(...).name`` and
    ``x = View.from_data(...)`` ... ``x.name`` in one function."""
    out: list[tuple[str, str, int]] = []

    def view_of(node: ast.expr) -> str | None:
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("from_data", "from_message")
                and isinstance(node.func.value, ast.Name) and node.func.value.id in
                {"Status", "Doors", "Location", "TPMS", "Firmware"}):
            return node.func.value.id
        return None

    for scope in ast.walk(tree):
        if not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        bound: dict[str, str] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(
                    node.targets[0], ast.Name):
                view = view_of(node.value)
                if view is not None:
                    bound[node.targets[0].id] = view
        for node in ast.walk(scope):
            if not isinstance(node, ast.Attribute):
                continue
            view = view_of(node.value)
            if view is None and isinstance(node.value, ast.Name):
                view = bound.get(node.value.id)
            if view is not None:
                out.append((view, node.attr, node.lineno))
    return out


def test_every_view_field_read_in_the_code_is_described() -> None:
    """hal, resources, tools: a field read through a view is a field of its layout."""
    by_name = {cls.__name__: cls for cls in VIEWS.values()}
    methods = {"to_data", "to_message", "values", "as_dict", "extra", "CODE", "LAYOUT"}
    seen = 0
    for path in [*ROOT.glob("relay/**/*.py"), *ROOT.glob("tools/*.py")]:
        for view, attr, line in _reads_of_views(ast.parse(path.read_text(encoding="utf-8"))):
            seen += 1
            layout = by_name[view].LAYOUT
            assert attr in methods or attr in layout.names(), f"{path}:{line}: {view}.{attr}"
    assert seen > 10  # the walk found the reads (hal, resources, app_client)


# --- REST and v4 agree on every flag they both read ----------------------------------


def _stored(code: str, data: str) -> StoredMessage:
    return StoredMessage(code=code, data=data, msgtime=1_700_000_000.0, paranoid=False,
                         ptoken="")


@pytest.mark.parametrize("value", [0, 1, 2, 4, 6, 8, 16, 64, 128, 255])
def test_rest_and_v4_read_the_same_bits(value: int) -> None:
    """Issue 11 finding 3: doors4 = 2 read as "alarm sounding" by v4 but not by REST."""
    flags = ",".join([str(value)] * 2)
    data = f"{flags},0,0,0,0,0,0,0,0,0,{value},0,0,0,{value},0,{value},0,0,0"
    rest = formatting.status({"D": _stored("D", data)}, now=1_700_000_000.0)
    v4_flags = {spec.flag: spec for spec in datapaths.TABLE if spec.flag is not None}
    shared = set(v4_flags) & set(formatting.STATUS_D_FLAGS)
    assert "alarmsounding" in shared and len(shared) >= 10
    for name in shared:
        spec = v4_flags[name]
        if spec.or_flags:
            # v4 also reads the other firmware's bit for the same thing (named in the one
            # description); REST keeps the public server's single bit.
            continue
        assert (rest[name] != 0) == datapaths.value_of(spec.path, {"D": data}), name


def test_alarm_named_once_per_firmware_generation() -> None:
    """Both doors4 alarm bits come from the one description: REST reads the v2 modules'
    bit as the public server does; v4's vehicle.alarm reads either module's bit."""
    assert fields.DOORS.flag("alarmsounding").bit.bit == 2
    assert fields.DOORS.flag("alarmsounding_v3").bit.bit == 1
    assert formatting.STATUS_D_FLAGS["alarmsounding"][1] == 4
    d = "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,{}"
    assert [datapaths.value_of("vehicle.alarm", {"D": d.format(v)}) for v in (0, 1, 2, 4, 6)] \
        == [False, False, True, True, True]
