"""Monitor callbacks on the wire: a bounded queue, worker tasks, retries per retryPolicy.

``CallbackSender.submit`` never blocks (a full queue drops the batch, logged),
so evaluating monitors can never be slowed by a slow callback target. Workers
build the request (``monitors.build_callback``) when it is sent, check the
target against the outbound allow-list every time (the list may have changed
since the monitor was stored, and DNS answers change), POST it with httpx and
schedule retries with ``monitors.retry_after``. A batch given up on becomes a
``monitor.callbackFailed`` alert of the vehicle.

Retries wait in memory (a heap, bounded like the queue): a restart forgets
them. Header values are never logged (they carry the receiver's credentials),
nor the URL past its host.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import attrs
import httpx
import trio

from relay.push.base import USER_AGENT
from relay.push.ssrf import Unresolvable, UrlPolicy, UrlRefused, describe
from relay.retryqueue import RetryQueue
from relay.v4 import datapaths, monitors


@attrs.define(eq=False)
class CallbackJob:
    monitorid: str
    vehicleid: str
    vin: str | None
    monitor: monitors.Monitor
    events: tuple[monitors.Event, ...]
    snapshot: dict[str, str]  # the vehicle's latest messages when the batch was ready
    location_at: float | None
    failures: int = 0


@attrs.define
class CallbackStats:
    sent: int = 0  # attempts made
    delivered: int = 0
    retries: int = 0
    failed: int = 0  # given up
    dropped: int = 0  # queue full


AlertsFor = Callable[[str], Awaitable[list[dict[str, Any]]]]
GaveUp = Callable[[CallbackJob, str], Awaitable[None]]

log = logging.getLogger("relay.v4.callbacks")


class CallbackSender:
    def __init__(self, policy: UrlPolicy, *, timeout: float, queue_size: int, workers: int,
                 alerts_for: AlertsFor, gave_up: GaveUp,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.timeout = timeout
        self.queue_size = max(1, queue_size)
        self.workers = max(1, workers)
        self.stats = CallbackStats()
        self._alerts_for = alerts_for
        self._gave_up = gave_up
        self._transport = transport
        self._send, self._recv = trio.open_memory_channel[CallbackJob](self.queue_size)
        self._retries: RetryQueue[CallbackJob] = RetryQueue()
        self._busy = 0
        self._idle_lot = trio.lowlevel.ParkingLot()

    def submit(self, job: CallbackJob) -> None:
        """Queue a batch for delivery; never blocks."""
        try:
            self._send.send_nowait(job)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.stats.dropped += 1
            log.warning("vehicle=%s monitor=%s callback queue full, %d events dropped",
                        job.vehicleid, job.monitorid, len(job.events))

    def idle(self) -> bool:
        """Nothing queued, being sent or waiting for a retry (for tests and shutdown logs)."""
        return self._busy == 0 and not self._retries and \
            self._recv.statistics().current_buffer_used == 0

    async def wait_idle(self) -> None:
        """Return once ``idle`` (woken by the workers, no polling)."""
        while not self.idle():
            await self._idle_lot.park()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        async with httpx.AsyncClient(transport=self._transport, follow_redirects=False,
                                     timeout=self.timeout, trust_env=False) as client:
            async with trio.open_nursery() as nursery:
                for _ in range(self.workers):
                    nursery.start_soon(self._worker, client)
                nursery.start_soon(self._retries.release_into, self._send)
                task_status.started()

    async def _worker(self, client: httpx.AsyncClient) -> None:
        async for job in self._recv:
            self._busy += 1
            try:
                await self._attempt(client, job)
            except Exception:  # one bad batch must not stop delivery
                log.exception("vehicle=%s monitor=%s callback crashed", job.vehicleid,
                              job.monitorid)
            finally:
                self._busy -= 1
                if self.idle():
                    self._idle_lot.unpark_all()

    async def _attempt(self, client: httpx.AsyncClient, job: CallbackJob) -> None:
        alerts: Sequence[Mapping[str, Any]] = ()
        if "vehicle.alerts" in job.monitor.extended:
            alerts = await self._alerts_for(job.vehicleid)
        extended = monitors.extended_data(job.monitor, job.snapshot,
                                          location_at=job.location_at, alerts=alerts)
        request = monitors.build_callback(
            job.monitor, job.events, extended,
            monitors.VehicleInfo(job.vehicleid, job.vin), monitor_id=job.monitorid,
            sent_at=time.time())
        ctx = f"vehicle={job.vehicleid} monitor={job.monitorid} target={describe(request.url)}"
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
        job.failures += 0 if monitors.delivered(status) else 1
        if monitors.delivered(status):
            self.stats.delivered += 1
            log.info("%s: callback delivered (%d events, HTTP %s)", ctx, len(job.events), status)
            return
        delay = monitors.retry_after(job.monitor.retry, job.failures, status)
        if delay is None:
            log.warning("%s: callback given up after %d attempts: %s", ctx, job.failures,
                        reason)
            await self._give_up(job, reason)
            return
        if len(self._retries) >= self.queue_size:
            log.warning("%s: callback retry queue full, given up: %s", ctx, reason)
            await self._give_up(job, reason)
            return
        self.stats.retries += 1
        log.info("%s: callback attempt %d failed (%s), retry in %g s", ctx, job.failures,
                 reason, delay)
        self._retries.schedule(job, trio.current_time() + delay)

    async def _give_up(self, job: CallbackJob, reason: str) -> None:
        self.stats.failed += 1
        await self._gave_up(job, reason)


def vin_of(snapshot: Mapping[str, str]) -> str | None:
    value = datapaths.value_of("vehicle.vin", snapshot)
    return value if isinstance(value, str) else None
