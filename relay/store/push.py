"""Push repository: apps' push subscriptions and notifications waiting for delivery."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from relay.store import claims
from relay.store.backend import upsert_sql
from relay.store.records import PendingPush, PushSubscription

if TYPE_CHECKING:
    from relay.store.backend import Connection

UPSERT_PUSH = upsert_sql(
    "push_subscriptions", ("vehicleid", "appid"),
    ("vehicleid", "appid", "owner", "pushtype", "pushkeytype", "pushkeyvalue", "active",
     "created", "lastused"),
    update=("owner", "pushtype", "pushkeytype", "pushkeyvalue", "active", "lastused"))
# Only the exact token that failed: the app may have re-subscribed with a new one meanwhile.
DEACTIVATE_PUSH = (
    "UPDATE push_subscriptions SET active=0 WHERE vehicleid=? AND appid=? AND pushkeyvalue=?")
_PENDING_COLUMNS = ("nid", "vehicleid", "appid", "owner", "pushtype", "pushkeytype",
                    "pushkeyvalue", "alerttype", "alerttext", "created", "expires", "attempts",
                    "next_try")
# Written with this node's claim (relay.store.claims).
INSERT_PENDING = upsert_sql("push_pending", ("nid", "vehicleid", "appid"),
                            (*_PENDING_COLUMNS, *claims.COLUMNS))
PENDING_KEY = "nid=? AND vehicleid=? AND appid=?"
RETRY_PENDING = (
    "UPDATE push_pending SET attempts=?, next_try=? WHERE nid=? AND vehicleid=? AND appid=?")
DELETE_PENDING = "DELETE FROM push_pending WHERE nid=? AND vehicleid=? AND appid=?"


def subscription_params(sub: PushSubscription, now: float) -> tuple[Any, ...]:
    return (sub.vehicleid, sub.appid, sub.owner, sub.pushtype, sub.pushkeytype,
            sub.pushkeyvalue, 1, now, now)


def pending_params(item: PendingPush, claim: tuple[str, float]) -> tuple[Any, ...]:
    return (item.nid, item.vehicleid, item.appid, item.owner, item.pushtype, item.pushkeytype,
            item.pushkeyvalue, item.alerttype, item.text, item.created, item.expires,
            item.attempts, item.next_try, *claim)


def pending_key(item: PendingPush) -> tuple[str, str, str]:
    return (item.nid, item.vehicleid, item.appid)


def read_push(conn: Connection, vehicleid: str) -> list[PushSubscription]:
    rows = conn.execute(
        "SELECT vehicleid, appid, owner, pushtype, pushkeytype, pushkeyvalue "
        "FROM push_subscriptions WHERE vehicleid=? AND active<>0 ORDER BY appid",
        (vehicleid,),
    ).fetchall()
    return [PushSubscription(*r) for r in rows]


def take_pending(conn: Connection, node: str, until: float) -> tuple[list[PendingPush], int]:
    """The unexpired pending notifications a claim just took (``claims.take``), oldest
    first; expired ones are deleted."""
    expired = conn.execute("DELETE FROM push_pending WHERE expires<?", (time.time(),)).rowcount
    rows = conn.execute(
        f"SELECT {', '.join(_PENDING_COLUMNS)} FROM push_pending WHERE {claims.TAKEN} "
        "ORDER BY created, nid, appid", (node, until)
    ).fetchall()
    pending = [
        PendingPush(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], float(r[9]),
                    float(r[10]), int(r[11]), float(r[12]))
        for r in rows
    ]
    return pending, expired
