"""The broker connection: a paho-mqtt client in its own thread, bridged to trio.

paho runs its network loop in its own thread (``loop_start``), which also
reconnects by itself after a lost connection (a broker restart) with back-off.
Two long-lived trio tasks cross the thread boundary, one per direction, never a
task per message:

- **in**: paho's callbacks append to ``Inbox``, a bounded list shared with the
  thread. Only the first message of a burst wakes trio (``run_sync_soon``); the
  reader task then takes everything queued since, in one batch. When trio falls
  behind and the list is full, paho's thread waits for room (the broker then
  holds the messages: backpressure, not loss) and only after ``FULL_WAIT``
  seconds drops one, counted in a log line.
- **out**: ``publish`` puts on a bounded trio memory channel without waiting
  (False when full); the writer task hands each message to paho, whose
  ``publish`` only queues it for the network thread.

The bridge knows nothing of OVMS: it hands ``Received`` batches and connection
state changes to a ``BrokerHandler``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import uuid
from typing import Protocol

import attrs
import trio
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from relay.mqtt.url import BrokerUrl

log = logging.getLogger("relay.mqtt")

# Messages received and not yet taken by trio; past this the network thread waits.
INBOX_LIMIT = 20000
# How long the network thread waits for room before dropping one message: well
# under the keepalive, so a stuck trio side never costs the broker connection.
FULL_WAIT = 5.0
# Messages waiting to be published (presence, commands); past this publish() is False.
OUTBOX_LIMIT = 10000
# After a wake-up, how long the reader waits for the rest of a burst before taking it.
SETTLE = 0.01
KEEPALIVE = 60
RECONNECT_MIN, RECONNECT_MAX = 1, 30
# QoS-1 messages paho keeps for a broker that is away; bounded, unlike its default.
MAX_QUEUED = 1000


@attrs.frozen
class Received:
    """One message from the broker (topic as text: MQTT topics are UTF-8).

    ``mid``, ``qos`` and ``generation`` (which connection brought it) are what
    ``MqttBridge.ack`` needs in a persistent session."""

    topic: str
    payload: bytes
    retain: bool
    mid: int = 0
    qos: int = 0
    generation: int = 0


@attrs.frozen
class Publish:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


@attrs.frozen
class _StateChange:
    connected: bool
    reason: str


class BrokerHandler(Protocol):
    async def on_messages(self, batch: list[Received]) -> None:
        """A batch of messages, in the order the broker sent them."""

    def on_connected(self) -> None:
        """Connected (again) and subscribed: republish what must be current."""

    def on_disconnected(self) -> None: ...


class Inbox:
    """Items from paho's thread to trio: bounded, one wake-up per burst."""

    def __init__(self, token: trio.lowlevel.TrioToken, limit: int = INBOX_LIMIT,
                 full_wait: float = FULL_WAIT, settle: float = SETTLE) -> None:
        self._token = token
        self._settle = settle
        self._limit = limit
        self._full_wait = full_wait
        self._cond = threading.Condition()
        self._items: list[Received | _StateChange] = []
        self._wake_pending = False
        self._closed = False
        self._ready = trio.Event()  # touched only in trio's thread
        self.dropped = 0

    def put(self, item: Received | _StateChange) -> None:
        """From paho's thread: queue ``item``, waiting a bounded time for room."""
        with self._cond:
            if len(self._items) >= self._limit and isinstance(item, Received):
                self._cond.wait_for(
                    lambda: len(self._items) < self._limit or self._closed, self._full_wait)
                if len(self._items) >= self._limit or self._closed:
                    self.dropped += 1
                    return
            self._items.append(item)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._token.run_sync_soon(self._ready.set)
        except trio.RunFinishedError:
            pass

    async def get_batch(self) -> list[Received | _StateChange]:
        """In trio: everything queued since the last call (waits for at least one)."""
        await self._ready.wait()
        # The rest of the burst (a module sends its changed metrics together) is
        # usually still being read by paho's thread: take it in this batch too.
        await trio.sleep(self._settle)
        self._ready = trio.Event()
        with self._cond:
            items, self._items = self._items, []
            self._wake_pending = False
            self._cond.notify_all()
        return items

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class MqttBridge:
    """One client connection to the broker, as ``url``'s user (a broker superuser)."""

    def __init__(self, url: BrokerUrl, subscriptions: tuple[str, ...], *,
                 client_id: str = "", ssl_context: ssl.SSLContext | None = None,
                 will: Publish | None = None, persistent: bool = False) -> None:
        self.url = url
        # A persistent session (a stable client_id): the broker keeps the
        # subscriptions and queues QoS 1 messages while this client is away, and a
        # message counts as delivered only once ``ack`` is called for it.
        self.persistent = persistent
        self._generation = 0  # connections so far (paho's thread increments it)
        self.will = will  # what the broker publishes when this connection dies
        self.subscriptions = subscriptions
        self.client_id = client_id or f"ovms-relay-{uuid.uuid4().hex[:12]}"
        self._ssl_context = ssl_context
        self._send, self._receive = trio.open_memory_channel[Publish](OUTBOX_LIMIT)
        self._client: paho.Client | None = None
        self._inbox: Inbox | None = None
        self.connected = False
        self.publish_refused = 0

    # --- trio side -------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes | str, *, qos: int = 1,
                retain: bool = False) -> bool:
        """Queue a message for the broker without waiting; False if the queue is full."""
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            self._send.send_nowait(Publish(topic, data, qos, retain))
        except trio.WouldBlock:
            self.publish_refused += 1
            if str(self.publish_refused).strip("0") == "1":  # 1st, 10th, 100th...
                log.warning("mqtt: %d messages not published, the outbound queue is full",
                            self.publish_refused)
            return False
        return True

    def ack(self, message: Received) -> None:
        """Acknowledge ``message`` to the broker (persistent sessions; else a no-op).

        A message of an earlier connection is not acknowledged: its id may mean
        another message now, and the broker sends it again anyway."""
        client = self._client
        if (not self.persistent or message.qos == 0 or client is None
                or message.generation != self._generation):
            return
        client.ack(message.mid, message.qos)

    async def run(self, handler: BrokerHandler, *,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect (in the background: an unreachable broker is retried, not fatal) and
        relay both ways until cancelled."""
        inbox = self._inbox = Inbox(trio.lowlevel.current_trio_token())
        client = self._client = self._make_client(inbox)
        client.connect_async(self.url.host, self.url.port, KEEPALIVE)
        client.loop_start()
        log.info("mqtt: connecting to %s as %s", self.url.redacted(), self.client_id)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, client)
                task_status.started()
                await self._reader(inbox, handler)
        finally:
            inbox.close()
            with trio.CancelScope(shield=True):
                if self.will is not None and self.connected:
                    # A clean stop says what the will would have: a DISCONNECT makes
                    # the broker discard the will. paho sends it before the DISCONNECT.
                    w = self.will
                    client.publish(w.topic, w.payload, w.qos, w.retain)
                client.disconnect()
                # Joins paho's thread: it ends within its select timeout (1 s).
                with trio.move_on_after(5):
                    await trio.to_thread.run_sync(client.loop_stop, abandon_on_cancel=True)

    async def _reader(self, inbox: Inbox, handler: BrokerHandler) -> None:
        down_since: float | None = None
        reported_drops = 0
        while True:
            batch = await inbox.get_batch()
            messages: list[Received] = []
            for item in batch:
                if isinstance(item, Received):
                    messages.append(item)
                    continue
                # Messages before a state change belong to the connection before it.
                if messages:
                    await handler.on_messages(messages)
                    messages = []
                down_since = self._state_changed(item, handler, down_since)
            if messages:
                await handler.on_messages(messages)
            if inbox.dropped != reported_drops:
                log.warning("mqtt: %d messages dropped, the relay fell behind the broker",
                            inbox.dropped - reported_drops)
                reported_drops = inbox.dropped

    def _state_changed(self, change: _StateChange, handler: BrokerHandler,
                       down_since: float | None) -> float | None:
        """One log line at the start of an outage and one at its end."""
        now = trio.current_time()
        if change.connected:
            if not self.connected:
                if down_since is None:
                    log.info("mqtt: connected to %s", self.url.redacted())
                else:
                    log.warning("mqtt: connection to %s restored after %.0f s",
                                self.url.redacted(), now - down_since)
            self.connected = True
            handler.on_connected()
            return None
        if self.connected:
            self.connected = False
            handler.on_disconnected()
            log.warning("mqtt: connection to %s lost (%s), reconnecting",
                        self.url.redacted(), change.reason)
            return now
        if down_since is None:
            log.warning("mqtt: cannot connect to %s (%s), retrying",
                        self.url.redacted(), change.reason)
            return now
        return down_since

    async def _writer(self, client: paho.Client) -> None:
        async for message in self._receive:
            if message.qos == 0 and not self.connected:
                continue  # paho would refuse it; nothing to say about each
            info = client.publish(message.topic, message.payload, message.qos, message.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                log.debug("mqtt: publish to %s refused by paho: %s",
                          message.topic[:128], paho.error_string(info.rc))

    # --- paho's thread -------------------------------------------------------------------

    def _make_client(self, inbox: Inbox) -> paho.Client:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             clean_session=not self.persistent, protocol=paho.MQTTv311,
                             manual_ack=self.persistent)
        if self.url.username:
            client.username_pw_set(self.url.username, self.url.password or None)
        if self.url.tls:
            client.tls_set_context(self._ssl_context or ssl.create_default_context())
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, self.will.qos, self.will.retain)
        client.reconnect_delay_set(RECONNECT_MIN, RECONNECT_MAX)
        client.max_queued_messages_set(MAX_QUEUED)
        subscriptions = [(topic, 1) for topic in self.subscriptions]

        def on_connect(client: paho.Client, userdata: object, flags: object,
                       reason: ReasonCode, properties: object) -> None:
            if reason.is_failure:
                inbox.put(_StateChange(False, f"refused: {reason}"))
                return
            self._generation += 1
            if subscriptions:
                client.subscribe(subscriptions)
            inbox.put(_StateChange(True, "connected"))

        def on_disconnect(client: paho.Client, userdata: object, flags: object,
                          reason: ReasonCode, properties: object) -> None:
            inbox.put(_StateChange(False, str(reason)))

        def on_connect_fail(client: paho.Client, userdata: object) -> None:
            inbox.put(_StateChange(False, "no answer"))

        def on_message(client: paho.Client, userdata: object,
                       message: paho.MQTTMessage) -> None:
            try:
                topic = message.topic
            except UnicodeDecodeError:
                return  # brokers refuse such topics; nothing of ours anyway
            inbox.put(Received(topic, bytes(message.payload), bool(message.retain),
                               message.mid, message.qos, self._generation))

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_connect_fail = on_connect_fail
        client.on_message = on_message
        return client


__all__ = ["BrokerHandler", "Inbox", "MqttBridge", "Publish", "Received"]
