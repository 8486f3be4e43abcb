"""A JSON API (``relay.webapi.JsonApi``, e.g. API v4) served as routes of the REST API.

Its routes are ``auth=False`` in the table because they authenticate here: an
API token as ``Authorization: Bearer``, or the REST API's own session cookie or
``username`` + ``password``; every refusal made here is the API's JSON error
rather than the REST API's text. The rate limit is the REST API's own
(``HttpApi.handle``, before any route runs). The API's handler then gets an
``ApiCall``: what the request asked and who asked, nothing of HTTP.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from relay.http.api import login_of
from relay.http.authenticator import Login, bearer_token
from relay.http.call import Call
from relay.http.messages import HttpError, Response
from relay.http.routes import Handler, Route
from relay.webapi import ApiCall, ApiHandler, Caller, JsonApi, json_error

log = logging.getLogger("relay.http")

# Never passed on: the credentials are this module's business.
_CREDENTIALS = ("username", "password")


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_api_routes(api: JsonApi) -> tuple[Route, ...]:
    """``api``'s routes for the REST API's table (relay.endpoints assembles them)."""
    return tuple(
        Route(r.method, r.path, _serve(r.handler), r.summary, auth=False, tag=api.tag,
              schema=r.schema, params=r.params, errors=r.errors, json_api=api, body=r.body,
              ok=r.ok, media_type=r.media_type or api.media_type)
        for r in api.routes)


def _serve(handler: ApiHandler) -> Handler:
    async def serve(call: Call) -> Response:
        try:
            login = await _login(call)
        except Refused as exc:
            return json_error(exc.status, exc.message)
        except HttpError as exc:  # too many failed logins
            return json_error(exc.status, exc.text)
        call.login = login
        return await handler(ApiCall(
            call.request.method, call.request.path, call.args, _query(call.params),
            call.request.body, Caller(login.owner, login.permissions, login.via), call.context()))

    serve.__name__ = handler.__name__
    serve.__doc__ = handler.__doc__
    return serve


async def _login(call: Call) -> Login:
    request = call.request
    token = bearer_token(request.headers.get(b"authorization"))
    if token is not None:
        login = await call.api.auth.check_bearer(token, request.client_host)
        if login is None:
            # Never the token itself: it is a secret.
            log.info("http conn=%s addr=%s: bearer token refused", request.conn_id,
                     request.client_host)
            raise Refused(401, "invalid or revoked API token")
        return login
    # A cookie session or username + password, exactly as the REST API takes them.
    login = await login_of(call, keep_implicit=False)
    if login is not None:
        return login
    if call.params.get("username") and call.params.get("password"):
        raise Refused(401, "authentication failed")
    raise Refused(401, "authentication required: Authorization: Bearer <API token>, "
                       "a session cookie, or username and password")


def _query(params: Mapping[str, str]) -> dict[str, str]:
    # A JSON API's call params are its query string only (HttpApi._answer): the body
    # is a JSON document, parsed by its handler.
    return {k: v for k, v in params.items() if k not in _CREDENTIALS}
