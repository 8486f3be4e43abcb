"""Metric text to v2 field text, and whole v2 messages from a set of metric values.

``check`` says whether a metric's text is usable at all (``state.apply`` refuses
what it is not); ``message_for`` builds one message from the current values with
the conversions of ``metrics.Convert``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Final

from protocol import fields
from protocol.messages import Message
from protocol.ovms_v3 import metrics
from protocol.ovms_v3.metrics import Convert, FieldSource, Value

KM_PER_MILE: Final = 1.609344
KPA_PER_PSI: Final = 6.894757

# A plain decimal number, as a module's AsString writes one: no exponent, no
# "nan"/"inf", bounded so float() never sees something huge.
_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,9})?")
_TRUE: Final = frozenset({"yes", "true", "1", "on"})
_FALSE: Final = frozenset({"no", "false", "0", "off"})
# The longest text a v2 field takes from a metric (a VIN is 17 characters, a
# hardware description about 60); longer text is cut.
MAX_TEXT: Final = 96
# The most elements a vector may have here (a bus has a few dozen wheels at most).
MAX_VECTOR: Final = 32


def _shown(text: str) -> str:
    return repr(text[:24] + ("..." if len(text) > 24 else ""))


def number(text: str) -> float:
    """A metric's number; ValueError if the text is not a plain decimal number."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{_shown(text)} is not a number")
    value = float(text)
    if not math.isfinite(value):  # cannot happen with the pattern; kept as the guard
        raise ValueError(f"{_shown(text)} is not a finite number")
    return value


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{_shown(text)} is not a boolean")


def vector(text: str) -> list[float]:
    parts = text.split(",") if text.strip() else []
    if len(parts) > MAX_VECTOR:
        raise ValueError(f"vector of {len(parts)} elements is over {MAX_VECTOR}")
    return [number(p) for p in parts]


def text_field(text: str) -> str:
    """Text for a field: printable, commas as ';' (the field separator), cut to MAX_TEXT."""
    if not text.isprintable():
        raise ValueError(f"{_shown(text)} holds control characters")
    return text.replace(",", ";")[:MAX_TEXT]


def check(kind: Value, text: str) -> None:
    """ValueError with a short reason if ``text`` is not a usable value of ``kind``."""
    if kind is Value.NUMBER:
        number(text)
    elif kind is Value.BOOL:
        boolean(text)
    elif kind is Value.VECTOR:
        vector(text)
    else:
        text_field(text)


def _trunc(value: float) -> str:
    return str(math.trunc(value))


def _decimal(value: float) -> str:
    """A vector element as plain decimal text (never an exponent), e.g. 230, 231.5."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _plain(text: str) -> str:
    """The module's own text of a number, without surrounding space."""
    number(text)
    return text.strip()


def _distance(km: float, units: str) -> float:
    return km / KM_PER_MILE if units == "M" else km


def _wheel(text: str, index: int) -> float:
    values = vector(text)
    if index >= len(values):
        raise ValueError(f"no element {index}")
    return values[index]


def _etr_limit(texts: list[str | None]) -> str:
    """The minutes to whichever charge limit (range, soc) comes first, as a v3
    module's v2 server computes it: the range time if set and sooner, else soc."""
    mins_range = math.trunc(number(texts[0])) if texts[0] is not None else 0
    mins_soc = math.trunc(number(texts[1])) if texts[1] is not None else 0
    return str(mins_range if 0 <= mins_range < mins_soc else mins_soc)


def _charge_power(texts: list[str | None]) -> str:
    """Battery power flows out as positive: while charging, the charge power is its
    negation; otherwise 0."""
    if texts[0] is None or texts[1] is None or not boolean(texts[1]):
        return "0.00"
    return f"{-number(texts[0]) + 0.0:.2f}"  # + 0.0: no "-0.00"


def _signal(dbm: float) -> str:
    """GSM signal quality (0..31, as ``AT+CSQ``) of a level in dBm."""
    return str(min(31, max(0, math.trunc((dbm + 113) / 2))))


_ONE: Final[dict[Convert, Callable[[str, str, int], str]]] = {
    # convert: (text, units, index) -> field text
    Convert.TEXT: lambda t, u, i: text_field(t),
    Convert.NUMBER: lambda t, u, i: _plain(t),
    Convert.INT: lambda t, u, i: _trunc(number(t)),
    Convert.FLOAT2: lambda t, u, i: f"{number(t):.2f}",
    Convert.FLOAT3: lambda t, u, i: f"{number(t):.3f}",
    Convert.FLOAT6: lambda t, u, i: f"{number(t):.6f}",
    Convert.TENTHS: lambda t, u, i: _trunc(number(t) * 10),
    Convert.BOOL: lambda t, u, i: "1" if boolean(t) else "0",
    Convert.NOT: lambda t, u, i: "0" if boolean(t) else "1",
    Convert.DISTANCE: lambda t, u, i: _trunc(_distance(number(t), u)),
    Convert.DISTANCE_TENTHS: lambda t, u, i: _trunc(_distance(number(t), u) * 10),
    Convert.DISTANCE2: lambda t, u, i: f"{_distance(number(t), u):.2f}",
    Convert.SPEED: lambda t, u, i: (f"{number(t) / KM_PER_MILE:.1f}" if u == "M"
                                    else _plain(t)),
    Convert.PSI: lambda t, u, i: f"{number(t) / KPA_PER_PSI:.1f}",
    Convert.WHEEL_PSI: lambda t, u, i: f"{_wheel(t, i) / KPA_PER_PSI:.1f}",
    Convert.WHEEL: lambda t, u, i: _decimal(_wheel(t, i)),
    Convert.SIGNAL: lambda t, u, i: _signal(number(t)),
    Convert.HEX: lambda t, u, i: format(math.trunc(number(t)), "x"),
    Convert.LOCKUNLOCK: lambda t, u, i: "4" if boolean(t) else "5",
    Convert.COOLDOWN: lambda t, u, i: "0" if boolean(t) else "-1",
    Convert.CHARGE_STATE: lambda t, u, i: str(metrics.CHARGE_STATES.get(t.strip(), 0)),
    Convert.CHARGE_SUBSTATE: lambda t, u, i: str(metrics.CHARGE_SUBSTATES.get(t.strip(), 0)),
    Convert.CHARGE_MODE: lambda t, u, i: str(metrics.CHARGE_MODES.get(t.strip(), 0)),
}
_MANY: Final[dict[Convert, Callable[[list[str | None]], str]]] = {
    Convert.ETR_LIMIT: _etr_limit,
    Convert.CHARGE_POWER: _charge_power,
    Convert.DEFINED: lambda texts: "1",
}


def field_text(source: FieldSource, values: Mapping[str, str], units: str) -> str | None:
    """The text of ``source``'s field from ``values`` (metric name -> text), or None
    when none of its metrics has a value (or its value does not convert: then the
    next entry for the field, or its default, applies). BIT gives "1" or "0"."""
    convert = source.convert
    if convert is Convert.CONST:
        return source.default
    texts = [values.get(m) for m in source.metrics]
    if all(t is None for t in texts):
        return None
    try:
        if convert in _MANY:
            return _MANY[convert](texts)
        text = texts[0]
        assert text is not None
        if convert is Convert.BIT:
            return "1" if boolean(text) else "0"
        return _ONE[convert](text, units, source.index)
    except ValueError:
        return None


def has_value(code: str, values: Mapping[str, str]) -> bool:
    """Whether any metric of message ``code`` has a value."""
    if code == "Y":
        return any(s.metric in values for s in metrics.TPMS_SERIES)
    return any(m in values for s in metrics.sources(code) for m in s.metrics)


def message_for(code: str, values: Mapping[str, str], units: str) -> Message | None:
    """The ``code`` message from ``values`` (metric name -> text), or None when no
    metric of that message has a value. Every mapped field is written (its default
    if it has no value), up to the last mapped field of the layout."""
    if not has_value(code, values):
        return None
    if code == "Y":
        return tpms_message(values)
    layout = fields.LAYOUTS[code]
    texts: list[str | None] = [None] * len(layout.fields)
    last = 0
    for source in metrics.sources(code):
        index = layout.index(source.field)
        last = max(last, index)
        out = field_text(source, values, units)
        if source.convert is Convert.BIT:
            bits = int(texts[index] or "0")
            if out == "1":
                bits |= layout.flag(source.bit).bit.mask
            texts[index] = str(bits)
        elif texts[index] is None and out is not None:
            texts[index] = out
    # Fields whose every entry had no value: the first entry's default.
    for source in metrics.sources(code):
        index = layout.index(source.field)
        if texts[index] is None:
            texts[index] = source.default
    if code == "S":
        texts[layout.index("units")] = units
    return Message(code, ",".join(t or "" for t in texts[: last + 1]))


def tpms_message(values: Mapping[str, str]) -> Message:
    """``Y``: wheel names, then each series (count, values, validity 1), or an empty
    series with validity -1 when the module has not published it."""
    series: list[list[str] | None] = []
    for tpms in metrics.TPMS_SERIES:
        text = values.get(tpms.metric)
        try:
            series.append(None if text is None else [_decimal(v) for v in vector(text)])
        except ValueError:
            series.append(None)
    count = max((len(s) for s in series if s is not None), default=0)
    names = (list(metrics.FOUR_WHEELS) if count == 4
             else [f"W{n + 1}" for n in range(count)])
    out = [str(count), *names]
    for items in series:
        out += ["0", "-1"] if items is None else [str(len(items)), *items, "1"]
    return Message("Y", ",".join(out))


__all__ = ["KM_PER_MILE", "KPA_PER_PSI", "MAX_TEXT", "MAX_VECTOR", "boolean", "check",
           "field_text", "has_value", "message_for", "number", "text_field", "tpms_message",
           "vector"]
