"""``ovms-bench`` phase v3 on a small scale: bursts go round and are counted."""

from __future__ import annotations

import trio

from tests.conftest import OWNER, VEHICLES, StartRelay
from tests.mqtt_broker import broker_url, unique_prefix
from tests.v3_module import clear_retained
from tools.bench_v3 import BURST, run_phase


async def test_v3_phase_measures_metrics_and_latency(start_relay: StartRelay) -> None:
    with broker_url() as url:
        prefix = unique_prefix()
        relay = await start_relay(mqtt=url, mqtt_prefix=prefix, mqtt_persistent=False)
        out = await run_phase(mqtt=url, prefix=prefix, owner=OWNER, host="127.0.0.1",
                              port=relay.handle.v2_port, carpass=VEHICLES["DEMO"],
                              vehicles=["DEMO"], duration=1.5, warmup=0.3)
        assert out["bursts"] > 0 and out["metrics"] == BURST * out["bursts"]
        assert out["latency"]["count"] == out["bursts"] and out["metrics_per_s"] > 0
        # The bench leaves nothing retained behind.
        assert await trio.to_thread.run_sync(clear_retained, url, prefix) == 0
