"""One authenticated API call as a handler sees it, with the checks most handlers share."""

from __future__ import annotations

import logging

import attrs

from relay import permits
from relay.http.authenticator import Login
from relay.http.context import ApiState
from relay.http.messages import HttpError, Request
from relay.http.sessions import Session

log = logging.getLogger("relay.http")


@attrs.define(eq=False)
class Call:
    api: ApiState
    request: Request
    args: dict[str, str]  # path parameters, percent-decoded
    params: dict[str, str]  # query string, then form/JSON body
    login: Login | None = None
    session: Session | None = None  # the cookie session, when the call came with one

    @property
    def owner(self) -> str:
        assert self.login is not None
        return self.login.owner

    def context(self, vehicleid: str | None = None) -> str:
        owner = self.login.owner if self.login is not None else "-"
        text = f"http conn={self.request.conn_id} addr={self.request.client_host} owner={owner}"
        return text if vehicleid is None else f"{text} vehicle={vehicleid}"

    async def vehicle(self) -> str:
        """The path's vehicle id (upper-cased) if the caller owns it, else 403."""
        vehicleid = self.args.get("vehicleid", "").upper()
        valid = permits.vehicle_id(vehicleid)
        record = None if valid is None else await self.api.services.store.get_vehicle(valid)
        if record is None or record.owner != self.owner:
            log.info("%s: forbidden access to vehicle %r", self.context(), vehicleid[:40])
            raise HttpError(403, "Forbidden")
        return vehicleid

    def app_session(self, *, create: bool) -> Session | None:
        """The session that holds this caller's vehicle registrations.

        With a cookie, that session; otherwise the implicit one of this owner at this
        client address (see relay.http.sessions), created only if ``create``.
        """
        if self.session is not None:
            return self.session
        assert self.login is not None
        return self.api.sessions.implicit(
            self.login.owner, self.request.client_host, self.login.permissions, create=create,
            credential=self.login.credential,
        )

    def param(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)
