"""Which OVMS v3 metric fills which field of which v2 message, as data.

A v3 module publishes metrics (``v.b.soc``: 81); a v2 app reads messages (``S``:
``81,K,...``). ``MAPPING`` lists, for every field of ``S``, ``D``, ``L``, ``W``,
``F`` (and the ``Y`` lists) a v3 module's own v2 server fills from a metric,
that metric and how its text becomes the field's text. Field names are those of
``protocol.fields``, the project's one description of the v2 layouts, so a
mapping entry naming a field that layout does not have fails at import.

Values arrive as the module's ``AsString()`` text in the metric's own unit (km,
km/h, degrees Celsius, kPa for tyre pressures; booleans as ``yes``/``no``), and
leave in the v2 message's unit, formatted as a module's v2 server formats them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Final

import attrs

from protocol import fields


class Convert(enum.Enum):
    """How a metric's text becomes a v2 field's text."""

    TEXT = "text"  # as it is (charge state, mode names, VIN)
    INT = "int"  # a number rounded to a whole number
    FLOAT1 = "float1"  # one decimal
    FLOAT2 = "float2"  # two decimals
    FLOAT6 = "float6"  # six decimals (latitude, longitude)
    BOOL = "bool"  # yes/no/true/false/1/0 -> 1/0
    BIT = "bit"  # a boolean setting one bit of a bitfield (``bit`` names it)
    DISTANCE = "distance"  # km -> the message's units (K: km, M: miles), whole
    SPEED = "speed"  # km/h -> the message's units, whole
    PSI = "psi"  # kPa -> psi, one decimal (the old TPMS message)
    MINUTES = "minutes"  # seconds -> minutes, whole


@attrs.frozen
class FieldSource:
    """Field ``field`` of message ``code`` comes from ``metric`` via ``convert``.

    For BIT, ``field`` is the bitfield and ``bit`` the name of the bit (as
    ``protocol.fields`` names it) that is set when the metric is true.
    """

    code: str
    field: str
    metric: str
    convert: Convert
    bit: str = ""

    def __attrs_post_init__(self) -> None:
        layout = fields.LAYOUTS[self.code]
        layout.index(self.field)  # KeyError: not a field of the layout
        if self.convert is Convert.BIT:
            position = layout.flag(self.bit)
            if position.field.name != self.field:
                raise ValueError(f"{self.code}.{self.bit} is not a bit of {self.field}")


def _src(code: str, field: str, metric: str, convert: Convert = Convert.TEXT,
         bit: str = "") -> FieldSource:
    return FieldSource(code, field, metric, convert, bit)


MAPPING: Final[tuple[FieldSource, ...]] = (
    _src("S", "soc", "v.b.soc", Convert.INT),
    _src("S", "linevoltage", "v.c.voltage", Convert.INT),
    _src("S", "chargecurrent", "v.c.current", Convert.INT),
    _src("S", "chargestate", "v.c.state"),
    _src("S", "chargemode", "v.c.mode"),
    _src("S", "idealrange", "v.b.range.ideal", Convert.DISTANCE),
    _src("S", "estimatedrange", "v.b.range.est", Convert.DISTANCE),
)

# Each code's message is synthesised only when at least one of these metrics has a
# value: a module that never sent a location has no ``L``.
CODES: Final = tuple(sorted({s.code for s in MAPPING}))


def sources(code: str) -> tuple[FieldSource, ...]:
    """The mapping entries of one message code, in mapping order."""
    return tuple(s for s in MAPPING if s.code == code)


def _by_metric(mapping: Iterable[FieldSource]) -> dict[str, frozenset[str]]:
    out: dict[str, set[str]] = {}
    for source in mapping:
        out.setdefault(source.metric, set()).add(source.code)
    return {metric: frozenset(codes) for metric, codes in out.items()}


_CODES_BY_METRIC: Final = _by_metric(MAPPING)
KNOWN_METRICS: Final = frozenset(_CODES_BY_METRIC)


def codes_for(metric: str) -> frozenset[str]:
    """The v2 message codes a change of ``metric`` changes (empty if none)."""
    return _CODES_BY_METRIC.get(metric, frozenset())


__all__ = ["CODES", "KNOWN_METRICS", "MAPPING", "Convert", "FieldSource", "codes_for", "sources"]
