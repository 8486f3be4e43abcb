"""``ntfy``: POST the text to an ntfy topic (https://ntfy.sh or a self-hosted server).

The subscription's pushkeyvalue is either a full topic URL (a user-supplied URL,
so checked by ``ssrf``) or a bare topic name, published on the operator's
configured ``ntfy_server`` (trusted, not checked).
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx

from relay.outbound.urlpolicy import Target, UrlPolicy
from relay.push.base import USER_AGENT, title
from relay.push.outcome import Outcome, by_status
from relay.store import PendingPush

TOPIC_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_url(value: str) -> bool:
    return "://" in value


class NtfySender:
    def __init__(self, client: httpx.AsyncClient, policy: UrlPolicy, server: str) -> None:
        self.client = client
        self.policy = policy
        self.server = server.rstrip("/")

    async def _target(self, value: str) -> Target:
        if is_url(value):
            return await self.policy.check(value)
        return Target(f"{self.server}/{quote(value, safe='')}", "")

    async def send(self, item: PendingPush) -> Outcome:
        target = await self._target(item.pushkeyvalue)
        options = target.request_options()
        headers = {
            "User-Agent": USER_AGENT,
            "Title": title(item),
            "Tags": "car" if item.alerttype != "A" else "car,warning",
            **options.pop("headers", {}),
        }
        body = item.text.encode("utf-8", "surrogateescape")
        response = await self.client.post(target.url, content=body, headers=headers, **options)
        return by_status(response)
