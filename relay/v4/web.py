"""The HTTP side of every v4 route: who is calling, whose vehicle, JSON errors, HAL answers.

v4 routes are registered with ``auth=False`` (relay.endpoints) because they
authenticate here: besides the REST API's cookie session and ``username`` +
``password``, v4 takes ``Authorization: Bearer <API token>``, and every refusal
is a JSON ``{"code", "message"}`` body rather than the older API's text. The
rate limit is the REST API's own (``HttpApi.handle``, before any route runs).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from relay import permits
from relay.http.api import login_of
from relay.http.authenticator import Login, bearer_token
from relay.http.call import Call
from relay.http.messages import HttpError, Response, encode_json, parse_params
from relay.params import ParamError
from relay.store import StoreError, VehicleRecord
from relay.v4.jsonparse import ApiError

if TYPE_CHECKING:
    from relay.v4.engine import V4Engine

log = logging.getLogger("relay.v4.http")

PREFIX = "/api/v4"
HAL = b"application/hal+json"
GEOJSON = b"application/vnd.geo+json"


class V4Error(ApiError):
    """An answer other than 400/501 (``ApiError`` subclasses carry those): any status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def not_found(message: str) -> V4Error:
    return V4Error(404, message)


def vehicle_href(vehicleid: str, *rest: str) -> str:
    return "/".join((f"{PREFIX}/user/vehicles/{vehicleid}", *rest))


def hal_response(data: Any, status: int = 200, *, content_type: bytes = HAL,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    return Response(status, encode_json(data), content_type, headers)


def error_response(status: int, message: str) -> Response:
    return Response(status, encode_json({"code": status, "message": message}),
                    b"application/json")


@attrs.define(eq=False)
class V4Call:
    """One authenticated v4 request."""

    call: Call
    login: Login
    engine: V4Engine
    query: dict[str, str]

    @property
    def owner(self) -> str:
        return self.login.owner

    @property
    def body(self) -> bytes:
        return self.call.request.body

    def context(self, vehicleid: str | None = None) -> str:
        return self.call.context(vehicleid)

    async def vehicle(self) -> VehicleRecord:
        """The path's vehicle if the caller owns it; 403 otherwise (unknown ones too, so
        callers cannot probe which vehicle ids exist)."""
        vehicleid = self.call.args.get("vehicleid", "").upper()
        valid = permits.vehicle_id(vehicleid)
        record = None if valid is None else await self.engine.store.get_vehicle(valid)
        if record is None or record.owner != self.owner:
            log.info("%s: v4 access to vehicle %r refused", self.context(), vehicleid[:40])
            raise V4Error(403, f"vehicle {vehicleid[:40]!r} is not one of your vehicles")
        return record


V4Handler = Callable[[V4Call], Awaitable[Response]]


async def _login(call: Call) -> Login:
    request = call.request
    api = call.api
    token = bearer_token(request.headers.get(b"authorization"))
    if token is not None:
        login = await api.auth.check_bearer(token, request.client_host)
        if login is None:
            # Never the token itself: it is a secret.
            log.info("http conn=%s addr=%s: v4 bearer token refused", request.conn_id,
                     request.client_host)
            raise V4Error(401, "invalid or revoked API token")
        return login
    # A cookie session or username + password, exactly as the REST API takes them.
    login = await login_of(call, keep_implicit=False)
    if login is not None:
        return login
    if call.params.get("username") and call.params.get("password"):
        raise V4Error(401, "authentication failed")
    raise V4Error(401, "authentication required: Authorization: Bearer <API token>, "
                       "a session cookie, or username and password")


def endpoint(fn: V4Handler, engine: V4Engine | None) -> Callable[[Call], Awaitable[Response]]:
    """Wrap a v4 handler as a REST route handler: authenticate, check the v4 right, turn
    every refusal into a JSON error. ``engine`` None: every call is a 503."""

    async def handler(call: Call) -> Response:
        try:
            login = await _login(call)
            if permits.grants_nothing(login.permissions):
                raise V4Error(401, "this API token grants nothing")
            if not permits.may(login.permissions, permits.V4):
                log.info("%s: v4 refused, no v4 right", call.context())
                raise V4Error(403, "insufficient rights: API v4 needs a token with permit "
                                   "v4 (or *)")
            call.login = login
            if engine is None:
                raise V4Error(503, "API v4 is not running")
            return await fn(V4Call(call, login, engine, _query(call)))
        except ApiError as exc:
            return error_response(exc.status, exc.message)
        except HttpError as exc:
            return error_response(exc.status, exc.text)
        except ParamError as exc:
            return error_response(400, str(exc))
        except StoreError as exc:
            log.error("%s: v4 store unavailable: %s", call.context(), exc)
            return error_response(503, "service unavailable")
        except Exception:
            log.exception("%s: v4 %s failed", call.context(), call.request.method)
            return error_response(500, "internal server error")

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


def _query(call: Call) -> dict[str, str]:
    # Only the query string: a v4 body is a JSON document, parsed by its handler.
    query = call.request.query
    params: Mapping[str, str] = parse_params(query) if query else {}
    return {k: v for k, v in params.items() if k not in ("username", "password")}
