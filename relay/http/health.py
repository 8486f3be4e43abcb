"""Health checks for load balancers and supervisors (no login, no rate-limit exemption).

``/healthz``: the process answers HTTP at all. ``/readyz``: it can do its job, so a
load balancer should send it traffic: the store accepts writes (not stuck on a full
or failing disk), and in a cluster the node has joined the bus since it started.

A node that loses NATS later stays ready, saying so in the answer: it keeps serving
the cars and apps connected to it, and an outage of NATS itself cuts every node off
at once, so failing the check would only take the whole cluster out of rotation
(and, with HAProxy's ``on-marked-down shutdown-sessions``, close every connection)
for what is a loss of cross-node traffic.
"""

from __future__ import annotations

from relay.http.call import Call
from relay.http.messages import Response, text_response
from relay.hubapi import BusStatus


async def healthz(call: Call) -> Response:
    return text_response(200, "ok")


async def readyz(call: Call) -> Response:
    store = call.api.services.store
    if store.writes_failing:
        return text_response(503, "not ready: database writes are failing")
    bus = call.api.services.hub.bus_status()
    if bus is BusStatus.JOINING:
        return text_response(503, "not ready: not yet connected to the cluster bus (NATS)")
    if bus is BusStatus.LOST:
        return text_response(200, "ready (cluster bus lost: serving this node's "
                                  "connections only)")
    return text_response(200, "ready")
