"""Mosquitto auth-plugin endpoints (``/mqapi/auth``, ``/superuser``, ``/acl``).

A broker with an HTTP auth backend (mosquitto-go-auth, mosquitto-auth-plug)
POSTs form fields here so OVMS v3 modules log in to MQTT with their server
account: ``auth`` accepts the password or an API token whose rights include
``v3`` or ``mqtt``; ``acl`` allows topics under ``<mqtt_prefix>/<username>/`` only, and
everything for the configured superuser. The answer is in the status code.
"""

from __future__ import annotations

import logging

from relay import permits
from relay.http.call import Call
from relay.http.messages import Response, text_response

log = logging.getLogger("relay.http.mqapi")


def _empty(status: int) -> Response:
    return Response(status)


async def auth(call: Call) -> Response:
    username = call.param("username") or ""
    password = call.param("password") or ""
    login = await call.api.auth.check(username, password, call.request.client_host)
    ok = login is not None and permits.may(login.permissions, permits.MQTT)
    log.info("http addr=%s mqapi/auth user=%r: %s", call.request.client_host, username[:64],
             "SUCCESS" if ok else "FAILED")
    return _empty(200 if ok else 403)


def _superuser(call: Call, username: str) -> bool:
    superuser = call.api.config.mqtt_superuser
    return bool(superuser) and username == superuser


async def superuser(call: Call) -> Response:
    username = call.param("username") or ""
    if not username:
        return text_response(404, "Username required")
    return _empty(200 if _superuser(call, username) else 403)


async def acl(call: Call) -> Response:
    username = call.param("username") or ""
    topic = call.param("topic") or ""
    prefix = call.api.config.mqtt_prefix
    ok = _superuser(call, username) or (
        bool(username) and not set("/+#") & set(username)
        and topic.startswith(f"{prefix}/{username}/"))
    log.debug("http addr=%s mqapi/acl user=%r topic=%r: %s", call.request.client_host,
              username[:64], topic[:128], "PERMIT" if ok else "DENY")
    return _empty(200 if ok else 403)
