"""What one delivery attempt came to, and the HTTP status rules shared by the services."""

from __future__ import annotations

import email.utils
import time

import attrs
import httpx


@attrs.frozen
class Delivered:
    pass


@attrs.frozen
class Retry:
    """Worth trying again later (429, 5xx, timeout, connection trouble)."""

    reason: str
    after: float | None = None  # seconds the service asked us to wait (Retry-After)


@attrs.frozen
class Dead:
    """The service says this subscription's token or address is gone for good."""

    reason: str


@attrs.frozen
class Failed:
    """This notification cannot be delivered (bad request, refused URL); don't retry."""

    reason: str


Outcome = Delivered | Retry | Dead | Failed


def explained(outcome: Outcome, detail: str) -> Outcome:
    """``outcome`` with ``detail`` added to its reason (Delivered has none)."""
    if isinstance(outcome, Retry):
        return Retry(f"{detail}: {outcome.reason}", outcome.after)
    if isinstance(outcome, Dead):
        return Dead(f"{detail}: {outcome.reason}")
    if isinstance(outcome, Failed):
        return Failed(f"{detail}: {outcome.reason}")
    return outcome


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header as seconds (delta or HTTP date), None if absent or bad."""
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def by_status(response: httpx.Response) -> Outcome:
    """The generic rule: 2xx delivered; 408/429/5xx retried; 410 dead; anything else failed."""
    status = response.status_code
    if 200 <= status < 300:
        return Delivered()
    if status in (408, 429) or status >= 500:
        return Retry(f"HTTP {status}", retry_after(response))
    if status == 410:
        return Dead("HTTP 410 Gone")
    return Failed(f"HTTP {status}")
