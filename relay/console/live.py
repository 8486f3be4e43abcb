"""Live updates for open console pages: server-sent events fed by the hub.

A page opens ``/ui/events?v=<id>...``; the stream watches those vehicles in the hub
(``Hub.watch``), so it hears of every message their apps get, and answers each
burst with the vehicles' fresh summary (``relay.console.summary``) as one
``vehicle`` event. A burst is gathered for ``COALESCE`` seconds first: a car
sends its messages in groups and the page needs one update, not eight.

The stream keeps its cookie session alive with each heartbeat (the REST API's
idle timeout would end it otherwise) and ends, with a ``logout`` event, as soon
as the session has gone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Any

import trio

from protocol import Message
from relay.console.summary import summary
from relay.http.sessions import Session
from relay.hubapi import HubApi
from relay.store import Store

log = logging.getLogger("relay.console")

COALESCE = 0.25
HEARTBEAT = 15.0
# Signals a stream may hold; past this the hub drops them (the next burst re-reads anyway).
QUEUE = 64


def json_bytes(data: Any) -> bytes:
    # Car text may hold undecodable bytes (kept as lone surrogates): replaced.
    return json.dumps(data, separators=(",", ":")).encode("utf-8", "replace")


def event(name: str, data: Any) -> bytes:
    # json.dumps never emits a raw newline, which would end the event's data field.
    return b"event: " + name.encode("ascii") + b"\ndata: " + json_bytes(data) + b"\n\n"


async def stream(store: Store, hub: HubApi, session: Session, vehicles: list[str],
                 session_alive: Callable[[], bool], heartbeat: float = HEARTBEAT
                 ) -> AsyncGenerator[bytes, None]:
    send, receive = trio.open_memory_channel[tuple[str, Message]](QUEUE)
    for vehicleid in vehicles:
        hub.watch(vehicleid, send)
    log.info("%s: console live stream opened for %s", session.context(),
             ",".join(vehicles) or "-")
    try:
        yield b"retry: 3000\n\n"
        for vehicleid in vehicles:
            yield event("vehicle", await summary(store, hub, vehicleid))
        while True:
            changed: set[str] = set()
            with trio.move_on_after(heartbeat):
                vehicleid, _msg = await receive.receive()
                changed.add(vehicleid)
                with trio.move_on_after(COALESCE):
                    while True:
                        vehicleid, _msg = await receive.receive()
                        changed.add(vehicleid)
            if not session_alive():
                yield event("logout", {})
                return
            if not changed:
                yield b": keep-alive\n\n"
            for vehicleid in sorted(changed):
                yield event("vehicle", await summary(store, hub, vehicleid))
    finally:
        for vehicleid in vehicles:
            hub.unwatch(vehicleid, send)
        send.close()
        log.info("%s: console live stream closed", session.context())
