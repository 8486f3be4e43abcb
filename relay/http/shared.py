"""Cookie sessions shared by the nodes of a cluster (``serve --bus``), in the database.

Each node keeps the sessions it serves in its own ``SessionTable`` (a cache); this is
the table's way to the database (``relay.store.sessions``) and to the other nodes:

- a new session is stored before its cookie is handed out, so the client's next
  request may reach any node;
- a node that does not hold a cookie's session looks it up (a read, no write), and
  takes it if it was used within ``session_timeout``; a node holding one reads it
  again at most every ``recheck`` seconds, and only then writes its last use (so a
  client polling every second costs one write per ``recheck`` per node, not per call);
- an ended session (logout, a new login, revoked credentials) is deleted, and its
  end announced on the bus (``SESSION_ENDED``, with the cookie's digest, never the
  cookie) so every node holding it drops it at once; a lost notice is caught by the
  next read, within ``recheck``;
- sessions unused for ``session_timeout`` are deleted by the store's purge.

Without a bus none of this exists: sessions live in memory, with no writes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

from relay.http.authenticator import Credential
from relay.hubapi import HubApi
from relay.store import Store
from relay.store import sessions as repo
from relay.store.sessions import SessionRow

if TYPE_CHECKING:
    from relay.store.backend import Connection

# Notices (HubApi.announce): (digest of the cookie, why it ended); and (owner, credential
# kind, credential value, why): end the sessions resting on that credential.
SESSION_ENDED = "http.session_ended"
CREDENTIAL_REVOKED = "http.credential_revoked"
# Is (owner, credential) still valid (the token not deleted, the password not changed)?
Verify = Callable[[str, Credential], Awaitable[bool]]
# How often a node confirms a session it holds and writes its last use, at most.
RECHECK_INTERVAL = 10.0


def row_credential(row: SessionRow) -> Credential | None:
    return Credential(row.cred_kind, row.cred_value) if row.cred_kind else None


class SharedSessions:
    def __init__(self, store: Store, hub: HubApi, session_timeout: float,
                 verify: Verify, recheck: float = RECHECK_INTERVAL,
                 wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self._verify = verify
        self._hub = hub
        self.session_timeout = session_timeout
        self.recheck = recheck
        self._wall = wall
        # Written with the next flush: new sessions first, then ended ones.
        self._inserts: dict[str, SessionRow] = {}
        self._deletes: set[str] = set()
        store.add_purge(repo.TABLE, partial(repo.purge_round, timeout=session_timeout))

    def now(self) -> float:
        return self._wall()

    def created(self, row: SessionRow) -> None:
        self._inserts[row.sid_hash] = row

    def ended(self, digest: str, reason: str) -> None:
        if self._inserts.pop(digest, None) is None:
            self._deletes.add(digest)
        self._hub.announce(SESSION_ENDED, digest, reason)

    def pending_end(self, digest: str) -> bool:
        return digest in self._deletes

    async def flush(self) -> None:
        """Write the sessions created and ended since the last flush; back on failure."""
        if not (self._inserts or self._deletes):
            return
        inserts, self._inserts = list(self._inserts.values()), {}
        deletes, self._deletes = sorted(self._deletes), set()

        def write(conn: Connection) -> None:
            repo.insert(conn, inserts)
            repo.delete(conn, deletes)

        try:
            await self._store.write_call(repo.TABLE, write)
        except BaseException:
            for row in inserts:
                self._inserts.setdefault(row.sid_hash, row)
            self._deletes.update(d for d in deletes if d not in self._inserts)
            raise

    async def load(self, digest: str, *, verify: bool) -> SessionRow | None:
        """The live session ``digest`` from the database (its last use written now), or None.
        With ``verify``, its credential is checked too (a session new to this node: the
        password may have changed, or the owner gone, since it was made)."""
        now = self._wall()
        row: SessionRow | None = await self._store.query(
            partial(repo.read_live, digest=digest, oldest=now - self.session_timeout))
        if row is None or digest in self._deletes:
            return None
        credential = row_credential(row)
        if verify and credential is not None and not await self._verify(row.owner, credential):
            self.ended(digest, "credentials revoked")
            return None
        await self._store.write(repo.TABLE, repo.TOUCH, (now, digest, now))
        return row
