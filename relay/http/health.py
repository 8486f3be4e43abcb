"""Health checks for load balancers and supervisors (no login, no rate-limit exemption).

``/healthz``: the process answers HTTP at all. ``/readyz``: it can do its job, so a
load balancer should send it traffic: the store accepts writes (not stuck on a full
or failing disk). A message bus or broker joins this check once the server uses one.
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
    return text_response(200, "ready")
