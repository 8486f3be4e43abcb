"""Work rows that exactly one node retries: pending pushes and v4 callback retries.

In a cluster every node keeps its retries in the same tables (``CLAIMED_TABLES``).
Each row names the node retrying it (``claim_node``) and until when that claim
holds (``claim_until``: wall clock, so nodes on different machines agree; the
lease). A node stamps the rows it writes, renews the leases of all its rows every
third of a lease (one UPDATE per table), and before each retry renews that row's
claim and goes on only if it still holds it. A node that stops renewing (dead, or
cut off from the database) loses its rows when their lease ends; the next round of
any node takes them over with one ``UPDATE ... WHERE claim_until < now``. The
database applies concurrent UPDATEs of a row one after the other (PostgreSQL
re-checks the WHERE clause on the row the first one wrote; SQLite has one writer),
so exactly one node gets each row. A node that starts takes its own rows back at
once (a restart under a stable ``node_id``).

One process has node id ``""``: it takes every row at start, as before claims.
The rows a take just claimed are those with this node id and exactly the lease
end that take wrote (a float the node never writes twice), read before the
node's other rows are renewed to it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from relay.store.backend import one_line
from relay.store.errors import StoreClosed, StoreError

if TYPE_CHECKING:
    from relay.store.backend import Connection

log = logging.getLogger("relay.store")

T = TypeVar("T")

CLAIMED_TABLES = ("push_pending", "v4_callback_pending")

# Version 6 of the schema (relay.store.schema).
MIGRATION = "".join(
    f"ALTER TABLE {table} ADD COLUMN claim_node TEXT NOT NULL DEFAULT '';\n"
    f"ALTER TABLE {table} ADD COLUMN claim_until REAL NOT NULL DEFAULT 0;\n"
    for table in CLAIMED_TABLES)

COLUMNS = ("claim_node", "claim_until")
# The rows a take just claimed (parameters: node, lease end).
TAKEN = "claim_node=? AND claim_until=?"

# Reads the rows a take claimed: (connection, node, lease end) -> them.
Select = Callable[["Connection", str, float], T]


def take(conn: Connection, table: str, select: Select[T], *, node: str, now: float,
         until: float, own: bool) -> T:
    """Claim ``table``'s rows whose lease ended (``own``: and this node's, at its
    start) until ``until``; ``select`` reads them; then renew all of the node's rows.
    One process (node ``""``) takes every row at its start: no other node is running."""
    if own and not node:
        conn.execute(f"UPDATE {table} SET claim_node=?, claim_until=?", (node, until))
    elif own:
        conn.execute(f"UPDATE {table} SET claim_node=?, claim_until=? "
                     "WHERE claim_until<? OR claim_node=?", (node, until, now, node))
    else:
        conn.execute(f"UPDATE {table} SET claim_node=?, claim_until=? "
                     "WHERE claim_until<? AND claim_node<>?", (node, until, now, node))
    taken = select(conn, node, until)
    conn.execute(f"UPDATE {table} SET claim_until=? WHERE claim_node=?", (until, node))
    return taken


def hold(conn: Connection, table: str, where: str, key: tuple[Any, ...], *, node: str,
         until: float) -> bool:
    """Renew the claim of the row ``where`` (parameters ``key``) picks; False if the row
    is gone or another node holds it (this node lost its lease)."""
    cur = conn.execute(f"UPDATE {table} SET claim_until=? WHERE {where} AND claim_node=?",
                       (until, *key, node))
    return int(cur.rowcount) > 0


# Told what a round's ``Select`` read of the rows it took over from another node.
Taken = Callable[[Any], Awaitable[None]]
# The store's writer: (table, fn) -> fn's result, run in a batch and committed.
WriterCall = Callable[[str, Callable[["Connection"], Any]], Awaitable[Any]]


class Claims:
    """This node's claims (``Store.claims``); run ``run`` in the store's nursery."""

    def __init__(self, call: WriterCall, lease: float) -> None:
        self._call = call
        self.lease = lease
        # This node's name on its rows: "" in one process (which never takes rows
        # over), the bus node id in a cluster (relay.bus.open_hub sets it).
        self.node = ""
        # Per table: how a round reads the rows it took over, and whom it tells.
        self._tables: dict[str, tuple[Select[Any], Taken]] = {}

    def stamp(self) -> tuple[str, float]:
        """(node, lease end) for a work row this node writes."""
        return self.node, time.time() + self.lease

    async def claim(self, table: str, select: Select[Any], taken: Taken) -> Any:
        """Take ``table``'s rows for this node, its own and those whose lease ended:
        ``select``'s result. Each later round (every third of a lease) renews them and
        hands ``taken`` what ``select`` reads of the rows it took over."""
        self._tables[table] = (select, taken)
        return await self._take(table, select, own=True, now=time.time())

    async def _take(self, table: str, select: Select[Any], *, own: bool, now: float) -> Any:
        return await self._call(table, partial(
            take, table=table, select=select, node=self.node, now=now,
            until=time.time() + self.lease, own=own))

    async def round(self, now: float | None = None) -> None:
        """Renew this node's claims; take over rows whose lease ended before ``now``."""
        cutoff = time.time() if now is None else now
        for table, (select, taken) in list(self._tables.items()):
            await taken(await self._take(table, select, own=False, now=cutoff))

    async def hold(self, table: str, where: str, key: tuple[Any, ...]) -> bool:
        """Renew this node's claim of one row before retrying it (waits for the commit);
        False: another node holds it now, or it is gone: don't retry."""
        node, until = self.stamp()
        held: bool = await self._call(table, partial(
            hold, table=table, where=where, key=key, node=node, until=until))
        return held

    async def run(self) -> None:
        while True:
            await trio.sleep(self.lease / 3)
            if not self.node:
                continue  # one process: nobody else's rows to take over
            try:
                await self.round()
            except StoreClosed:
                return
            except StoreError as exc:  # the database is away: the next round
                log.warning("renewing claims on pending retries failed: %s", one_line(exc))
