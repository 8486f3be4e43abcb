"""API sessions and the vehicle "connections" they hold (PROTOCOL.md sections 3, 8, 9).

A session is either a cookie session (``GET /api/cookie``) or, for a client that
sends ``username`` + ``password`` on every call, an implicit one per (owner,
client address), created by its first ``GET /api/vehicle/<id>``.

Two lifetimes, both sliding (every request of the session renews them):

- the cookie *login* lives ``session_timeout`` (24 h by default) without a
  request: Home Assistant's integration polls every 300 s and logs in again
  only when answered 404, so a login that ended after 120 s left it with a
  401 on every later poll;
- the session's vehicle *registrations* (``GET /api/vehicle/<id>``: an app,
  which keeps the car in its fast reporting mode) end after ``idle_timeout``
  (120 s) without a request, and the car is told (``Z``). An implicit session
  holds nothing else, so it ends with them. The public server shares one
  never-ending pseudo-session between all cookie-less callers, which keeps
  cars in their fast reporting mode forever.

Times come from trio's clock (``trio.current_time``), so tests run on MockClock.

In a cluster (``serve --bus``) cookie sessions are shared through the database
(``relay.http.shared``): this table is then the node's cache of them, and a cookie
made on one node works on every other. Registrations stay with the node that took
them (the bus adds up every node's apps for ``Z``); implicit sessions stay per node
too (their caller sends its password with every call).

A session also ends when the credential it was made with (an API token, or the
account password) is revoked: at once for a token deleted through the API, else
when relay.http.authenticator's ``revoked`` next checks (token deleted or password changed
with ``ovms-admin``, account disabled).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable

import attrs
import trio

from relay.http.authenticator import Credential
from relay.http.shared import (
    CREDENTIAL_REVOKED,
    SESSION_ENDED,
    SharedSessions,
    row_credential,
)
from relay.hubapi import HubApi
from relay.store.sessions import SessionRow, sid_hash

log = logging.getLogger("relay.http.sessions")

# Live sessions at most; a flood of logins ends the oldest sessions, not the process.
MAX_SESSIONS = 100_000
# Ids of ended cookie sessions remembered, so a 401 can say why the cookie failed.
MAX_ENDED = 10_000
UNKNOWN_SESSION = "unknown session"
# Longer cookies are not looked up in the database (ours are 36 characters).
MAX_COOKIE = 64


@attrs.define(eq=False)
class Session:
    sid: str
    owner: str
    permissions: str
    last_used: float
    cookie: bool
    host: str = ""
    vehicles: set[str] = attrs.field(factory=set)
    credential: Credential | None = None
    # Cluster mode: when the database last confirmed the session (trio's clock).
    checked: float = 0.0
    # SHA-256 of the id: what logs, the database and the bus see of a cookie.
    digest: str = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.digest = sid_hash(self.sid)

    @property
    def hub_key(self) -> str:
        return f"http:{self.sid}"

    def context(self) -> str:
        # A cookie's id is a bearer secret: log a digest's prefix, to follow one session.
        kind = "cookie" if self.cookie else "implicit"
        return f"http session={self.digest[:8]} ({kind}) owner={self.owner}"


class SessionTable:
    def __init__(
        self, hub: HubApi, idle_timeout: float, session_timeout: float | None = None,
        clock: Callable[[], float] = trio.current_time, shared: SharedSessions | None = None,
    ) -> None:
        self._hub = hub
        self._shared = shared
        self.idle_timeout = idle_timeout
        self.session_timeout = idle_timeout if session_timeout is None else session_timeout
        self._clock = clock
        self._cookies: dict[str, Session] = {}
        # Implicit sessions are never reachable by cookie: their ids are not secrets.
        self._implicit: dict[tuple[str, str], Session] = {}
        # sid -> why it ended, for the log line of a 401 (bounded, oldest dropped).
        self._ended: OrderedDict[str, str] = OrderedDict()
        # Cluster mode: cookie sessions by digest, for the other nodes' SESSION_ENDED.
        self._digests: dict[str, Session] = {}
        if shared is not None:
            hub.on_notice(SESSION_ENDED, self._ended_elsewhere)
            hub.on_notice(CREDENTIAL_REVOKED, self._revoked_elsewhere)

    def __len__(self) -> int:
        return len(self._cookies) + len(self._implicit)

    def _expired(self, session: Session, now: float) -> bool:
        limit = self.session_timeout if session.cookie else self.idle_timeout
        return now - session.last_used > limit

    def _registrations_idle(self, session: Session, now: float) -> bool:
        return bool(session.vehicles) and now - session.last_used > self.idle_timeout

    def _drop_registrations(self, session: Session) -> None:
        log.info("%s: idle for %.0f s, %d vehicle registration(s) ended", session.context(),
                 self.idle_timeout, len(session.vehicles))
        for vehicleid in sorted(session.vehicles):
            self.disconnect(session, vehicleid)

    def create(self, owner: str, permissions: str, host: str,
               credential: Credential | None = None) -> Session:
        now = self._clock()
        if len(self) >= MAX_SESSIONS:
            self.expire()
            while len(self._cookies) >= MAX_SESSIONS:
                self.end(next(iter(self._cookies.values())), "too many sessions")
        session = Session(str(uuid.uuid4()).upper(), owner, permissions, now, True, host,
                          credential=credential, checked=now)
        self._add(session)
        if self._shared is not None:
            wall = self._shared.now()
            self._shared.created(SessionRow(
                session.digest, owner, permissions, host,
                credential.kind if credential else "", credential.value if credential else "",
                wall, wall))
        log.info("%s addr=%s: session created", session.context(), host)
        return session

    def _add(self, session: Session) -> None:
        self._cookies[session.sid] = session
        if self._shared is not None:
            self._digests[session.digest] = session

    async def flush(self) -> None:
        """Cluster mode: store the sessions created and ended so far (before answering the
        call that did it); else nothing."""
        if self._shared is not None:
            await self._shared.flush()

    async def lookup(self, sid: str) -> Session | None:
        """As ``get``; in cluster mode also a session made (or kept alive) on another node.
        A session held here is confirmed with the database every ``recheck`` seconds (and
        when it looks expired here): the database, not this node, says when it expires."""
        shared = self._shared
        if shared is None:
            return self.get(sid)
        session = self._cookies.get(sid)
        now = self._clock()
        if session is None:
            if sid in self._ended or not 0 < len(sid) <= MAX_COOKIE:
                return None
            row = await shared.load(sid_hash(sid), verify=True)
            if row is None:
                return None
            session = self._cookies.get(sid)  # another call loaded it meanwhile
            if session is None:
                session = self._loaded(sid, row, self._clock())
        elif now - session.checked >= shared.recheck or self._expired(session, now):
            row = await shared.load(session.digest, verify=False)
            if self._cookies.get(sid) is not session:
                return None  # ended meanwhile
            if row is None:
                self._end(session, "ended on another node or expired", shared=False)
                return None
            session.checked = now
        now = self._clock()
        if self._registrations_idle(session, now):
            self._drop_registrations(session)
        session.last_used = now
        return session

    def _loaded(self, sid: str, row: SessionRow, now: float) -> Session:
        if len(self) >= MAX_SESSIONS:
            self.expire()
            while len(self._cookies) >= MAX_SESSIONS:  # the database keeps them
                self._forget(next(iter(self._cookies.values())))
        session = Session(sid, row.owner, row.permissions, now, True, row.host,
                          credential=row_credential(row), checked=now)
        self._add(session)
        log.debug("%s: session taken from the database", session.context())
        return session

    def _forget(self, session: Session) -> None:
        """Drop a cookie session from this node only (cluster mode: it lives on in the
        database), with the registrations it holds here."""
        if self._cookies.get(session.sid) is not session:
            return
        del self._cookies[session.sid]
        self._digests.pop(session.digest, None)
        for vehicleid in sorted(session.vehicles):
            self._hub.remove_api_session(vehicleid, session.hub_key)
        session.vehicles.clear()

    def _revoked_elsewhere(self, owner: str, kind: str, value: str, reason: str) -> None:
        self.end_revoked({(owner, Credential(kind, value))}, reason)

    def _ended_elsewhere(self, digest: str, reason: str) -> None:
        session = self._digests.get(digest)
        if session is not None:
            self._end(session, reason, shared=False)

    def get(self, sid: str) -> Session | None:
        """The live cookie session ``sid`` (now used again), or None (``why_not`` says why)."""
        session = self._cookies.get(sid)
        if session is None:
            return None
        now = self._clock()
        if self._expired(session, now):
            self.end(session, "expired")
            return None
        if self._registrations_idle(session, now):
            self._drop_registrations(session)
        session.last_used = now
        return session

    def why_not(self, sid: str) -> str:
        """Why ``sid`` names no live session: how it ended, or that it is unknown."""
        return self._ended.get(sid, UNKNOWN_SESSION)

    def implicit(self, owner: str, host: str, permissions: str, *, create: bool,
                 credential: Credential | None = None) -> Session | None:
        """The implicit session of ``owner`` calling from ``host`` (touched), optionally new."""
        key = (owner, host)
        session = self._implicit.get(key)
        now = self._clock()
        if session is not None and self._expired(session, now):
            self.end(session, "expired")
            session = None
        if session is None:
            if not create:
                return None
            if len(self) >= MAX_SESSIONS:
                self.expire()
            session = Session("auto-" + uuid.uuid4().hex[:12], owner, permissions, now,
                              False, host)
            self._implicit[key] = session
            log.info("%s addr=%s: implicit session created", session.context(), host)
        session.last_used = now
        session.permissions = permissions
        session.credential = credential
        return session

    def connect(self, session: Session, vehicleid: str) -> bool:
        """Register the session as an app of the vehicle; True if it is the first app."""
        first = self._hub.add_api_session(vehicleid, session.hub_key)
        if vehicleid not in session.vehicles:
            session.vehicles.add(vehicleid)
            log.info("%s vehicle=%s type=http: connected", session.context(), vehicleid)
        return first

    def disconnect(self, session: Session, vehicleid: str) -> None:
        if vehicleid in session.vehicles:
            session.vehicles.discard(vehicleid)
            self._hub.remove_api_session(vehicleid, session.hub_key)
            log.info("%s vehicle=%s type=http: disconnected", session.context(), vehicleid)

    def end(self, session: Session, reason: str) -> None:
        """End the session (cluster mode: on every node; ``flush`` stores that)."""
        self._end(session, reason, shared=True)

    def _end(self, session: Session, reason: str, *, shared: bool) -> None:
        if session.cookie:
            if self._cookies.get(session.sid) is not session:
                return
            del self._cookies[session.sid]
            if self._shared is not None:
                self._digests.pop(session.digest, None)
                if shared:
                    self._shared.ended(session.digest, reason)
            self._ended[session.sid] = f"session ended ({reason})"
            if len(self._ended) > MAX_ENDED:
                self._ended.popitem(last=False)
        else:
            key = (session.owner, session.host)
            if self._implicit.get(key) is not session:
                return
            del self._implicit[key]
        for vehicleid in sorted(session.vehicles):
            self._hub.remove_api_session(vehicleid, session.hub_key)
        log.info("%s: session ended (%s), %d vehicle registration(s) dropped",
                 session.context(), reason, len(session.vehicles))
        session.vehicles.clear()

    def expire(self) -> int:
        """End every session unused for longer than its lifetime, and the registrations
        of cookie sessions idle for ``idle_timeout``; returns how many sessions ended."""
        now = self._clock()
        stale = [s for s in (*self._cookies.values(), *self._implicit.values())
                 if self._expired(s, now)]
        for session in stale:
            if session.cookie and self._shared is not None:
                # Perhaps in use on another node: the database's purge ends it.
                self._forget(session)
            else:
                self.end(session, "expired")
        for session in [s for s in self._cookies.values() if self._registrations_idle(s, now)]:
            self._drop_registrations(session)
        return len(stale)

    def credentials(self) -> set[tuple[str, Credential]]:
        """(owner, credential) of every live session made with one."""
        return {(s.owner, s.credential)
                for s in (*self._cookies.values(), *self._implicit.values())
                if s.credential is not None}

    def end_revoked(self, revoked: set[tuple[str, Credential]], reason: str, *,
                    everywhere: bool = False) -> int:
        """End every session made with one of the ``revoked`` (owner, credential) pairs;
        ``everywhere``: tell the other nodes of a cluster to do the same at once."""
        if everywhere and self._shared is not None:
            for owner, credential in sorted(revoked, key=repr):
                self._hub.announce(CREDENTIAL_REVOKED, owner, credential.kind,
                                   credential.value, reason)
        ended = [s for s in (*self._cookies.values(), *self._implicit.values())
                 if s.credential is not None and (s.owner, s.credential) in revoked]
        for session in ended:
            self.end(session, reason)
        return len(ended)
