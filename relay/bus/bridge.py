"""nats-py on its own asyncio loop in one thread, bridged to trio.

trio -> NATS: ``publish``/``subscribe``/``unsubscribe`` never wait; they append an
operation to one bounded deque, and the first operation of a burst wakes the
asyncio thread's one writer task (``call_soon_threadsafe``), which takes whatever
has piled up and applies it in order: operations keep their order (a subscription
is in place before the publish that follows it), a burst costs one wake-up however
long it is, and a slow bus fills the bound, beyond which operations are dropped
(counted, logged) rather than grow. No trio task sits in between: a trio task per
burst and a wake-up back to trio when it was written cost the relay ~2x the CPU of
a local message (measured with ``ovms-bench --phases cluster``).

NATS -> trio: subscription callbacks append to one deque; the first message of a
burst schedules one wake-up of the trio dispatcher task (``run_sync_soon``), which
takes the whole deque and hands each message to ``on_message`` synchronously.

Outage: while NATS is unreachable, publishes are dropped (a stale burst delivered
minutes later would be worse than none), subscriptions are remembered and made on
reconnect, and the outage is one log line when it starts and one when it ends.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import attrs
import trio

log = logging.getLogger("relay.bus")

# Operations queued towards the asyncio thread
PUB, SUB, UNSUB, FLUSH, STOP = range(5)

Op = tuple[int, str, bytes, str, Any]
MessageSink = Callable[[str, bytes], None]
StateSink = Callable[[bool], None]


def safe_url(url: str) -> str:
    """The URL without credentials, for log lines."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@attrs.define
class BridgeStats:
    published: int = 0
    received: int = 0
    dropped_out: int = 0  # publishes dropped: queue full or bus down
    dropped_in: int = 0  # received messages dropped: the trio side fell behind


class NatsBridge:
    """The process's one NATS connection; ``run`` owns it (nursery start protocol)."""

    def __init__(self, url: str, *, name: str, queue_size: int = 20000,
                 inbound_limit: int = 100000, reconnect_wait: float = 1.0,
                 ping_interval: int = 5) -> None:
        self.url = url
        self.name = name
        self.on_message: MessageSink = lambda subject, data: None
        self.on_state: StateSink = lambda up: None
        self.stats = BridgeStats()
        self.connected = False
        self._reconnect_wait = reconnect_wait
        self._ping_interval = ping_interval
        self._inbound_limit = inbound_limit
        self._queue_size = queue_size
        # Filled by the trio side, emptied by the asyncio thread's writer.
        self._outbound: collections.deque[Op] = collections.deque()
        self._out_lock = threading.Lock()
        self._out_scheduled = False
        self._out_wake: asyncio.Event | None = None
        self._kick = trio.Event()
        # Filled by the asyncio thread, emptied by the trio dispatcher.
        self._inbound: collections.deque[tuple[str, bytes]] = collections.deque()
        self._lock = threading.Lock()
        self._wake_scheduled = False
        self._wake = trio.Event()
        self._full_logged = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- trio side: never waits ------------------------------------------------------

    def _put(self, op: Op, *, always: bool = False) -> None:
        with self._out_lock:
            if len(self._outbound) >= self._queue_size and not always:
                self.stats.dropped_out += 1
                if not self._full_logged:
                    self._full_logged = True
                    log.warning("bus: outgoing queue full, dropping messages (NATS too slow?)")
                return
            self._outbound.append(op)
            if self._out_scheduled:
                return  # the writer is due anyway
            self._out_scheduled = True
        # Not the thread wake-up itself: the kicker does it once the tasks running now
        # are done, so their publishes make one burst (a wake-up per message would
        # cost more than the message).
        self._kick.set()

    def _wake_writer(self) -> None:
        loop, wake = self._loop, self._out_wake
        if loop is None or wake is None:
            return  # the writer takes it when it starts
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the loop is gone: stopping

    def publish(self, subject: str, payload: bytes, reply: str = "") -> None:
        self._put((PUB, subject, payload, reply, None))

    def subscribe(self, subject: str) -> None:
        self._put((SUB, subject, b"", "", None))

    def unsubscribe(self, subject: str) -> None:
        self._put((UNSUB, subject, b"", "", None))

    async def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything queued before reached the NATS server (False: it did
        not within ``timeout``, e.g. the bus is down)."""
        done = trio.Event()
        self._put((FLUSH, "", b"", "", done), always=True)
        with trio.move_on_after(timeout):
            await done.wait()
        return done.is_set()

    # --- trio side: tasks -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        self._token = trio.lowlevel.current_trio_token()
        ready = trio.Event()
        token = self._token
        thread = threading.Thread(target=self._thread_main, args=(token, ready),
                                  name=f"nats-{self.name}", daemon=True)
        thread.start()
        try:
            await ready.wait()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._kicker)
                nursery.start_soon(self._dispatcher)
                task_status.started()
        finally:
            self._put((STOP, "", b"", "", None), always=True)
            self._wake_writer()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(thread.join, 5.0)

    async def _kicker(self) -> None:
        while True:
            await self._kick.wait()
            self._kick = trio.Event()
            self._wake_writer()

    async def _dispatcher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            with self._lock:
                burst = list(self._inbound)
                self._inbound.clear()
                self._wake_scheduled = False
            self.stats.received += len(burst)
            for subject, data in burst:
                try:
                    self.on_message(subject, data)
                except Exception:
                    # One bad message must cost that message, never the bus.
                    log.exception("bus: message on %s failed", subject)

    def _wake_up(self) -> None:
        self._wake.set()

    def _state(self, up: bool) -> None:
        self.connected = up
        self.on_state(up)

    # --- asyncio thread ------------------------------------------------------------------

    def _to_trio(self, token: trio.lowlevel.TrioToken, fn: Callable[..., object],
                 *args: Any) -> None:
        try:
            token.run_sync_soon(fn, *args)
        except trio.RunFinishedError:
            pass

    def _thread_main(self, token: trio.lowlevel.TrioToken, ready: trio.Event) -> None:
        asyncio.run(self._amain(token, ready))

    async def _amain(self, token: trio.lowlevel.TrioToken, ready: trio.Event) -> None:
        import nats
        from nats.aio.client import Client

        wake = asyncio.Event()
        wake.set()  # a first pass for what was queued before the loop ran
        with self._out_lock:
            self._loop, self._out_wake = asyncio.get_running_loop(), wake
        self._to_trio(token, ready.set)
        wanted: set[str] = set()
        subs: dict[str, Any] = {}
        down_since: list[float] = []  # [start] while the bus is down, logged once each way
        nc: Client | None = None
        stopping = False
        where = safe_url(self.url)

        async def on_msg(msg: Any) -> None:
            with self._lock:
                if len(self._inbound) >= self._inbound_limit:
                    self.stats.dropped_in += 1
                    return
                self._inbound.append((msg.subject, msg.data))
                if self._wake_scheduled:
                    return
                self._wake_scheduled = True
            # Once the callbacks ready now have run: the messages read together make
            # one burst, one wake-up of trio.
            asyncio.get_running_loop().call_soon(self._to_trio, token, self._wake_up)

        async def reconcile() -> None:
            assert nc is not None
            for subject in list(subs):
                if subject not in wanted:
                    await subs.pop(subject).unsubscribe()
            for subject in wanted:
                if subject not in subs:
                    subs[subject] = await nc.subscribe(subject, cb=on_msg)

        def went_down() -> None:
            if not down_since and not stopping:
                down_since.append(time.monotonic())
                log.warning("bus: lost NATS at %s; serving local connections only, "
                            "reconnecting", where)
                self._to_trio(token, self._state, False)

        async def disconnected() -> None:
            went_down()

        async def reconnected() -> None:
            if down_since:
                log.warning("bus: NATS at %s is back after %.1f s", where,
                            time.monotonic() - down_since.pop())
            await reconcile()
            self._to_trio(token, self._state, True)

        async def error(exc: Exception) -> None:
            log.debug("bus: NATS error: %s", exc)

        async def connect() -> Client:
            first = True
            while True:
                try:
                    client: Client = await nats.connect(
                        self.url, name=self.name, no_echo=True, allow_reconnect=True,
                        max_reconnect_attempts=-1, reconnect_time_wait=self._reconnect_wait,
                        connect_timeout=2, ping_interval=self._ping_interval,
                        max_outstanding_pings=2, pending_size=0,
                        disconnected_cb=disconnected, reconnected_cb=reconnected,
                        error_cb=error,
                    )
                    return client
                except Exception as exc:
                    if first:
                        first = False
                        log.warning("bus: cannot reach NATS at %s (%s); serving local "
                                    "connections only, retrying", where, exc)
                        down_since.append(time.monotonic())
                    await asyncio.sleep(self._reconnect_wait)

        async def apply(op: Op) -> None:
            kind, subject, payload, reply, done = op
            connected = nc is not None and nc.is_connected
            if kind == PUB:
                if not connected:
                    self.stats.dropped_out += 1
                    return
                assert nc is not None
                await nc.publish(subject, payload, reply=reply)
                self.stats.published += 1
            elif kind == SUB:
                wanted.add(subject)
                if connected and subject not in subs:
                    assert nc is not None
                    subs[subject] = await nc.subscribe(subject, cb=on_msg)
            elif kind == UNSUB:
                wanted.discard(subject)
                if connected and subject in subs:
                    await subs.pop(subject).unsubscribe()
            elif kind == FLUSH:
                if connected:
                    assert nc is not None
                    await nc.flush(timeout=2)
                    self._to_trio(token, done.set)

        async def connecting() -> None:
            nonlocal nc
            nc = await connect()
            if down_since:
                log.warning("bus: NATS at %s reached after %.1f s", where,
                            time.monotonic() - down_since.pop())
            else:
                log.info("bus: connected to NATS at %s as node %s", where, self.name)
            await reconcile()
            self._to_trio(token, self._state, True)

        connector = asyncio.create_task(connecting())
        try:
            running = True
            while running:
                await wake.wait()
                wake.clear()
                with self._out_lock:
                    batch = list(self._outbound)
                    self._outbound.clear()
                    self._out_scheduled = False
                self._full_logged = False
                for op in batch:
                    if op[0] == STOP:
                        running = False
                        break
                    try:
                        await apply(op)
                    except Exception as exc:
                        # Bus trouble (a reconnect under way, a closed connection): the
                        # operation is lost like a publish during an outage, counted.
                        self.stats.dropped_out += 1
                        log.debug("bus: %s on %s failed: %s", op[0], op[1], exc)
        finally:
            stopping = True
            connector.cancel()
            if nc is not None:
                try:
                    await asyncio.wait_for(nc.flush(timeout=1), 1.5)
                except Exception:
                    pass
                try:
                    await asyncio.wait_for(nc.close(), 2)
                except Exception:
                    pass
