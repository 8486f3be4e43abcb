"""The paho <-> trio bridge against a real Mosquitto: both directions, bursts, restarts."""

from __future__ import annotations

import logging

import pytest
import trio

from relay.mqtt.bridge import Inbox, MqttBridge, Received
from relay.mqtt.url import BrokerUrl
from tests.mqtt_broker import broker_url, free_port, own_mosquitto, unique_prefix


class Collector:
    def __init__(self) -> None:
        self.batches: list[list[Received]] = []
        self.connects = 0
        self.disconnects = 0
        self.changed = trio.Event()

    async def on_messages(self, batch: list[Received]) -> None:
        self.batches.append(batch)
        self._poke()

    def on_connected(self) -> None:
        self.connects += 1
        self._poke()

    def on_disconnected(self) -> None:
        self.disconnects += 1
        self._poke()

    def _poke(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def received(self) -> list[Received]:
        return [m for batch in self.batches for m in batch]

    async def until(self, check: object) -> None:
        with trio.fail_after(20):
            while not check():  # type: ignore[operator]
                await self.changed.wait()


async def test_publish_and_receive_in_order(nursery: trio.Nursery) -> None:
    with broker_url() as url:
        prefix = unique_prefix()
        bridge = MqttBridge(BrokerUrl.parse(url), (f"{prefix}/#",))
        got = Collector()
        await nursery.start(bridge.run, got)
        await got.until(lambda: got.connects == 1)
        for i in range(500):
            assert bridge.publish(f"{prefix}/a/{i % 3}", str(i).encode(), qos=1)
        await got.until(lambda: len(got.received()) == 500)
        assert [int(m.payload) for m in got.received()] == list(range(500))
        # A burst arrives in far fewer batches than messages: one wake-up per burst.
        assert len(got.batches) < 500
        bridge.publish(f"{prefix}/r", b"kept", qos=1, retain=True)
        await got.until(lambda: got.received()[-1].payload == b"kept")
        bridge.publish(f"{prefix}/r", b"", qos=1, retain=True)  # clear the retained message
        await got.until(lambda: got.received()[-1].payload == b"")


async def test_broker_restart_recovers(nursery: trio.Nursery,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.mqtt")
    with own_mosquitto() as broker:
        bridge = MqttBridge(BrokerUrl.parse(f"mqtt://relay:secret-pw@127.0.0.1:{broker.port}"),
                            ("p/#",))
        got = Collector()
        await nursery.start(bridge.run, got)
        await got.until(lambda: got.connects == 1)
        await trio.to_thread.run_sync(broker.restart)
        await got.until(lambda: got.connects == 2)
        assert got.disconnects == 1
        bridge.publish("p/x", b"after")  # subscriptions were renewed
        await got.until(lambda: any(m.payload == b"after" for m in got.received()))
    lines = [r.getMessage() for r in caplog.records if r.name == "relay.mqtt"]
    assert sum("lost" in line for line in lines) == 1
    assert sum("restored" in line for line in lines) == 1
    assert not any("secret-pw" in line for line in lines)


async def test_unreachable_broker_logs_once(nursery: trio.Nursery,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.mqtt")
    attempts: list[str] = []
    bridge = MqttBridge(BrokerUrl.parse(f"mqtt://u:pw@127.0.0.1:{free_port()}"), ())
    got = Collector()
    await nursery.start(bridge.run, got)
    # paho retries after 1 s, then 2 s, ... in real time (its thread does not know trio's
    # clock): after the first wait, retries every 0.1 s make the failures come quickly.
    bridge_client = bridge._client
    assert bridge_client is not None
    bridge_client.reconnect_delay_set(0.1, 0.1)  # type: ignore[arg-type]
    original = bridge_client.on_connect_fail
    assert original is not None

    def counted(client: object, userdata: object) -> None:
        attempts.append("fail")
        original(client, userdata)  # type: ignore[arg-type]

    bridge_client.on_connect_fail = counted
    with trio.fail_after(20):
        while len(attempts) < 2:
            await trio.sleep(0.1)
    failures = [r for r in caplog.records if "cannot connect" in r.getMessage()]
    assert len(failures) == 1
    assert got.connects == 0


def test_inbox_drops_only_after_waiting() -> None:
    async def main() -> None:
        inbox = Inbox(trio.lowlevel.current_trio_token(), limit=2, full_wait=0.01)
        for i in range(3):
            await trio.to_thread.run_sync(inbox.put, Received("t", bytes([i]), False))
        assert inbox.dropped == 1
        batch = await inbox.get_batch()
        assert [m.payload for m in batch if isinstance(m, Received)] == [b"\0", b"\1"]
        await trio.to_thread.run_sync(inbox.put, Received("t", b"\3", False))
        assert len(await inbox.get_batch()) == 1

    trio.run(main)


async def test_persistent_session_keeps_what_was_not_acknowledged() -> None:
    with own_mosquitto() as broker:
        url = BrokerUrl.parse(broker.url)
        sender = MqttBridge(url, ())
        quiet = Collector()

        async def session(ack: bool, wait_for_it: bool) -> list[bytes]:
            bridge = MqttBridge(url, ("p/#",), client_id="relay-test", persistent=True)
            got = Collector()
            async with trio.open_nursery() as nursery:
                await nursery.start(bridge.run, got)
                await got.until(lambda: got.connects == 1)
                if wait_for_it:
                    await got.until(lambda: any(m.payload == b"away" for m in got.received()))
                else:
                    await trio.sleep(0.5)  # time enough for anything queued to arrive
                if ack:
                    for message in got.received():
                        bridge.ack(message)
                    await trio.sleep(0.2)  # the PUBACKs reach the broker
                nursery.cancel_scope.cancel()
            return [m.payload for m in got.received()]

        async with trio.open_nursery() as nursery:
            await nursery.start(sender.run, quiet)
            await quiet.until(lambda: quiet.connects == 1)
            assert await session(ack=True, wait_for_it=False) == []  # subscribes, leaves
            sender.publish("p/record", b"away", qos=1)
            await trio.sleep(0.3)
            # Queued by the broker while the session was away ...
            assert await session(ack=False, wait_for_it=True) == [b"away"]
            # ... and, not acknowledged, sent again; once acknowledged, never again.
            assert await session(ack=True, wait_for_it=True) == [b"away"]
            assert await session(ack=True, wait_for_it=False) == []
            nursery.cancel_scope.cancel()
