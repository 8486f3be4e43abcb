"""Monitor callbacks on the wire: an ``outbound.Delivery``, retries per retryPolicy.

``CallbackSender.submit`` never blocks (a full queue drops the batch, logged),
so evaluating monitors can never be slowed by a slow callback target. Workers
build the request (``monitors.build_callback``) when it is sent, check the
target against the outbound allow-list every time (the list may have changed
since the monitor was stored, and DNS answers change), POST it with the outbound
HTTP client and schedule retries with ``monitors.retry_after``. A batch given up
on becomes a ``monitor.callbackFailed`` alert of the vehicle.

A batch waiting for a retry is stored (``callback_rows``) and loaded again at
start, so a restart does not lose it; the retry heap is bounded like the queue.
Header values are never logged (they carry the receiver's credentials), and the
URL only as ``logsafe.redact_url`` shows it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx
import trio

from relay.clock import SYSTEM_CLOCK, Clock
from relay.logsafe import redact_url
from relay.outbound.client import USER_AGENT, open_client
from relay.outbound.delivery import Delivery
from relay.outbound.urlpolicy import Unresolvable, UrlPolicy, UrlRefused
from relay.store import Store, StoreClosed
from relay.v4 import callback_rows, datapaths, monitor_model, monitor_parse, monitors


@attrs.define(eq=False)
class CallbackJob:
    monitorid: str
    vehicleid: str
    vin: str | None
    monitor: monitor_model.Monitor
    events: tuple[monitors.Event, ...]
    snapshot: dict[str, str]  # the vehicle's latest messages when the batch was ready
    location_at: float | None
    created: float  # wall time the batch was made
    failures: int = 0
    jobid: str = attrs.field(factory=lambda: secrets.token_hex(8))
    stored: bool = False  # a row exists in callback_rows

    def to_json(self) -> dict[str, Any]:
        return {"vin": self.vin, "monitor": monitor_parse.monitor_to_json(self.monitor),
                "events": [monitors.event_to_json(e) for e in self.events],
                "snapshot": dict(self.snapshot), "locationAt": self.location_at}

    @classmethod
    def from_row(cls, row: callback_rows.PendingRow) -> CallbackJob:
        data = row.job
        location_at = data.get("locationAt")
        return cls(row.monitorid, row.vehicleid, data.get("vin"),
                   monitor_parse.monitor_restore(data["monitor"]),
                   tuple(monitors.event_from_json(e) for e in data["events"]),
                   {str(k): str(v) for k, v in dict(data.get("snapshot") or {}).items()},
                   float(location_at) if location_at is not None else None,
                   row.created, row.failures, row.jobid, stored=True)


@attrs.define
class CallbackStats:
    sent: int = 0  # attempts made
    delivered: int = 0
    retries: int = 0
    failed: int = 0  # given up
    dropped: int = 0  # queue full
    reloaded: int = 0  # pending retries loaded at start


AlertsFor = Callable[[str], Awaitable[list[dict[str, Any]]]]
GaveUp = Callable[[CallbackJob, str], Awaitable[None]]

log = logging.getLogger("relay.v4.callbacks")


def _ctx(job: CallbackJob) -> str:
    return (f"vehicle={job.vehicleid} monitor={job.monitorid} "
            f"target={redact_url(job.monitor.callback.target)}")


class CallbackSender:
    def __init__(self, policy: UrlPolicy, *, timeout: float, queue_size: int, workers: int,
                 alerts_for: AlertsFor, gave_up: GaveUp, store: Store | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        self.policy = policy
        self.clock = clock
        self.timeout = timeout
        self.stats = CallbackStats()
        self._alerts_for = alerts_for
        self._gave_up = gave_up
        self._store = store
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._delivery: Delivery[CallbackJob] = Delivery(
            "callbacks", self._attempt, workers=workers, queue_size=queue_size,
            stop_on=(StoreClosed,), describe=_ctx)
        self.queue_size = self._delivery.queue_size

    def submit(self, job: CallbackJob) -> None:
        """Queue a batch for delivery; never blocks."""
        if not self._delivery.offer(job):
            self.stats.dropped += 1
            log.warning("vehicle=%s monitor=%s callback queue full, %d events dropped",
                        job.vehicleid, job.monitorid, len(job.events))

    def idle(self) -> bool:
        """Nothing queued, being sent or waiting for a retry (for tests and shutdown logs)."""
        return self._delivery.idle()

    async def wait_idle(self) -> None:
        """Return once ``idle`` (woken by the delivery workers, no polling)."""
        await self._delivery.wait_idle()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with open_client(timeout=self.timeout,
                               max_connections=max(4, self._delivery.workers * 2),
                               transport=self._transport) as client:
            self._client = client
            if self._store is not None:
                self._store.add_purge(callback_rows.TABLE, callback_rows.purge)
                await self._load_pending(self._store)
            async with trio.open_nursery() as nursery:
                await nursery.start(self._delivery.run)
                task_status.started()

    async def _load_pending(self, store: Store) -> None:
        await self._schedule(store, await callback_rows.load(store, self._taken_over))
        if self.stats.reloaded:
            log.info("callbacks: %d pending retries reloaded", self.stats.reloaded)

    async def _taken_over(self, loaded: callback_rows.Loaded) -> None:
        """A cluster node stopped retrying these (relay.store.claims): this one does."""
        assert self._store is not None
        count = await self._schedule(self._store, loaded)
        if count:
            log.info("callbacks: %d pending retries taken over from a stopped node", count)

    async def _schedule(self, store: Store, loaded: callback_rows.Loaded) -> int:
        rows, broken = loaded
        count = 0
        for jobid in broken:
            await callback_rows.delete(store, jobid)
        now = self.clock.wall()
        for row in rows:
            try:
                job = CallbackJob.from_row(row)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("vehicle=%s monitor=%s pending callback cannot be loaded, dropped: %s",
                          row.vehicleid, row.monitorid, exc)
                await callback_rows.delete(store, row.jobid)
                continue
            self.stats.reloaded += 1
            count += 1
            self._delivery.retry_in(job, row.next_try - now)
        return count

    async def _attempt(self, job: CallbackJob) -> None:
        client = self._client
        assert client is not None, "CallbackSender._attempt before run"
        if job.stored and not await self._still_ours(job):
            return
        alerts: Sequence[Mapping[str, Any]] = ()
        if "vehicle.alerts" in job.monitor.extended:
            alerts = await self._alerts_for(job.vehicleid)
        extended = monitors.extended_data(job.monitor, job.snapshot,
                                          location_at=job.location_at, alerts=alerts)
        request = monitors.build_callback(
            job.monitor, job.events, extended,
            monitors.VehicleInfo(job.vehicleid, job.vin), monitor_id=job.monitorid,
            sent_at=self.clock.wall())
        ctx = _ctx(job)
        status: int | None = None
        reason = ""
        try:
            target = await self.policy.check(request.url)
        except UrlRefused as exc:
            # The allow-list changed since the monitor was stored: never retried.
            log.warning("%s: callback target refused: %s", ctx, exc)
            await self._give_up(job, f"target refused: {exc}")
            return
        except Unresolvable as exc:
            reason = str(exc)
        else:
            options = target.request_options()
            headers = {"User-Agent": USER_AGENT, **dict(request.headers),
                       **options.pop("headers", {})}
            self.stats.sent += 1
            with trio.move_on_after(self.timeout):
                try:
                    response = await client.request(request.method, target.url,
                                                     content=request.body_bytes(),
                                                     headers=headers, **options)
                    status = response.status_code
                    reason = f"HTTP {status}"
                except httpx.HTTPError as exc:
                    reason = type(exc).__name__
                except OSError as exc:
                    reason = f"{type(exc).__name__}: {exc}"[:200]
            if not reason:
                reason = "timeout"
        if monitors.delivered(status):
            self.stats.delivered += 1
            log.info("%s: callback delivered (%d events, HTTP %s)", ctx, len(job.events), status)
            await self._forget(job)
            return
        job.failures += 1
        delay = monitors.retry_after(job.monitor.retry, job.failures, status)
        if delay is None:
            log.warning("%s: callback given up after %d attempts: %s", ctx, job.failures,
                        reason)
            await self._give_up(job, reason)
            return
        if self._delivery.retrying >= self.queue_size:
            log.warning("%s: callback retry queue full, given up: %s", ctx, reason)
            await self._give_up(job, reason)
            return
        if self._store is not None:
            await callback_rows.save(self._store, callback_rows.PendingRow(
                job.jobid, job.monitorid, job.vehicleid, job.to_json(), job.failures,
                self.clock.wall() + delay, job.created))
            job.stored = True
        self.stats.retries += 1
        log.info("%s: callback attempt %d failed (%s), retry in %g s", ctx, job.failures,
                 reason, delay)
        self._delivery.retry_in(job, delay)

    async def _still_ours(self, job: CallbackJob) -> bool:
        store = self._store
        assert store is not None

        async def hold() -> bool:
            held = await callback_rows.hold(store, job.jobid)
            if not held:
                job.stored = False  # the row is another node's now
            return held

        return await self._delivery.still_ours(
            job, hold, postpone=float(job.monitor.retry.retry_delay))

    async def _forget(self, job: CallbackJob) -> None:
        if job.stored and self._store is not None:
            await callback_rows.delete(self._store, job.jobid)
            job.stored = False

    async def _give_up(self, job: CallbackJob, reason: str) -> None:
        self.stats.failed += 1
        await self._forget(job)
        await self._gave_up(job, reason)


def vin_of(snapshot: Mapping[str, str]) -> str | None:
    value = datapaths.value_of("vehicle.vin", snapshot)
    return value if isinstance(value, str) else None
