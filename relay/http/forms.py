"""Request bodies read as parameters: form, multipart form and JSON object bodies.

The public server reads parameters with Mojolicious's ``param``, which parses both
``application/x-www-form-urlencoded`` and ``multipart/form-data`` bodies (openWB
creates its token with a multipart body). Bodies are bounded before they get here
(relay.http.server: 64 KiB, else 413); the field count is bounded here (64 per
source, else 400), and a multipart part may carry at most 8 headers of 4 KiB.
A part sent as a file upload is read as a field too: its content is the value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

# Query strings and bodies: more fields than any real client sends is an attack.
MAX_PARAMS = 64


class FormError(ValueError):
    """A body or query string that cannot be read as parameters (the text says why)."""


def parse_params(text: str) -> dict[str, str]:
    """Fields of a query string or urlencoded body; the first value of a repeated name."""
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS,
                          errors="replace")
    except ValueError:
        raise FormError("too many parameters") from None
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def body_params(content_type: bytes, body: bytes) -> dict[str, str]:
    """The fields of a request body, by its content type.

    JSON objects and multipart forms by their types; anything else is read as a
    urlencoded form (``curl -d`` sends the type, scripts may not).
    """
    if not body:
        return {}
    ctype, options = parse_options_header(content_type)
    ctype = ctype.strip().lower()
    if ctype == b"application/json":
        return _json_params(body)
    if ctype == b"multipart/form-data":
        return _multipart_params(options.get(b"boundary", b""), body)
    return parse_params(body.decode("utf-8", "replace"))


def _json_params(body: bytes) -> dict[str, str]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise FormError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise FormError("JSON body must be an object")
    if len(data) > MAX_PARAMS:
        raise FormError("too many parameters")
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise FormError(f"JSON field {key!r} must be a string or a number")
        out[str(key)] = str(value)
    return out


class _Parts:
    """Collects the parts of a multipart body as (name, value) fields."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.count = 0
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._value = bytearray()

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._disposition = b""
        self._value.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _part_end(self) -> None:
        self.count += 1
        if self.count > MAX_PARAMS:
            raise FormError("too many parameters")
        kind, options = parse_options_header(self._disposition)
        name = options.get(b"name")
        if kind.lower() != b"form-data" or name is None:
            return  # not a form field: nothing to read as a parameter
        self.fields.setdefault(name.decode("utf-8", "replace"),
                               bytes(self._value).decode("utf-8", "replace"))


def _multipart_params(boundary: bytes, body: bytes) -> dict[str, str]:
    if not boundary:
        raise FormError("multipart body without a boundary")
    parts = _Parts()
    try:
        parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise FormError("malformed multipart body") from None
    return parts.fields
