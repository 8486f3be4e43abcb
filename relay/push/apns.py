"""``apns``: Apple Push Notification service over HTTP/2, token-based auth.

Each request carries an ES256 JWT (``iss`` = team id, ``kid`` = key id) signed
with the ``.p8`` key; Apple wants it reused for at least 20 minutes and refused
after 60, so it is cached for 40. The subscription's pushkeytype picks the
endpoint: ``sandbox`` (development builds) or anything else (production). The
payload is the public server's (``aps.alert`` = "<vehicle>\\n<text>").
HTTP/2 is required by Apple, so the client is HTTP/2-only (h2 over TLS in
production, h2 with prior knowledge on a plain ``http://`` test endpoint).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import attrs
import httpx
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from relay.push.base import USER_AGENT
from relay.push.jwt import sign_es256
from relay.push.outcome import Dead, Outcome, Retry, by_status, explained
from relay.store import PendingPush

JWT_REUSE = 40 * 60.0
_TOKEN_RE = re.compile(r"[0-9A-Fa-f]{32,200}")
# Reasons that mean this device token will never work again.
_DEAD_REASONS = frozenset({"BadDeviceToken", "Unregistered", "DeviceTokenNotForTopic"})


class ApnsKeyError(Exception):
    """The .p8 key is unusable (one-line reason; never the key)."""


def load_key(path: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ApnsKeyError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ApnsKeyError(f"{path} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ApnsKeyError(f"{path} is not an EC P-256 key")
    return key


@attrs.frozen
class ApnsSettings:
    key: ec.EllipticCurvePrivateKey = attrs.field(repr=False)
    key_id: str
    team_id: str
    topic: str
    production_url: str
    sandbox_url: str


class ApnsSender:
    def __init__(self, client: httpx.AsyncClient, settings: ApnsSettings) -> None:
        self.client = client  # must be HTTP/2 (http2=True, http1=False)
        self.settings = settings
        self._jwt: str | None = None
        self._jwt_until = 0.0

    def _token(self) -> str:
        now = trio.current_time()
        if self._jwt is None or now >= self._jwt_until:
            s = self.settings
            self._jwt = sign_es256({"iss": s.team_id, "iat": int(time.time())}, s.key, s.key_id)
            self._jwt_until = now + JWT_REUSE
        return self._jwt

    async def send(self, item: PendingPush) -> Outcome:
        if not _TOKEN_RE.fullmatch(item.pushkeyvalue):
            return Dead("not an APNs device token")
        s = self.settings
        base = s.sandbox_url if item.pushkeytype == "sandbox" else s.production_url
        payload = {
            "aps": {"alert": f"{item.vehicleid}\n{item.text}", "badge": 0, "sound": "default"},
            "vehicleid": item.vehicleid,
            "alerttype": item.alerttype,
        }
        headers = {
            "authorization": f"bearer {self._token()}",
            "apns-topic": s.topic,
            "apns-push-type": "alert",
            "apns-priority": "10",
            "apns-expiration": str(int(item.expires)),
            "apns-collapse-id": item.nid,
            "user-agent": USER_AGENT,
        }
        response = await self.client.post(
            f"{base.rstrip('/')}/3/device/{item.pushkeyvalue}", json=payload, headers=headers
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        try:
            reason = str(response.json().get("reason", "")) if response.content else ""
        except (ValueError, AttributeError):
            reason = ""
        if status == 410 or reason in _DEAD_REASONS:
            return Dead(f"APNs: {reason or 'HTTP 410'}")
        if status == 403 and reason == "ExpiredProviderToken":
            self._jwt = None
            return Retry("APNs: ExpiredProviderToken, token renewed", 0.0)
        outcome = by_status(response)
        return explained(outcome, f"APNs {reason}") if reason else outcome
