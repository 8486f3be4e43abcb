"""What every delivery type implements, and the text the services show."""

from __future__ import annotations

from typing import Protocol

from relay.outbound.client import USER_AGENT
from relay.push.outcome import Outcome
from relay.store import PendingPush

__all__ = ["USER_AGENT", "Sender", "title"]


class Sender(Protocol):
    """One delivery type: turns a pending notification into one request.

    ``send`` returns an outcome for answers it understands and may raise for
    trouble on the way (``httpx.TransportError``, ``ssrf.UrlRefused``,
    ``ssrf.Unresolvable``, ``OSError``); the dispatcher maps those and enforces the
    attempt's timeout, so senders hold no retry logic of their own.
    """

    async def send(self, item: PendingPush) -> Outcome: ...


def title(item: PendingPush) -> str:
    """The notification title the official servers use."""
    return f"Open Vehicles {item.vehicleid}"
