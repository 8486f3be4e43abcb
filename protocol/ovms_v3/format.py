"""Metric text to v2 field text, and whole v2 messages from a set of metric values.

The conversions of ``metrics.Convert``; every one raises ValueError with a short
reason for text it cannot use, so ``state`` refuses a value before storing it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

from protocol import fields
from protocol.messages import Message, line_break_in
from protocol.ovms_v3.metrics import Convert, FieldSource, sources

KM_PER_MILE: Final = 1.609344
KPA_PER_PSI: Final = 6.894757

# Plain decimal numbers as a module's AsString writes them: no exponent, no
# "nan"/"inf", at most 24 characters so float() never sees something huge.
_NUMBER = re.compile(r"-?[0-9]{1,18}(\.[0-9]{1,9})?")
_TRUE: Final = frozenset({"yes", "true", "1", "on"})
_FALSE: Final = frozenset({"no", "false", "0", "off"})
# The longest text a v2 field may take from a metric (a VIN is 17, a network name
# rarely over 30); longer text is cut, and commas (the field separator) and line
# breaks never pass.
MAX_TEXT: Final = 64


def _shown(text: str) -> str:
    return repr(text[:24] + ("..." if len(text) > 24 else ""))


def number(text: str) -> float:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"{_shown(text)} is not a number")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{_shown(text)} is not a finite number")
    return value


def boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{_shown(text)} is not a boolean")


def _whole(value: float) -> str:
    return str(round(value))


def field_text(source: FieldSource, text: str, units: str) -> str:
    """The v2 field text of ``text`` (the metric's value) for ``source``.

    BIT gives "1" or "0" (the caller combines bits). ValueError if unusable.
    """
    convert = source.convert
    if convert is Convert.TEXT:
        if "," in text or line_break_in(text) or not text.isprintable():
            raise ValueError(f"{_shown(text)} holds a comma or control character")
        return text[:MAX_TEXT]
    if convert in (Convert.BOOL, Convert.BIT):
        return "1" if boolean(text) else "0"
    value = number(text)
    if convert is Convert.INT:
        return _whole(value)
    if convert is Convert.FLOAT1:
        return f"{value:.1f}"
    if convert is Convert.FLOAT2:
        return f"{value:.2f}"
    if convert is Convert.FLOAT6:
        return f"{value:.6f}"
    if convert in (Convert.DISTANCE, Convert.SPEED):
        return _whole(value / KM_PER_MILE if units == "M" else value)
    if convert is Convert.PSI:
        return f"{value / KPA_PER_PSI:.1f}"
    if convert is Convert.MINUTES:
        return _whole(value / 60)
    raise AssertionError(convert)


def message_for(code: str, values: Mapping[str, str], units: str) -> Message | None:
    """The ``code`` message from ``values`` (metric name -> text), or None when no
    metric of that message has a value. Fields without a value are empty; the
    message ends at its last mapped field."""
    layout = fields.LAYOUTS[code]
    texts = [""] * len(layout.fields)
    bits = [0] * len(layout.fields)
    any_value = False
    for source in sources(code):
        text = values.get(source.metric)
        if text is None:
            continue
        try:
            out = field_text(source, text, units)
        except ValueError:
            continue
        any_value = True
        index = layout.index(source.field)
        if source.convert is Convert.BIT:
            if out == "1":
                bits[index] |= layout.flag(source.bit).bit.mask
            texts[index] = str(bits[index])
        else:
            texts[index] = out
    if not any_value:
        return None
    if code == "S":
        texts[layout.index("units")] = units
    last = max(i for i, t in enumerate(texts) if t)
    return Message(code, ",".join(texts[: last + 1]))


__all__ = ["KM_PER_MILE", "KPA_PER_PSI", "MAX_TEXT", "boolean", "field_text", "message_for",
           "number"]
