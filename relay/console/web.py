"""The console's HTTP side: its URL table, sessions, CSRF, templates and static files.

Everything under ``/ui`` reaches ``Console.handle`` (mounted on the REST API by
``relay.console.mount``). Pages are rendered on the server with Jinja2, with
autoescaping on: every value a car, a user or a token label supplies is text.
The login is the REST API's cookie session (``ovmsapisession``); a form that
changes something carries a CSRF token derived from that session, and requests
from another site are refused by their Origin as well.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mimetypes
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import attrs
import jinja2

from relay import permits
from relay.console.bridge import Bridge, Result
from relay.http.api import HttpApi
from relay.http.formatting import time_text
from relay.http.messages import HttpError, Request, Response, parse_params
from relay.http.sessions import Session
from relay.http.views import COOKIE_NAME
from relay.store import StoreError
from relay.v4.engine import V4Engine

log = logging.getLogger("relay.console")

PREFIX = "/ui"
HTML = b"text/html; charset=utf-8"
# Notices kept for the next page of a session (after a redirect); a bound, not a store.
MAX_NOTICES = 10_000
_STATIC_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


@attrs.frozen
class Notice:
    text: str
    ok: bool = True


Handler = Callable[["Page"], Awaitable[Response]]


@attrs.frozen
class UiRoute:
    method: str
    pattern: re.Pattern[str]
    handler: Handler
    login: bool = True
    admin: bool = False


def route(method: str, path: str, handler: Handler, *, login: bool = True,
          admin: bool = False) -> UiRoute:
    """``path`` below /ui; ``{name}`` captures one path segment."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    return UiRoute(method, re.compile(regex + r"\Z"), handler, login, admin)


@attrs.define(eq=False)
class Page:
    """One request to the console, as its handler sees it."""

    console: Console
    request: Request
    session: Session | None
    form: dict[str, str]
    args: dict[str, str]

    @property
    def owner(self) -> str:
        assert self.session is not None
        return self.session.owner

    @property
    def is_admin(self) -> bool:
        return self.session is not None and permits.may(self.session.permissions, permits.ADMIN)

    @property
    def csrf(self) -> str:
        return self.console.csrf_token(self.session) if self.session is not None else ""

    async def api(self, method: str, path: str, **kwargs: Any) -> Result:
        assert self.session is not None
        return await self.console.bridge.call(self.request, self.session, method, path,
                                              **kwargs)

    def notice(self, text: str, *, ok: bool = True) -> None:
        if self.session is not None:
            self.console.add_notice(self.session, Notice(text, ok))

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        notices = self.console.take_notices(self.session) if self.session else []
        body = self.console.templates.get_template(template).render(
            page=self, notices=notices, tile_url=self.console.tile_url, prefix=PREFIX,
            **values)
        return Response(status, body.encode("utf-8"), HTML, self.console.page_headers)

    def redirect(self, location: str) -> Response:
        return Response(303, b"", b"text/plain",
                        ((b"location", location.encode("utf-8")), (b"cache-control", b"no-store")))


class Console:
    def __init__(self, api: HttpApi, routes: list[UiRoute],
                 engine: V4Engine | None = None) -> None:
        self.api = api
        self.engine = engine
        self.bridge = Bridge(api)
        self.routes = routes
        self._key = secrets.token_bytes(32)
        self._notices: dict[str, list[Notice]] = {}
        self.tile_url = api.config.console_tile_url
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("relay.console", "templates"),
            autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
            lstrip_blocks=True)
        self.templates.filters["utc"] = time_text
        self.page_headers = _page_headers(self.tile_url)
        self._static: dict[str, tuple[bytes, bytes]] = {}
        self.started = time.monotonic()
        # (when, car messages so far) at the previous status view: the rate between views.
        self._rate_sample = (self.started, 0)
        # (session id, vehicle id) -> open vehicle pages (event streams) of that session
        self._watching: dict[tuple[str, str], int] = {}

    def watching(self, session: Session, vehicleid: str, delta: int) -> None:
        """Count the session's open vehicle pages: the first registers the session as an
        app of the vehicle (as ``GET /api/vehicle`` does), closing the last unregisters."""
        key = (session.sid, vehicleid)
        count = self._watching.get(key, 0) + delta
        if count > 0:
            self._watching[key] = count
            if count == 1 and delta > 0:
                self.api.sessions.connect(session, vehicleid)
        else:
            self._watching.pop(key, None)
            self.api.sessions.disconnect(session, vehicleid)

    def message_rate(self, now: float, messages: int) -> float:
        """Car messages per second since the previous call (since start, the first time)."""
        then, before = self._rate_sample
        self._rate_sample = (now, messages)
        return (messages - before) / max(now - then, 1e-3)

    # --- sessions, CSRF and notices ---------------------------------------------------

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, session.sid.encode("ascii"), hashlib.sha256).hexdigest()

    def add_notice(self, session: Session, notice: Notice) -> None:
        if len(self._notices) >= MAX_NOTICES:
            self._notices.clear()
        self._notices.setdefault(session.sid, []).append(notice)

    def take_notices(self, session: Session) -> list[Notice]:
        return self._notices.pop(session.sid, [])

    def login_cookie(self, session: Session, request: Request) -> bytes:
        secure = "; Secure" if request.tls else ""
        return (f"{COOKIE_NAME}={session.sid}; Path=/; HttpOnly; SameSite=Lax{secure}"
                .encode("ascii"))

    # --- dispatch ----------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX):] or "/"
        if path.startswith("/static/"):
            return self._static_file(request, path[len("/static/"):])
        method = "GET" if request.method == "HEAD" else request.method
        found = None
        allowed = False
        for candidate in self.routes:
            match = candidate.pattern.match(path)
            if match is not None:
                allowed = True
                if candidate.method == method:
                    found = (candidate, match.groupdict())
                    break
        if found is None:
            status = 405 if allowed else 404
            return _plain(status, "Method not allowed" if allowed else "Not found")
        ui_route, args = found
        sid = request.cookie(COOKIE_NAME)
        session = self.api.sessions.get(sid) if sid else None
        try:
            form = request.params() if method == "POST" else _query(request)
        except HttpError as exc:
            return _plain(exc.status, exc.text)
        page = Page(self, request, session, form, args)
        if ui_route.login and session is None:
            if method == "GET" and path != "/events":
                return page.redirect(f"{PREFIX}/")
            return _plain(401, "Not logged in")
        if method == "POST":
            refusal = self._check_post(page, needs_token=ui_route.login)
            if refusal is not None:
                return refusal
        if ui_route.admin and not page.is_admin:
            return page.render("error.html", 403, title="Not allowed",
                               text="This page is for operators (the admin permit).")
        try:
            return await ui_route.handler(page)
        except HttpError as exc:
            return _plain(exc.status, exc.text)
        except StoreError as exc:
            log.error("console %s %s: store unavailable: %s", method, ui_route.pattern.pattern,
                      exc)
            return _plain(503, "Service unavailable")
        except Exception:
            log.exception("console %s %s failed", method, ui_route.pattern.pattern)
            return _plain(500, "Internal server error")

    def _check_post(self, page: Page, *, needs_token: bool) -> Response | None:
        request = page.request
        origin = request.headers.get(b"origin")
        host = request.headers.get(b"host", b"").decode("latin-1")
        if origin is not None and origin != b"null":
            if urlsplit(origin.decode("latin-1")).netloc != host:
                log.info("console conn=%s addr=%s: cross-site POST refused (origin %r)",
                         request.conn_id, request.client_host, origin[:100])
                return _plain(403, "Cross-site request refused")
        elif origin == b"null":
            return _plain(403, "Cross-site request refused")
        if needs_token:
            assert page.session is not None
            expected = self.csrf_token(page.session)
            if not hmac.compare_digest(page.form.get("csrf", ""), expected):
                log.info("%s: console POST without a valid CSRF token refused",
                         page.session.context())
                return _plain(403, "Form expired or forged: reload the page and try again")
        return None

    def _static_file(self, request: Request, name: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return _plain(405, "Method not allowed")
        cached = self._static.get(name)
        if cached is None:
            if not _STATIC_NAME_RE.fullmatch(name) or ".." in name:
                return _plain(404, "Not found")
            resource = resources.files("relay.console").joinpath("static", *name.split("/"))
            if not resource.is_file():
                return _plain(404, "Not found")
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype == "application/javascript":
                ctype += "; charset=utf-8"
            cached = (resource.read_bytes(), ctype.encode("ascii"))
            self._static[name] = cached
        body, ctype_bytes = cached
        return Response(200, body, ctype_bytes, (
            (b"cache-control", b"max-age=3600"), (b"x-content-type-options", b"nosniff")))


def _query(request: Request) -> dict[str, str]:
    return parse_params(request.query) if request.query else {}


def _plain(status: int, text: str) -> Response:
    return Response(status, (text + "\n").encode("utf-8"), b"text/plain; charset=utf-8",
                    ((b"cache-control", b"no-store"),))


def tile_origin(tile_url: str) -> str:
    """The CSP source for map tiles: the tile URL's origin, ``{s}`` subdomains as ``*``."""
    if not tile_url:
        return ""
    parts = urlsplit(tile_url.replace("{s}", "SUBDOMAIN"))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    host = parts.netloc.replace("SUBDOMAIN", "*")
    return f"{parts.scheme}://{host}"


def _page_headers(tile_url: str) -> tuple[tuple[bytes, bytes], ...]:
    images = " ".join(filter(None, ("'self' data:", tile_origin(tile_url))))
    csp = ("default-src 'self'; script-src 'self'; style-src 'self'; "
           f"img-src {images}; connect-src 'self'; frame-ancestors 'none'; "
           "base-uri 'none'; form-action 'self'")
    return (
        (b"content-security-policy", csp.encode("ascii")),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
    )
