"""The push dispatcher: from a car's ``P`` to one delivery per subscription, retried.

Path: ``Router`` calls :meth:`PushDispatcher.notify` (never blocks: a bounded
intake queue, a full one drops the notification with a log line) -> the intake
task logs it as a ``*-Log-Notification`` historical record, looks up the
vehicle's subscriptions and stores one ``push_pending`` row per subscription ->
an ``outbound.Delivery`` (a small queue and ``push_workers`` worker tasks) sends it
through the subscription type's sender. A retryable failure (429, 5xx, timeout,
connection trouble) goes back to it with exponential back-off
(``outbound.retry.backoff``) and is sent again when due; a dead token deactivates
the subscription; success, failure, expiry or the last attempt delete the row.
Rows left at shutdown are loaded again at start, so a restart loses nothing that
was pending.

Store writes are group-committed and never awaited for commit: the rows are a
safety net for restarts, not on the delivery path.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable

import attrs
import httpx
import trio

from relay.config import Config
from relay.logsafe import redact_url
from relay.outbound.delivery import Delivery
from relay.outbound.retry import backoff
from relay.outbound.urlpolicy import Unresolvable, UrlPolicy, UrlRefused
from relay.push.base import Sender
from relay.push.ntfy import TOPIC_RE, is_url
from relay.push.outcome import Dead, Delivered, Failed, Outcome, Retry
from relay.push.services import open_senders
from relay.store import PendingPush, Store, StoreClosed

log = logging.getLogger("relay.push")

HISTORY_TYPE = "*-Log-Notification"
# The public server numbers history records 0..65535 and wraps; so do we.
_HISTORY_WRAP = 65536
_MAIL_RE = re.compile(r"[^@\s,<>]+@[^@\s,<>]+")
# Push types whose pushkeyvalue is a URL the relay will fetch: checked on ``p``.
URL_TYPES = frozenset({"webhook", "ntfy"})


@attrs.frozen
class Alert:
    vehicleid: str
    alerttype: str
    text: str


@attrs.define
class PushStats:
    """Counters for tests and monitoring."""

    queued: int = 0  # deliveries created (one per notification and subscription)
    delivered: int = 0
    retries: int = 0
    dead: int = 0  # subscriptions deactivated
    failed: int = 0  # given up (permanent error, attempts exhausted, expired)
    dropped: int = 0  # notifications lost to a full intake queue


class PushDispatcher:
    """Create, then run with ``await nursery.start(dispatcher.run)``."""

    def __init__(
        self, config: Config, store: Store, senders: dict[str, Sender] | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.policy = UrlPolicy(config.webhook_allow)
        # Filled by ``run`` (the HTTP clients live there); tests may pass their own.
        self.senders: dict[str, Sender] = dict(senders or {})
        self.stats = PushStats()
        self._intake_send, self._intake_recv = trio.open_memory_channel[Alert](
            max(1, config.push_queue_size)
        )
        # Small queue: a backlog waits in the intake queue or the retry heap, not here.
        self._delivery: Delivery[PendingPush] = Delivery(
            "push", self._attempt, workers=config.push_workers,
            queue_size=config.push_workers, stop_on=(StoreClosed,), describe=_ctx)
        self._history_seq = itertools.count()
        # Told (push type, outcome) of each attempt (the relay's metrics); must not block.
        self.on_outcome: Callable[[str, str], None] | None = None
        self._auth_failed: set[str] = set()

    @property
    def queue_depth(self) -> int:
        """Notifications waiting for the intake task plus deliveries waiting to retry."""
        return (self._intake_send.statistics().current_buffer_used
                + self._delivery.retrying)

    # ----------------------------------------------------------------- relay side (sync)

    def notify(self, vehicleid: str, data: str) -> None:
        """A car's ``P`` payload: alert type character, then the text. Never blocks."""
        if not data:
            return
        self._submit(Alert(vehicleid, data[0], data[1:]))

    def auth_failed(self, vehicleid: str, host: str) -> None:
        """A car sent a wrong digest: one notification until the next success."""
        if vehicleid in self._auth_failed:
            return
        self._auth_failed.add(vehicleid)
        self._submit(Alert(vehicleid, "A", f"Vehicle authentication failed ({host})"))

    def auth_succeeded(self, vehicleid: str, host: str) -> None:
        if vehicleid not in self._auth_failed:
            return
        self._auth_failed.discard(vehicleid)
        self._submit(Alert(vehicleid, "A", f"Vehicle authentication successful ({host})"))

    def _submit(self, alert: Alert) -> None:
        try:
            self._intake_send.send_nowait(alert)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.stats.dropped += 1
            log.warning("vehicle=%s push intake queue full, notification dropped", alert.vehicleid)

    async def check_subscription(self, pushtype: str, pushkeyvalue: str) -> str | None:
        """Why a ``p`` subscription must not be stored, or None if it may."""
        if pushtype == "mail":
            return None if _MAIL_RE.fullmatch(pushkeyvalue) else "not a mail address"
        if pushtype not in URL_TYPES:
            return None
        if pushtype == "ntfy" and not is_url(pushkeyvalue):
            return None if TOPIC_RE.fullmatch(pushkeyvalue) else "not an ntfy topic or URL"
        try:
            await self.policy.check(pushkeyvalue)
        except UrlRefused as exc:
            return f"URL refused: {exc}"
        except Unresolvable as exc:
            # Nothing to fetch now; every delivery checks the address again.
            log.info("push URL %s does not resolve now (%s); stored, checked again on delivery",
                     redact_url(pushkeyvalue), exc)
        return None

    # ----------------------------------------------------------------- tasks

    async def run(self, *, task_status: trio.TaskStatus[PushDispatcher] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with open_senders(self.config, self.store, self.policy) as senders:
            for name, sender in senders.items():
                self.senders.setdefault(name, sender)
            async with trio.open_nursery() as nursery:
                await self._load_pending()
                await nursery.start(self._delivery.run)
                nursery.start_soon(self._intake)
                log.info("push delivery running (%s)", ", ".join(sorted(self.senders)) or "none")
                task_status.started(self)

    async def _load_pending(self) -> None:
        pending, expired = await self.store.take_push_pending(self._taken_over)
        if expired:
            log.info("push: %d pending notifications expired while stopped", expired)
        self._schedule(pending)
        if pending:
            log.info("push: %d pending notifications reloaded", len(pending))

    async def _taken_over(self, pending: list[PendingPush]) -> None:
        """A cluster node stopped retrying these (relay.store.claims): this one does."""
        self._schedule(pending)
        log.info("push: %d pending notifications taken over from a stopped node",
                 len(pending))

    def _schedule(self, pending: list[PendingPush]) -> None:
        now = time.time()
        for item in pending:
            self._delivery.retry_in(item, item.next_try - now)

    async def _intake(self) -> None:
        async for alert in self._intake_recv:
            try:
                await self._accept(alert)
            except StoreClosed:
                return
            except Exception as exc:  # one bad notification must not stop push delivery
                log.exception("vehicle=%s push intake failed: %s", alert.vehicleid,
                              type(exc).__name__)

    async def _accept(self, alert: Alert) -> None:
        now = time.time()
        config = self.config
        if config.push_history > 0:
            await self.store.add_historical(
                alert.vehicleid, HISTORY_TYPE, next(self._history_seq) % _HISTORY_WRAP,
                f"{alert.alerttype},{alert.text}",
                timestamp=int(now), expires=int(now + config.push_history), from_car=False,
            )
        nid = secrets.token_hex(8)
        for sub in await self.store.push_subscriptions(alert.vehicleid):
            if sub.pushtype not in self.senders:
                log.info("vehicle=%s app=%s push type %r not configured, skipped",
                         sub.vehicleid, sub.appid, sub.pushtype)
                continue
            item = PendingPush(
                nid, sub.vehicleid, sub.appid, sub.owner, sub.pushtype, sub.pushkeytype,
                sub.pushkeyvalue, alert.alerttype, alert.text, now, now + config.push_expire,
                0, now,
            )
            await self.store.add_push_pending(item)
            self.stats.queued += 1
            await self._delivery.put(item)

    # ----------------------------------------------------------------- one attempt

    async def _attempt(self, item: PendingPush) -> None:
        if time.time() >= item.expires:
            self.stats.failed += 1
            self._count(item, "expired")
            log.warning("%s: push expired undelivered after %d attempts", _ctx(item), item.attempts)
            await self.store.delete_push_pending(item)
            return
        sender = self.senders.get(item.pushtype)
        if sender is None:  # configuration changed across a restart
            log.warning("%s: push type not configured any more, dropped", _ctx(item))
            self.stats.failed += 1
            self._count(item, "failed")
            await self.store.delete_push_pending(item)
            return
        if item.attempts and not await self._still_ours(item):
            return
        outcome: Outcome = Retry("timeout")
        with trio.move_on_after(self.config.push_timeout):
            outcome = await _send(sender, item)
        await self._settle(item, outcome)

    async def _still_ours(self, item: PendingPush) -> bool:
        return await self._delivery.still_ours(
            item, lambda: self.store.hold_push_pending(item),
            postpone=self.config.push_retry_base)

    def _count(self, item: PendingPush, outcome: str) -> None:
        if self.on_outcome is not None:
            # Bounded label: a stored type no sender serves any more counts as "other".
            self.on_outcome(item.pushtype if item.pushtype in self.senders else "other",
                            outcome)

    async def _settle(self, item: PendingPush, outcome: Outcome) -> None:
        if isinstance(outcome, Delivered):
            self.stats.delivered += 1
            self._count(item, "delivered")
            log.info("%s: push delivered", _ctx(item))
            await self.store.delete_push_pending(item)
        elif isinstance(outcome, Dead):
            self.stats.dead += 1
            self._count(item, "dead")
            log.warning("%s: push subscription deactivated: %s", _ctx(item), outcome.reason)
            await self.store.deactivate_push_subscription(
                item.vehicleid, item.appid, item.pushkeyvalue
            )
            await self.store.delete_push_pending(item)
        elif isinstance(outcome, Failed):
            self.stats.failed += 1
            self._count(item, "failed")
            log.warning("%s: push failed: %s", _ctx(item), outcome.reason)
            await self.store.delete_push_pending(item)
        else:
            await self._retry(item, outcome)

    async def _retry(self, item: PendingPush, outcome: Retry) -> None:
        config = self.config
        attempts = item.attempts + 1
        delay = backoff(attempts, config.push_retry_base, config.push_retry_max)
        if outcome.after is not None:
            delay = max(delay, min(outcome.after, config.push_retry_max))
        now = time.time()
        if attempts >= config.push_max_attempts or now + delay >= item.expires:
            self.stats.failed += 1
            self._count(item, "given_up")
            log.warning("%s: push given up after %d attempts: %s",
                        _ctx(item), attempts, outcome.reason)
            await self.store.delete_push_pending(item)
            return
        self.stats.retries += 1
        self._count(item, "retry")
        log.info("%s: push attempt %d failed (%s), retry in %.1f s",
                 _ctx(item), attempts, outcome.reason, delay)
        item = attrs.evolve(item, attempts=attempts, next_try=now + delay)
        await self.store.retry_push_pending(item)
        self._delivery.retry_in(item, delay)


async def _send(sender: Sender, item: PendingPush) -> Outcome:
    """One attempt; trouble on the way becomes an outcome (retry unless clearly permanent)."""
    try:
        return await sender.send(item)
    except UrlRefused as exc:
        return Failed(f"URL refused: {exc}")
    except Unresolvable as exc:
        return Retry(str(exc))
    except httpx.TimeoutException:
        return Retry("timeout")
    except (httpx.TransportError, OSError) as exc:
        return Retry(f"{type(exc).__name__}: {exc}"[:200])
    except Exception as exc:  # a bug or an unexpected answer: don't loop on it
        log.exception("%s: push sender crashed", _ctx(item))
        return Failed(f"{type(exc).__name__}: {exc}"[:200])


def _ctx(item: PendingPush) -> str:
    # Never the pushkeyvalue: it is a device token or a URL that may carry a secret.
    return f"vehicle={item.vehicleid} app={item.appid} type={item.pushtype} id={item.nid}"
