"""``webhook``: a signed JSON POST to the URL the subscription names.

Receivers verify ``X-OVMS-Signature: t=<unix time>,v1=<hex>`` where ``hex`` is
HMAC-SHA256 over ``"<t>." + body`` keyed with the vehicle's webhook secret,
``hex(HMAC-SHA256(key=carpass, msg="ovms-relay webhook"))`` (see docs/push.md).
The secret is derived so a receiver can verify without holding the carpass,
which would let it log in as the car; the timestamp lets it refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from relay.outbound.urlpolicy import UrlPolicy
from relay.push.base import USER_AGENT
from relay.push.outcome import Failed, Outcome, by_status
from relay.store import PendingPush, Store
from relay.timefmt import utc_text

SIGNATURE_HEADER = "X-OVMS-Signature"
_KEY_CONTEXT = b"ovms-relay webhook"


def webhook_secret(carpass: str) -> str:
    """The per-vehicle signing secret (what the owner gives the receiver)."""
    return hmac.new(carpass.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("ascii"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def payload(item: PendingPush) -> bytes:
    return json.dumps(
        {
            "id": item.nid,
            "vehicleid": item.vehicleid,
            "appid": item.appid,
            "alerttype": item.alerttype,
            "text": item.text,
            "time": utc_text(int(item.created)),
        },
        sort_keys=True,
    ).encode("ascii")  # ensure_ascii: text with undecodable bytes still serialises


class WebhookSender:
    def __init__(self, client: httpx.AsyncClient, policy: UrlPolicy, store: Store) -> None:
        self.client = client
        self.policy = policy
        self.store = store

    async def send(self, item: PendingPush) -> Outcome:
        target = await self.policy.check(item.pushkeyvalue)
        vehicle = await self.store.get_vehicle(item.vehicleid)
        if vehicle is None:
            return Failed("vehicle no longer exists")
        body = payload(item)
        options = target.request_options()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: signature(webhook_secret(vehicle.carpass), int(time.time()), body),
            **options.pop("headers", {}),
        }
        response = await self.client.post(target.url, content=body, headers=headers, **options)
        return by_status(response)
