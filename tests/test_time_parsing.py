"""Issue 11: one parser of times (protocol/values.py) for v2, REST and API v4.

``since`` has two documented forms, both parsed by ``values.parse_since``: the v2
form of commands 31/32 (lenient, as the public server's MySQL reads it) and the
exact REST form (``relay.params.since`` maps its refusals to a 400 text). RFC 3339
times of API v4 are parsed there too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from protocol import values
from relay import params

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("text", "v2", "rest"), [
    ("", None, None),
    ("0", 0, 0),
    ("1767225600", 1767225600, 1767225600),
    ("2026-01-01", 1767225600, 1767225600),
    ("2026-01-01 00:00:01", 1767225601, 1767225601),
    ("1900-01-01", 0, 0),
    ("0000-01-01", ValueError, 0),  # no year 0 in the v2 form; REST clamps it to 1970
    ("0000-00-00", None, ValueError),  # the public server's default: only in v2
    (" 5", 5, ValueError),
    ("2026-1-1", 1767225600, ValueError),
    ("2026-01-01  1:2:3", 1767229323, ValueError),
    ("253402300799", values.MAX_SINCE, ValueError),  # 12 digits: v2 only
    ("253402300800", ValueError, ValueError),
    ("2026-02-29", ValueError, ValueError),
    ("2026-01-01T00:00:00", ValueError, ValueError),
])
def test_both_since_forms(text: str, v2: object, rest: object) -> None:
    for exact, expected in ((False, v2), (True, rest)):
        if expected is ValueError:
            with pytest.raises(values.TimeError):
                values.parse_since(text, exact=exact)
        else:
            assert values.parse_since(text, exact=exact) == expected


def test_only_ascii_digits() -> None:
    """Issue 11: the v2 ``since`` went through strptime, which took Arabic-Indic digits
    against the module's rule of plain ASCII numbers; now neither form does."""
    arabic = "\u0662\u0660\u0662\u0666"  # 2026 in Arabic-Indic digits
    fullwidth = "".join(chr(0xFF10 + int(c)) for c in "1767225600")
    for text in (f"{arabic}-01-01", "2026-\u0660\u0661-01", fullwidth):
        for exact in (False, True):
            with pytest.raises(values.TimeError):
                values.parse_since(text, exact=exact)


def test_rest_texts_keep_naming_the_parameter() -> None:
    with pytest.raises(params.ParamError, match=r"^parameter since must be unix seconds"):
        params.since("x")
    with pytest.raises(params.ParamError,
                       match=r"^parameter since \(the first of parameters\): not a valid"):
        params.since("2026-02-30", "since (the first of parameters)")
    with pytest.raises(params.ParamError, match=r"^until: 'x' is not an RFC 3339 time"):
        params.rfc3339_seconds("x", "until")
    with pytest.raises(params.ParamError, match=r"^since: offset \+24:00 is out of range"):
        params.rfc3339_seconds("2026-01-01T00:00:00+24:00", "since")
    with pytest.raises(params.ParamError, match=r"^parameter since: not a valid calendar"):
        params.rfc3339_seconds("2026-02-30T00:00:00Z", "since")
    assert params.rfc3339_seconds("2026-01-01T01:00:00.5+01:00", "since") == 1767225600.5
    assert params.rfc3339_seconds("1969-12-31T23:59:60Z", "since") == 0


def test_v2_texts() -> None:
    with pytest.raises(values.TimeError, match=r"^since '2026-02-30' is not 'YYYY-MM-DD"):
        values.parse_since("2026-02-30")
    with pytest.raises(values.TimeError, match=r"^since 253402300800 is out of range"):
        values.parse_since("253402300800")


def test_civil_seconds_any_year() -> None:
    assert values.civil_seconds(1970, 1, 1) == 0
    assert values.civil_seconds(2000, 2, 29, 12) == 951825600
    assert values.civil_seconds(0, 1, 1) == -62167219200
    with pytest.raises(values.TimeError):
        values.civil_seconds(2100, 2, 29)


def test_no_other_time_parser() -> None:
    """relay/ and protocol/ parse times only in protocol/values.py."""
    for path in [*ROOT.glob("relay/**/*.py"), *ROOT.glob("protocol/*.py")]:
        if path.name == "values.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("strptime", "fromisoformat"), f"{path}:{node.lineno}"
