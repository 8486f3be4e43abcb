"""The API as one object: shared state (sessions, login cache, rate limiter) and dispatch.

One instance serves every HTTP(S) listener of a relay, found by ``api_for(services)``,
so a session made over HTTPS works over HTTP and one address has one quota.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

import trio

from relay import permits
from relay.config import Config
from relay.http.authenticator import Authenticator, Credential, Login
from relay.http.call import Call
from relay.http.messages import (
    HttpError,
    Request,
    Response,
    encode_json,
    json_response,
    parse_params,
    text_response,
)
from relay.http.metricsview import parse_allow
from relay.http.openapi import build as build_openapi
from relay.http.proxy import parse_trusted
from relay.http.ratelimit import RateLimiter
from relay.http.routes import ROUTES, Match, Route, RouteTable
from relay.http.sessions import SessionTable
from relay.http.shared import SharedSessions
from relay.http.views import COOKIE_NAME
from relay.metrics import UNMATCHED
from relay.params import ParamError
from relay.services import Services
from relay.store import StoreError

log = logging.getLogger("relay.http")

# How often idle sessions are ended (and the car told); at least this promptly.
MAX_SWEEP_INTERVAL = 10.0
_PREFLIGHT_HEADERS = (
    (b"access-control-allow-methods", b"GET, PUT, POST, DELETE, OPTIONS"),
    (b"access-control-max-age", b"600"),
)


async def openapi_document(call: Call) -> Response:
    return call.api.openapi_response()


OPENAPI_ROUTE = Route("GET", "/api/openapi.json", openapi_document, "This document",
                      auth=False, tag="meta")
# The REST API's own routes; the server adds those of other APIs (relay.endpoints).
ALL_ROUTES: tuple[Route, ...] = (*ROUTES, OPENAPI_ROUTE)


class HttpApi:
    def __init__(self, services: Services, routes: tuple[Route, ...] = ALL_ROUTES) -> None:
        self.services = services
        self.config: Config = services.config
        config = self.config
        self.auth = Authenticator(services.store, config.api_auth_cache_ttl,
                                  services.login_guard)
        # In a cluster, cookie sessions are shared through the database (relay.http.shared).
        shared = SharedSessions(services.store, services.hub, config.api_session_timeout,
                                self._credential_valid, config.api_session_recheck
                                ) if config.bus else None
        self.sessions = SessionTable(services.hub, config.api_idle_timeout,
                                     config.api_session_timeout, shared=shared)
        self.limiter = RateLimiter(
            config.api_rate_burst, config.api_rate_per_minute, config.api_rate_max,
            exempt=config.api_rate_exempt.split(","),
        )
        self.routes = routes
        self.table = RouteTable(routes)
        self.trusted_proxies = parse_trusted(config.api_trusted_proxies)
        self.metrics_allow = parse_allow(config.metrics_allow)
        # Path prefix -> handler of everything under it (the web console, relay.console).
        self.mounts: dict[str, Callable[[Request], Awaitable[Response]]] = {}
        self._openapi: bytes | None = None

    async def _credential_valid(self, owner: str, credential: Credential) -> bool:
        return not await self.auth.revoked({(owner, credential)})

    def openapi_response(self) -> Response:
        if self._openapi is None:
            self._openapi = encode_json(build_openapi(self.routes))
        return Response(200, self._openapi, b"application/json")

    async def maintain(self) -> None:
        """End idle sessions (their cars get ``Z``) and sessions whose credentials were
        revoked, forget idle rate-limit entries."""
        interval = min(MAX_SWEEP_INTERVAL, max(0.05, self.config.api_idle_timeout / 4))
        while True:
            await trio.sleep(interval)
            self.sessions.expire()
            self.limiter.forget_idle()
            # A stuck or failing store must not stop the idle sweep: try again next round.
            with trio.move_on_after(MAX_SWEEP_INTERVAL):
                try:
                    await self.revalidate()
                    await self.sessions.flush()
                except StoreError as exc:
                    log.warning("http: cannot check sessions' credentials now: %s", exc)

    async def revalidate(self) -> int:
        """End sessions and forget cached logins whose token or password was revoked
        meanwhile (e.g. with ovms-admin); returns how many sessions ended."""
        revoked = await self.auth.revoked(self.sessions.credentials())
        if not revoked:
            return 0
        return self.sessions.end_revoked(revoked, "credentials revoked")

    async def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        match = self.table.match(request.method, request.path)
        response = await self._answer(request, match)
        # The route's template, never the path: bounded labels, and a path may hold a token.
        if match is not None:
            route = match.route.path
        else:
            route = next((prefix + "/*" for prefix in self.mounts
                          if request.path == prefix or request.path.startswith(prefix + "/")),
                         UNMATCHED)
        self.services.metrics.http_request(route, response.status,
                                           time.perf_counter() - started)
        return response

    async def _answer(self, request: Request, match: Match | None) -> Response:
        if not self.limiter.allow(request.client_host):
            if match is not None and match.route.json_api is not None:
                return json_response({"code": 429, "message": "Too many requests"}, 429)
            return text_response(429, "Too many requests")
        if request.method == "OPTIONS":
            return _preflight(request)
        for prefix, mounted in self.mounts.items():
            if request.path == prefix or request.path.startswith(prefix + "/"):
                return await mounted(request)
        if match is None:
            path = request.path
            allowed = self.table.methods(path)
            if allowed:
                allow = ", ".join((*allowed, "OPTIONS")).encode("ascii")
                return text_response(405, "Method not allowed", headers=((b"allow", allow),))
            if path == "/api" or path.startswith(("/api/", "/mqapi/")):
                log.debug("http conn=%s: no API call %s %s", request.conn_id, request.method,
                          path[:100])
                return text_response(404, "Unrecognised API call")
            return text_response(404, "not found")
        try:
            # A JSON API's body is a document its handler parses, not flat parameters.
            params = (parse_params(request.query) if match.route.json_api is not None
                      else request.params())
            call = Call(self, request, match.args, params)
            if match.route.auth:
                refusal = await self._authenticate(call, match.route)
                if refusal is not None:
                    return refusal
            return await match.route.handler(call)
        except HttpError as exc:
            return text_response(exc.status, exc.text)
        except ParamError as exc:
            return text_response(400, str(exc))
        # The route's template is logged, not the path: a path may hold a token.
        except StoreError as exc:
            log.error("http conn=%s: %s %s: store unavailable: %s", request.conn_id,
                      request.method, match.route.path, exc)
            return text_response(503, "Service unavailable: the database is not answering, "
                                      "try again later")
        except Exception:
            log.exception("http conn=%s: %s %s failed", request.conn_id, request.method,
                          match.route.path)
            return text_response(500, "Internal server error")

    async def _authenticate(self, call: Call, route: Route) -> Response | None:
        """Fill in ``call.login`` (and ``call.session``); an answer if the call is refused."""
        request = call.request
        reasons: list[str] = []  # why a 401, for its log line
        call.login = await login_of(call, reasons=reasons)
        if call.login is None or permits.grants_nothing(call.login.permissions):
            reasons.append("token with permit none" if call.login else "no credentials")
            log.info("http conn=%s addr=%s: %s %s: 401 (%s)", request.conn_id,
                     request.client_host, route.method, route.path, reasons[0])
            call.login = None
            return text_response(401, "Authentication failed")
        if not permits.may(call.login.permissions, route.right):
            log.info("%s: %s %s refused, insufficient rights", call.context(), route.method,
                     route.path)
            return text_response(403, "Insufficient rights")
        return None


async def login_of(call: Call, *, keep_implicit: bool = True,
                   reasons: list[str] | None = None) -> Login | None:
    """The caller's login from a session cookie (``call.session`` set too) or
    ``username`` + ``password``; None if neither, or refused. With ``keep_implicit``,
    a password login keeps the caller's implicit session alive; ``reasons`` collects
    why a login was refused (unknown or ended session, bad password), for the 401's
    log line."""
    request = call.request
    sid = request.cookie(COOKIE_NAME)
    if sid:
        session = await call.api.sessions.lookup(sid)
        if session is not None:
            call.session = session
            return Login(session.owner, session.permissions, "session", session.credential)
        if reasons is not None:
            reasons.append(call.api.sessions.why_not(sid))
    username = call.params.get("username", "")
    password = call.params.get("password", "")
    if not (username and password):
        return None
    login = await call.api.auth.check(username, password, request.client_host)
    call.api.services.metrics.login("rest", "refused" if login is None else "ok")
    if login is None:
        if reasons is not None:
            reasons.append(f"bad password or token for user {username[:64]!r}")
        else:
            log.info("http conn=%s addr=%s user=%r: authentication failed",
                     request.conn_id, request.client_host, username[:64])
    elif keep_implicit:
        call.api.sessions.implicit(login.owner, request.client_host, login.permissions,
                                   create=False, credential=login.credential)
    return login


def _preflight(request: Request) -> Response:
    """CORS preflight for browser apps: any origin, our methods, the headers they ask for."""
    asked = request.headers.get(b"access-control-request-headers", b"content-type")
    return Response(204, b"", b"text/plain",
                    (*_PREFLIGHT_HEADERS, (b"access-control-allow-headers",
                                           allowed_headers(asked))))


_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
MAX_ALLOW_HEADERS = 200


def allowed_headers(asked: bytes) -> bytes:
    """The header names a preflight asked for, as a valid header value of at most 200 bytes.

    Only well-formed names are echoed, and the list is cut between names: a value cut
    mid-list ended in ", " (trailing whitespace), which h11 refuses to send, and the
    connection closed without an answer.
    """
    names: list[bytes] = []
    size = 0
    for part in asked.split(b","):
        name = part.strip()
        if not _HEADER_NAME.fullmatch(name):
            continue
        size += len(name) + (2 if names else 0)
        if size > MAX_ALLOW_HEADERS:
            break
        names.append(name)
    return b", ".join(names)


def api_for(services: Services) -> HttpApi:
    """The relay's one HttpApi (made by the server with every route, relay.endpoints;
    else created on first use with the REST API's own, kept on the relay's Services)."""
    if not isinstance(services.http_api, HttpApi):
        services.http_api = HttpApi(services)
    return services.http_api


__all__ = ["HttpApi", "api_for", "json_response"]
