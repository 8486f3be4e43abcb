"""A scripted OVMS v3 module for the tests: a plain paho client, as the firmware uses MQTT.

It publishes under ``<prefix>/<owner>/<vehicle>/``, with ``metric/s/v3/connected``
``no`` (retained) as its last will, subscribes to ``client/+/active`` and
``client/+/command/+`` like the firmware, and records what it receives. ``die``
drops the TCP connection without a DISCONNECT, so the broker publishes the will.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import trio
from paho.mqtt import client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from relay.mqtt.url import BrokerUrl


class ScriptedModule:
    def __init__(self, url: str, prefix: str, owner: str, vehicleid: str,
                 password: str = "pw") -> None:
        self.base = f"{prefix}/{owner}/{vehicleid}"
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        broker = BrokerUrl.parse(url)
        # Unique per prefix: a broker closes the older of two clients with one id, and
        # tests share the machine's broker.
        self.client = paho.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"{prefix}-{vehicleid}-mod", clean_session=True)
        self.client.username_pw_set(owner, password)
        self.client.will_set(f"{self.base}/metric/s/v3/connected", b"no", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port, keepalive=60)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, userdata: object, flags: object,
                    reason: ReasonCode, properties: object) -> None:
        if reason.is_failure:
            return  # refused (bad password): ready() times out
        client.subscribe([(f"{self.base}/client/+/active", 1),
                          (f"{self.base}/client/+/command/+", 1)])
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: object,
                    message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.append((message.topic[len(self.base) + 1:], message.payload))

    async def ready(self) -> None:
        with trio.fail_after(10):
            while not self._connected.is_set():
                await trio.sleep(0.02)

    def publish(self, path: str, payload: bytes | str, *, retain: bool = False,
                qos: int = 1) -> None:
        self.client.publish(f"{self.base}/{path}", payload, qos=qos, retain=retain)

    def metric(self, name: str, value: str) -> None:
        self.publish("metric/" + name.replace(".", "/"), value, retain=True, qos=0)

    def online(self) -> None:
        self.publish("metric/s/v3/connected", b"yes", retain=True)

    def messages(self, match: Callable[[str], bool]) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(t, p) for t, p in self.received if match(t)]

    async def wait_for(self, match: Callable[[str], bool], count: int = 1,
                       timeout: float = 10.0) -> list[tuple[str, bytes]]:
        with trio.fail_after(timeout):
            while len(self.messages(match)) < count:
                await trio.sleep(0.02)
        return self.messages(match)

    def die(self) -> None:
        """Lose the connection as a module losing power would: no DISCONNECT."""
        self.client.loop_stop()
        sock = self.client.socket()
        if sock is not None:
            sock.close()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def clear_retained(self, paths: list[str]) -> None:
        for path in paths:
            self.publish(path, b"", retain=True)


def clear_retained(url: str, prefix: str, wait: float = 0.5) -> int:
    """Remove every retained message under ``prefix`` (a shared broker keeps them)."""
    broker = BrokerUrl.parse(url)
    found: set[str] = set()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="", clean_session=True)
    client.username_pw_set(broker.username or "cleanup", broker.password or None)

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        if message.retain:
            found.add(message.topic)

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(f"{prefix}/#")
    client.loop_start()
    threading.Event().wait(wait)
    for topic in found:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    return len(found)
