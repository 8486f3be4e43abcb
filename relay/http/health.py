"""Health checks for load balancers and supervisors (no login, no rate-limit exemption).

``/healthz``: the process answers HTTP at all. ``/readyz``: it can do its job, so a
load balancer should send it traffic: the store accepts writes (not stuck on a full
or failing disk), and in a cluster the bus is connected (a node cut off from NATS
still serves its own pairs, but a car landing there would not reach apps elsewhere).
"""

from __future__ import annotations

from relay.http.call import Call
from relay.http.messages import Response, text_response


async def healthz(call: Call) -> Response:
    return text_response(200, "ok")


async def readyz(call: Call) -> Response:
    store = call.api.services.store
    if store.writes_failing:
        return text_response(503, "not ready: database writes are failing")
    if not call.api.services.hub.bus_ready():
        return text_response(503, "not ready: the cluster bus (NATS) is not connected")
    return text_response(200, "ready")
