"""Requests and responses as the API handlers see them: plain data, no sockets."""

from __future__ import annotations

from typing import Any

import attrs

from relay.http.forms import FormError, body_params
from relay.http.forms import parse_params as _parse_params

# The answer and its JSON encoding are shared with APIs built outside relay.http.
from relay.webapi import JSON_TYPE, TEXT_TYPE, Response, encode_json

__all__ = [
    "JSON_TYPE", "TEXT_TYPE", "BadRequest", "HttpError", "Request", "Response", "encode_json",
    "json_response", "parse_params", "text_response",
]


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
        """Body fields (form, multipart form or JSON object), then the query string's.

        A name in both takes the query string's value: the public server's
        Mojolicious ``param`` lists the body's fields first and answers the last.
        """
        try:
            merged = body_params(self.headers.get(b"content-type", b""), self.body)
            if self.query:
                merged.update(_parse_params(self.query))
        except FormError as exc:
            raise BadRequest(str(exc)) from None
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
    """A query string's fields; the first value of a repeated name. 400 if unreadable."""
    try:
        return _parse_params(text)
    except FormError as exc:
        raise BadRequest(str(exc)) from None


def json_response(data: Any, status: int = 200,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    return Response(status, encode_json(data), JSON_TYPE, headers)


def text_response(status: int, text: str, headers: tuple[tuple[bytes, bytes], ...] = ()
                  ) -> Response:
    """A plain-text answer; texts end with a newline like the public server's."""
    return Response(status, (text + "\n").encode("utf-8", "replace"), TEXT_TYPE, headers)
