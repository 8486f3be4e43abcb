"""Requests and responses as the API handlers see them: plain data, no sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import parse_qsl

import attrs

JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain"
# Query strings and form bodies: more fields than any real client sends is an attack.
MAX_PARAMS = 64


@attrs.frozen
class Request:
    method: str
    path: str
    query: str  # raw query string, parsed by params()
    headers: dict[bytes, bytes]  # lower-case names; repeated headers joined with ", "
    body: bytes
    client_host: str
    conn_id: str
    tls: bool = False

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get(b"cookie")
        if not raw:
            return None
        prefix = name + "="
        for part in raw.decode("latin-1").split(";"):
            part = part.strip()
            if part.startswith(prefix):
                return part[len(prefix):]
        return None

    def params(self) -> dict[str, str]:
        """Query parameters, overridden by a form or JSON object body (PUT/POST)."""
        merged = parse_params(self.query) if self.query else {}
        if not self.body:
            return merged
        ctype = self.headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if ctype == b"application/json":
            try:
                data = json.loads(self.body)
            except (ValueError, UnicodeDecodeError):
                raise BadRequest("body is not valid JSON") from None
            if not isinstance(data, dict):
                raise BadRequest("JSON body must be an object")
            for key, value in data.items():
                if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                    raise BadRequest(f"JSON field {key!r} must be a string or a number")
                merged[str(key)] = str(value)
        else:
            # Form bodies, also without a content type (curl -d sends one; scripts may not).
            merged.update(parse_params(self.body.decode("utf-8", "replace")))
        return merged


class HttpError(Exception):
    """Answer the request with ``status`` and the one-line ``text`` (plain text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class BadRequest(HttpError):
    """The request cannot be served as sent: 400 with this text."""

    def __init__(self, text: str) -> None:
        super().__init__(400, text)


def parse_params(text: str) -> dict[str, str]:
    """First value of each name wins, as in the public server's query_param."""
    out: dict[str, str] = {}
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_PARAMS,
                          errors="replace")
    except ValueError:
        raise BadRequest("too many parameters") from None
    for key, value in pairs:
        out.setdefault(key, value)
    return out


@attrs.frozen
class Response:
    status: int
    body: bytes = b""
    content_type: bytes = TEXT_TYPE
    headers: tuple[tuple[bytes, bytes], ...] = ()
    # A body sent as it is produced (server-sent events) instead of ``body``.
    stream: AsyncGenerator[bytes, None] | None = None


def encode_json(data: Any) -> bytes:
    """Canonical JSON (sorted keys, no spaces) with a trailing newline, as the public server."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # Car text may hold undecodable bytes (kept as lone surrogates): replace them.
    return (text + "\n").encode("utf-8", "replace")


def json_response(data: Any, status: int = 200,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    return Response(status, encode_json(data), JSON_TYPE, headers)


def text_response(status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()
                  ) -> Response:
    """A plain-text answer; texts end with a newline like the public server's."""
    return Response(status, (text + "\n").encode("utf-8", "replace"), TEXT_TYPE, headers)
