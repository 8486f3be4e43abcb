"""``ovms-bench`` phase ``v3``: OVMS v3 modules through a broker, watched by v2 apps.

``--v3-modules`` vehicles publish through the broker (one MQTT connection
carries them all: the relay's side, not the modules', is measured), each watched
by one v2 app. Closed loop per vehicle: a module publishes a burst of
``BURST`` metrics, one of them a sequence number that lands in the ``S``
message (``v.c.time``, the charge duration field), and publishes the next burst
once its app has seen that ``S``. Reported: metrics ingested per second (all
vehicles, after ``--warmup``) and the metric-to-app latency, from the burst's
publication to the app's ``S``.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from protocol.ovms_v3 import topics
from relay.mqtt.bridge import MqttBridge, Received
from relay.mqtt.url import BrokerUrl
from tools.bench_stats import curve, rate, summarize
from tools.v2client import V2Client

log = logging.getLogger("ovms.bench.v3")

BURST = 4  # metrics per burst: soc, voltage, current, and the sequence number
SEQ_FIELD = 9  # S field 10 (chargeduration) holds v.c.time


class _Quiet:
    """The publisher's BrokerHandler: it subscribes to nothing."""

    async def on_messages(self, batch: list[Received]) -> None:
        pass

    def on_connected(self) -> None:
        pass

    def on_disconnected(self) -> None:
        pass


async def _wait_connected(bridge: MqttBridge, timeout: float = 15.0) -> None:
    with trio.fail_after(timeout):
        while not bridge.connected:
            await trio.sleep(0.02)


async def run_phase(*, mqtt: str, prefix: str, owner: str, host: str, port: int,
                    carpass: str, vehicles: list[str], duration: float,
                    warmup: float) -> dict[str, Any]:
    url = BrokerUrl.parse(mqtt)
    bridge = MqttBridge(url, (), client_id=f"ovms-bench-v3-{trio.current_time():.0f}")
    latencies: list[float] = []
    counts = {"bursts": 0, "metrics": 0}
    async with trio.open_nursery() as nursery:
        await nursery.start(bridge.run, _Quiet())
        await _wait_connected(bridge)
        apps = {}
        for vid in vehicles:
            bridge.publish(topics.connected_topic(prefix, owner, vid), b"yes", retain=True)
        for vid in vehicles:
            apps[vid] = await V2Client.connect(host, port, vid, carpass=carpass)
        start = trio.current_time()
        measure_from = start + warmup
        stop_at = start + duration

        async def loop(vid: str) -> None:
            app = apps[vid]
            seq = 0
            while trio.current_time() < stop_at:
                seq += 1
                sent = trio.current_time()
                for name, value in (("v.b.soc", str(50 + seq % 40)),
                                    ("v.c.voltage", "230"), ("v.c.current", str(seq % 32)),
                                    ("v.c.time", str(seq))):
                    bridge.publish(topics.metric_topic(prefix, owner, vid, name),
                                   value.encode(), qos=0, retain=True)
                while True:
                    msg = await app.receive(30.0)
                    if msg.code == "S" and _seq(msg.data) >= seq:
                        break
                now = trio.current_time()
                if sent >= measure_from:
                    latencies.append(now - sent)
                    counts["bursts"] += 1
                    counts["metrics"] += BURST

        async with trio.open_nursery() as loops:
            for vid in vehicles:
                loops.start_soon(loop, vid)
        measured = max(0.0, trio.current_time() - measure_from)
        for vid in vehicles:
            # Offline, and nothing left retained on the broker by the bench.
            for name in ("v.b.soc", "v.c.voltage", "v.c.current", "v.c.time"):
                bridge.publish(topics.metric_topic(prefix, owner, vid, name), b"",
                               qos=0, retain=True)
            bridge.publish(topics.connected_topic(prefix, owner, vid), b"", retain=True)
            await apps[vid].aclose()
        await trio.sleep(0.2)  # let the goodbyes out
        nursery.cancel_scope.cancel()
    return {"modules": len(vehicles), "bursts": counts["bursts"],
            "metrics": counts["metrics"], "seconds": round(measured, 3),
            "metrics_per_s": rate(counts["metrics"], measured),
            "bursts_per_s": rate(counts["bursts"], measured),
            "latency": summarize(latencies), "curve": curve(latencies)}


def _seq(data: str) -> int:
    fields = data.split(",")
    try:
        return int(fields[SEQ_FIELD])
    except (IndexError, ValueError):
        return -1


__all__ = ["run_phase"]
