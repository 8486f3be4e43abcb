"""``expo``: the Expo push API (what the OVMS React Native app subscribes with).

One message per request. Expo answers 200 with a per-message ticket; a ticket
with ``DeviceNotRegistered`` means the app is gone, so the subscription is dead.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from relay.push.base import USER_AGENT, title
from relay.push.outcome import Dead, Delivered, Failed, Outcome, Retry, by_status
from relay.store import PendingPush


class ExpoSender:
    def __init__(self, client: httpx.AsyncClient, url: str, access_token: str = "") -> None:
        self.client = client
        self.url = url
        self.access_token = access_token

    async def send(self, item: PendingPush) -> Outcome:
        message = {
            "to": item.pushkeyvalue,
            "title": title(item),
            "body": item.text,
            "sound": "default",
            "badge": 0,
            "data": {"vehicleid": item.vehicleid, "alerttype": item.alerttype,
                     "sent": int(item.created)},
        }
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        response = await self.client.post(self.url, json=message, headers=headers)
        outcome = by_status(response)
        if not isinstance(outcome, Delivered):
            return outcome
        return ticket_outcome(response)


def ticket_outcome(response: httpx.Response) -> Outcome:
    try:
        data: Any = json.loads(response.content).get("data")
    except (ValueError, AttributeError):
        return Failed("Expo answered 200 without a JSON ticket")
    ticket = data[0] if isinstance(data, list) and data else data
    if not isinstance(ticket, dict):
        return Failed("Expo answered 200 without a ticket")
    if ticket.get("status") == "ok":
        return Delivered()
    details = ticket.get("details")
    error = details.get("error", "") if isinstance(details, dict) else ""
    if error == "DeviceNotRegistered":
        return Dead("Expo: DeviceNotRegistered")
    if error == "MessageRateExceeded":
        return Retry("Expo: MessageRateExceeded")
    # Only the error code: Expo's message text quotes the push token.
    return Failed(f"Expo: {error or 'error'}"[:200])
