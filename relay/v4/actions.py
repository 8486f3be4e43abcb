"""Remote actions as resources: what was asked, and how the car answered.

``POST .../remote`` answers 202 at once with a pending action; the command runs
in a task of the v4 engine's nursery (``V4Engine.start_action``) and settles the
action when the car answers, which the client sees by polling the action's self
link. Actions live in memory only, bounded in number and age (``ActionTable``):
they are a receipt for a command, not history.
"""

from __future__ import annotations

import collections
import secrets
from typing import Any, Literal

import attrs

from relay.v4 import hal

Status = Literal["pending", "done", "failed"]


@attrs.define(eq=False)
class RemoteActionRecord:
    actionid: str
    vehicleid: str
    owner: str
    action: str
    command: int  # the v2 command number (its parameters may hold a PIN: never shown)
    created: float
    updated: float
    status: Status = "pending"
    result: int | None = None  # the car's result code, when it answered
    code: int | None = None  # the HTTP-style outcome (200, 409, 422, 501, 504, ...)
    message: str = ""

    def settle(self, code: int, message: str, now: float, result: int | None = None) -> None:
        self.status = "done" if code == 200 else "failed"
        self.code = code
        self.message = message
        self.result = result
        self.updated = now


class ActionTable:
    """At most ``max_size`` actions; finished ones are forgotten ``ttl`` seconds after they
    settled, and past the size bound the oldest go first, whatever their state."""

    def __init__(self, max_size: int, ttl: float) -> None:
        self.max_size = max(1, max_size)
        self.ttl = ttl
        self._items: collections.OrderedDict[str, RemoteActionRecord] = (
            collections.OrderedDict())

    def __len__(self) -> int:
        return len(self._items)

    def new(self, vehicleid: str, owner: str, action: str, command: int,
            now: float) -> RemoteActionRecord:
        self.expire(now)
        while len(self._items) >= self.max_size:
            self._items.popitem(last=False)
        record = RemoteActionRecord(secrets.token_hex(8), vehicleid, owner, action, command,
                                    now, now)
        self._items[record.actionid] = record
        return record

    def get(self, actionid: str, now: float) -> RemoteActionRecord | None:
        self.expire(now)
        return self._items.get(actionid)

    def expire(self, now: float) -> None:
        for key in [k for k, r in self._items.items()
                    if r.status != "pending" and now - r.updated >= self.ttl]:
            del self._items[key]


def action_json(record: RemoteActionRecord, href: str) -> dict[str, Any]:
    """The remote-action resource (HAL single object)."""
    body: dict[str, Any] = {"id": record.actionid, "action": record.action,
                            "status": record.status, "command": record.command}
    if record.status != "pending":
        body["outcome"] = {"code": record.code, "message": record.message}
        if record.result is not None:
            body["outcome"]["result"] = record.result
    return hal.single(body, href=href, created_at=record.created, updated_at=record.updated)
