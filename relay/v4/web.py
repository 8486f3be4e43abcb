"""Every v4 call's common part: whose vehicle, the v4 right, JSON errors, HAL answers.

The server authenticates the caller (``relay.http.jsonapi``: an API token as
``Authorization: Bearer``, a session cookie, or ``username`` + ``password``) and
hands each handler here a ``relay.webapi.ApiCall``; every refusal is a JSON
``{"code", "message"}`` body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from relay import permits
from relay.params import ParamError
from relay.store import StoreError, VehicleRecord
from relay.v4.jsonparse import ApiError
from relay.webapi import ApiCall, ApiHandler, Caller, Response, encode_json, json_error

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


@attrs.define(eq=False)
class V4Call:
    """One authenticated v4 request and the engine that answers it."""

    call: ApiCall
    engine: V4Engine

    @property
    def owner(self) -> str:
        return self.call.owner

    @property
    def caller(self) -> Caller:
        return self.call.caller

    @property
    def body(self) -> bytes:
        return self.call.body

    @property
    def path(self) -> str:
        return self.call.path

    @property
    def args(self) -> Mapping[str, str]:
        return self.call.args

    @property
    def query(self) -> Mapping[str, str]:
        return self.call.query

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


def endpoint(fn: V4Handler, engine: V4Engine | None) -> ApiHandler:
    """Wrap a v4 handler: check the v4 right, turn every refusal into a JSON error.
    ``engine`` None: every call is a 503."""

    async def handler(call: ApiCall) -> Response:
        try:
            permissions = call.caller.permissions
            if permits.grants_nothing(permissions):
                raise V4Error(401, "this API token grants nothing")
            if not permits.may(permissions, permits.V4):
                log.info("%s: v4 refused, no v4 right", call.context())
                raise V4Error(403, "insufficient rights: API v4 needs a token with permit "
                                   "v4 (or *)")
            if engine is None:
                raise V4Error(503, "API v4 is not running")
            return await fn(V4Call(call, engine))
        except ApiError as exc:
            return json_error(exc.status, exc.message)
        except ParamError as exc:
            return json_error(400, str(exc))
        except StoreError as exc:
            log.error("%s: v4 store unavailable: %s", call.context(), exc)
            return json_error(503, "service unavailable")
        except Exception:
            log.exception("%s: v4 %s failed", call.context(), call.method)
            return json_error(500, "internal server error")

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler
