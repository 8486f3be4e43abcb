"""``fcm`` (and ``gcm``, what the OVMS Android app sends): Firebase Cloud Messaging HTTP v1.

Auth is the service-account OAuth flow: an RS256 JWT signed with the service
account's key is exchanged at its ``token_uri`` for an access token, cached
until shortly before it expires. The message is data-only with the fields the
OVMS Android app reads (``type``, ``time``, ``title``, ``message``), as the public
server sends them. 404 / ``UNREGISTERED`` means the app instance is gone.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relay.push.base import USER_AGENT
from relay.push.jwt import sign_rs256
from relay.push.outcome import (
    Dead,
    Delivered,
    Failed,
    Outcome,
    Retry,
    by_status,
    explained,
    retry_after,
)
from relay.store import PendingPush
from relay.timefmt import utc_text

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_LIFETIME = 3600
# Refresh this long before the token's stated expiry, so no request carries a stale one.
TOKEN_MARGIN = 120.0


class CredentialsError(Exception):
    """The service-account file is unusable (one-line reason; never the key)."""


@attrs.frozen
class ServiceAccount:
    project_id: str
    client_email: str
    token_uri: str
    key: rsa.RSAPrivateKey = attrs.field(repr=False)
    key_id: str = attrs.field(default="", repr=False)

    @classmethod
    def load(cls, path: str) -> ServiceAccount:
        try:
            info = json.loads(Path(path).read_text())
            key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
            account = cls(info["project_id"], info["client_email"], info["token_uri"], key,  # type: ignore[arg-type]
                          info.get("private_key_id", ""))
        except OSError as exc:
            raise CredentialsError(f"cannot read {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CredentialsError(f"{path} is not a service-account key file ({exc!r:.60})"
                                   ) from None
        if not isinstance(account.key, rsa.RSAPrivateKey):
            raise CredentialsError(f"{path}: private_key is not an RSA key")
        return account


class FcmSender:
    def __init__(
        self, client: httpx.AsyncClient, account: ServiceAccount, base_url: str, token_url: str = ""
    ) -> None:
        self.client = client
        self.account = account
        self.send_url = f"{base_url.rstrip('/')}/v1/projects/{account.project_id}/messages:send"
        self.token_url = token_url or account.token_uri
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = trio.Lock()  # one token exchange at a time, shared by all workers

    async def _access_token(self) -> str | Outcome:
        async with self._lock:
            if self._token is not None and trio.current_time() < self._token_expires:
                return self._token
            now = int(time.time())
            assertion = sign_rs256(
                {"iss": self.account.client_email, "scope": SCOPE, "aud": self.account.token_uri,
                 "iat": now, "exp": now + TOKEN_LIFETIME},
                self.account.key, self.account.key_id or None,
            )
            response = await self.client.post(
                self.token_url, data={"grant_type": GRANT_TYPE, "assertion": assertion},
                headers={"User-Agent": USER_AGENT},
            )
            outcome = by_status(response)
            if not isinstance(outcome, Delivered):
                return explained(outcome, "token exchange")
            try:
                answer = response.json()
                token = str(answer["access_token"])
                lifetime = float(answer.get("expires_in", TOKEN_LIFETIME))
            except (ValueError, KeyError, TypeError):
                return Failed("token exchange: answer without access_token")
            self._token = token
            self._token_expires = trio.current_time() + max(0.0, lifetime - TOKEN_MARGIN)
            return token

    async def send(self, item: PendingPush) -> Outcome:
        token = await self._access_token()
        if not isinstance(token, str):
            return token
        collapse = hashlib.sha256(
            f"{item.alerttype}{item.created}{item.vehicleid}{item.text}".encode(
                "utf-8", "surrogateescape")
        ).hexdigest()
        message = {
            "message": {
                "token": item.pushkeyvalue,
                "data": {"type": item.alerttype, "time": utc_text(int(item.created)),
                         "title": item.vehicleid, "message": item.text},
                "android": {"collapse_key": collapse, "priority": "high"},
            }
        }
        response = await self.client.post(
            self.send_url, json=message,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
        )
        return self._outcome(response)

    def _outcome(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 401:
            # Revoked or expired early: fetch a new token on the next attempt.
            self._token = None
            return Retry("HTTP 401, access token refreshed", 0.0)
        code = _error_code(response)
        if status == 404 or code == "UNREGISTERED":
            return Dead(f"FCM: {code or 'HTTP 404'}")
        if code == "QUOTA_EXCEEDED":
            return Retry("FCM: QUOTA_EXCEEDED", retry_after(response))
        return by_status(response)


def _error_code(response: httpx.Response) -> str:
    """The FcmError ``errorCode`` of an error answer, else its ``status``, else ''."""
    try:
        error: Any = response.json().get("error", {})
        for detail in error.get("details", []):
            if isinstance(detail, dict) and detail.get("errorCode"):
                return str(detail["errorCode"])
        return str(error.get("status", ""))
    except (ValueError, AttributeError, TypeError):
        return ""
