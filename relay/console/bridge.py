"""The console's way into the server: the REST API's own endpoints, called in-process.

A console page that shows or changes something calls the same route handler as
``curl`` would (status, control, tokens, v4 trips, monitors ...), with the
console's cookie session as the login. So the console has exactly the REST
API's rights checks, validation and outcomes (a lock answers 200, 409 or 504 in
both), and it works on whatever store or hub backs the REST API.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import urlencode

import attrs

from relay import permits
from relay.http.api import HttpApi
from relay.http.authenticator import Login
from relay.http.call import Call
from relay.http.messages import HttpError, Request
from relay.http.sessions import Session
from relay.http.views import COOKIE_NAME
from relay.params import ParamError
from relay.store import StoreError

log = logging.getLogger("relay.console")


@attrs.frozen
class Result:
    status: int
    data: Any = None  # the decoded JSON answer, when there is one
    text: str = ""  # a plain-text answer, or a JSON error's message

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        """What went wrong, in one line, for the page."""
        if self.text:
            return self.text
        if isinstance(self.data, dict) and isinstance(self.data.get("message"), str):
            return str(self.data["message"])
        return f"status {self.status}"


class Bridge:
    def __init__(self, api: HttpApi) -> None:
        self.api = api

    async def call(self, origin: Request, session: Session, method: str, path: str, *,
                   params: dict[str, str] | None = None, query: dict[str, str] | None = None,
                   body: Any = None) -> Result:
        """``method path`` as the session's owner; ``body`` is JSON (v4), ``params`` a form."""
        api = self.api
        match = api.table.match(method, path)
        if match is None:
            return Result(404, text="not found")
        raw = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {b"cookie": f"{COOKIE_NAME}={session.sid}".encode("ascii")}
        if raw:
            headers[b"content-type"] = b"application/json"
        request = Request(method=method, path=path, query=urlencode(query or {}),
                          headers=headers, body=raw, client_host=origin.client_host,
                          conn_id=origin.conn_id, tls=origin.tls)
        login = Login(session.owner, session.permissions, "session")
        call = Call(api, request, match.args, dict(params or {}), login=login, session=session)
        route = match.route
        if route.auth:
            # The dispatcher's checks (relay.http.api); v4 routes authenticate themselves.
            if permits.grants_nothing(login.permissions):
                return Result(401, text="Authentication failed")
            if not permits.may(login.permissions, route.right):
                return Result(403, text="Insufficient rights")
        try:
            response = await route.handler(call)
        except HttpError as exc:
            return Result(exc.status, text=exc.text)
        except ParamError as exc:
            return Result(400, text=str(exc))
        except StoreError as exc:
            log.error("console %s %s: store unavailable: %s", method, route.path, exc)
            return Result(503, text="Service unavailable")
        ctype = response.content_type.split(b";")[0]
        if ctype.endswith(b"json"):
            try:
                data = json.loads(response.body) if response.body else None
            except ValueError:
                data = None
            return Result(response.status, data=data)
        return Result(response.status, text=response.body.decode("utf-8", "replace").strip())
