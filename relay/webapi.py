"""What an API built outside ``relay.http`` gives it and gets from it: plain data, no sockets.

``relay.http`` serves HTTP; an API such as v4 describes its routes with the
classes here (``JsonApi``, ``ApiRoute``) and answers ``ApiCall`` objects with a
``Response``. The server hands one to the other (``relay.endpoints``), so
neither imports the other: http authenticates the caller and turns the
answer into bytes on the wire, the API decides what the caller may see.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import attrs

JSON_TYPE = b"application/json"
TEXT_TYPE = b"text/plain"


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


def json_error(status: int, message: str) -> Response:
    """A JSON API's refusal: ``{"code": status, "message": message}``."""
    return Response(status, encode_json({"code": status, "message": message}), JSON_TYPE)


@attrs.frozen
class Param:
    """A query parameter, as the OpenAPI document describes it."""

    name: str
    description: str
    type: str = "string"  # JSON schema type
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str = ""  # JSON-schema pattern: every matching value is accepted
    format: str = ""  # JSON-schema format (date-time)


@attrs.frozen
class Caller:
    """Who is calling, once authenticated: the account, its permit list (``relay.permits``:
    ``*`` or comma-separated words) and how it was proven."""

    owner: str
    permissions: str
    via: str  # "password", "token" or "session"


@attrs.frozen
class ApiCall:
    """One authenticated request to an API."""

    method: str
    path: str
    args: Mapping[str, str]  # path parameters, percent-decoded
    query: Mapping[str, str]  # the query string's fields (never username/password)
    body: bytes  # the JSON document of a PUT or POST, for the handler to parse
    caller: Caller
    log_context: str  # who and where, for log lines: "http conn=... addr=... owner=..."

    @property
    def owner(self) -> str:
        return self.caller.owner

    def context(self, vehicleid: str | None = None) -> str:
        return self.log_context if vehicleid is None else f"{self.log_context} vehicle={vehicleid}"


ApiHandler = Callable[[ApiCall], Awaitable[Response]]


@attrs.frozen
class ApiRoute:
    method: str
    path: str  # template, e.g. /api/v4/user/vehicles/{vehicleid}
    handler: ApiHandler
    summary: str
    schema: str = ""  # response schema name (JsonApi.schemas or the server's own)
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # statuses beyond the common 400/401/403/429
    body: dict[str, Any] | None = None  # JSON schema of the request body (None: any object)
    ok: int = 200  # the status of success
    media_type: str = ""  # of a successful answer ("": the API's)


@attrs.frozen
class JsonApi:
    """An API whose bodies are JSON documents and whose refusals are ``json_error``s,
    authenticated by the server (API token, session cookie, or username and password),
    with what the OpenAPI document says of it."""

    routes: tuple[ApiRoute, ...]
    tag: str  # its OpenAPI tag
    description: str  # added to each of its operations
    media_type: str  # of its successful answers
    schemas: Mapping[str, Any]  # OpenAPI components its routes name, the error's included
    error_schema: str  # the schema of its ``json_error`` bodies
