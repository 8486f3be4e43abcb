"""Issue 15 "Watch it": GET /metrics in Prometheus text format, counted where things happen."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from protocol import ClientType
from relay.config import ConfigError
from relay.http.metricsview import allowed, parse_allow
from relay.metrics import Metrics
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, api, client, sync
from tests.settle import pinged
from tests.test_push_support import FakeService, Reply
from tests.test_push_webhook import FAST, car_says, dispatcher, subscribe, wait_until
from tools.v2client import LoginRefused

__all__ = ["api"]  # fixture

ROOT = Path(__file__).resolve().parent.parent

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def scrape(api: Any) -> Samples:
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_counters_move_as_messages_logins_and_requests_flow(
    relay: RelayUnderTest, api: Any
) -> None:
    """Issue 15 "Watch it": a car and an app exchange messages, a bad login, REST calls;
    every counter moves by exactly what happened, gauges show the live connections."""
    car = await relay.car()
    await pinged(car)
    app = await relay.app()
    await app.receive_until("T")
    before = await scrape(api)
    assert value(before, "ovms_connections", kind="car") == 1
    assert value(before, "ovms_connections", kind="app") == 1
    assert value(before, "ovms_connections", kind="batch") == 0

    await car.send("S", "55,K")
    assert (await app.receive_until("S"))[-1].data.startswith("55,K")
    await sync(car)  # A in, a out
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, carpass="wrong")
    assert (await api.get("/api/vehicles", params=CREDS)).status_code == 200
    assert (await api.get("/api/vehicles", params={**CREDS, "password": "nope"})
            ).status_code == 401
    assert (await api.get("/api/status/DEMO", params=CREDS)).status_code == 200
    assert (await api.get("/no/such/thing")).status_code == 404
    await relay.handle.store.flush()
    after = await scrape(api)

    assert moved(before, after, "ovms_messages_total", direction="in", code="S") == 1
    assert moved(before, after, "ovms_messages_total", direction="out", code="S") == 1
    assert moved(before, after, "ovms_messages_total", direction="in", code="A") == 1
    assert moved(before, after, "ovms_messages_total", direction="out", code="a") == 1
    assert moved(before, after, "ovms_logins_total", kind="app", result="refused") == 1
    assert moved(before, after, "ovms_logins_total", kind="app", result="ok") == 0
    assert value(after, "ovms_logins_total", kind="car", result="ok") >= 1
    assert moved(before, after, "ovms_logins_total", kind="rest", result="ok") == 2
    assert moved(before, after, "ovms_logins_total", kind="rest", result="refused") == 1
    # Route templates, never paths (no vehicle id in a label).
    assert moved(before, after, "ovms_http_requests_total",
                 route="/api/vehicles", status="200") == 1
    assert moved(before, after, "ovms_http_requests_total",
                 route="/api/vehicles", status="401") == 1
    assert moved(before, after, "ovms_http_requests_total",
                 route="/api/status/{vehicleid}", status="200") == 1
    assert moved(before, after, "ovms_http_requests_total",
                 route="unmatched", status="404") == 1
    assert moved(before, after, "ovms_http_request_seconds_count",
                 route="/api/status/{vehicleid}") == 1
    assert "DEMO" not in repr(after)
    assert moved(before, after, "ovms_store_batch_seconds_count") >= 1
    assert ("ovms_store_queue_depth", ()) in after
    assert value(after, "process_resident_memory_bytes") > 0

    await app.aclose()
    with trio.fail_after(10):
        while value(await scrape(api), "ovms_connections", kind="app") != 0:
            await trio.sleep(0.01)
    await car.aclose()


async def test_metrics_refused_to_addresses_not_allowed(start_relay: StartRelay) -> None:
    """Issue 15 "Watch it": only addresses in metrics_allow may read /metrics (403 else)."""
    relay = await start_relay(metrics_allow="10.0.0.0/8, 192.0.2.7")
    async with client(relay) as c:
        response = await c.get("/metrics")
        assert response.status_code == 403
        assert "ovms_" not in response.text
    open_relay = await start_relay(metrics_allow="10.0.0.0/8,127.0.0.0/8")
    async with client(open_relay) as c:
        assert (await c.get("/metrics")).status_code == 200


async def test_weird_codes_share_one_label(relay: RelayUnderTest, api: Any) -> None:
    """Issue 15 "Watch it": label values stay bounded whatever codes a client sends."""
    car = await relay.car()
    await pinged(car)
    for code in ("1", "#", "é", "~", "Q"):
        await car.send(code, "x")
    await sync(car)
    samples = await scrape(api)
    codes = {dict(labels)["code"] for name, labels in samples
             if name == "ovms_messages_total"}
    assert codes <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") | {"other"}
    await car.aclose()


def test_message_label_cache_is_bounded() -> None:
    """Issue 15 "Watch it": thousands of distinct codes make at most 53 series per direction
    and no more cached children."""
    metrics = Metrics(process=False)
    for n in range(5000):
        metrics.message_in(chr(0x100 + n))
        metrics.message_out(str(n))
    metrics.message_in("S")
    samples = parse(_text(metrics))
    assert value(samples, "ovms_messages_total", direction="in", code="other") == 5000
    assert value(samples, "ovms_messages_total", direction="out", code="other") == 5000
    assert value(samples, "ovms_messages_total", direction="in", code="S") == 1
    assert len(metrics._in) == 2 and len(metrics._out) == 1


def _text(metrics: Metrics) -> str:
    from prometheus_client import generate_latest
    return generate_latest(metrics.registry).decode()


def test_metrics_allow_addresses_and_networks() -> None:
    """Issue 15 "Watch it": metrics_allow takes addresses and CIDR networks, IPv4-mapped
    IPv6 callers match their IPv4 entry, and a bad entry is a configuration error."""
    networks = parse_allow("127.0.0.1, ::1,10.1.0.0/16")
    assert allowed("127.0.0.1", networks) and allowed("::1", networks)
    assert allowed("10.1.200.3", networks) and allowed("::ffff:127.0.0.1", networks)
    assert not allowed("10.2.0.1", networks) and not allowed("127.0.0.2", networks)
    assert not allowed("not-an-address", networks)
    with pytest.raises(ConfigError, match="metrics_allow"):
        parse_allow("127.0.0.1,localhost")


async def test_dashboard_uses_only_exported_metrics(relay: RelayUnderTest, api: Any) -> None:
    """Issue 15 "Watch it": every metric the Grafana dashboard in contrib/ queries exists."""
    dashboard = json.loads((ROOT / "contrib" / "grafana-ovms-relay.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {re.sub(r"_(bucket|count|sum|total)$", "", name)
            for expr in exprs for name in re.findall(r"\b((?:ovms|process)_\w+)\{", expr)}
    response = await api.get("/metrics")
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert used and used <= families, used - families


async def test_push_outcomes_counted_by_type(start_relay: StartRelay, nursery: trio.Nursery,
                                             ) -> None:
    """Issue 15 "Watch it": each push attempt's outcome is counted under its push type."""
    service = await FakeService().start(nursery)
    relay = await start_relay(webhook_allow=[service.url + "/"], **FAST)
    service.script("/flaky", Reply(503), Reply(200))
    await subscribe(relay, f"hook1,webhook,url,DEMO,DEMO,{service.url}/flaky")
    car = await car_says(relay, "ACharging stopped")
    await wait_until(lambda: dispatcher(relay.handle).stats.delivered == 1)
    async with client(relay) as c:
        samples = await scrape(c)
    assert value(samples, "ovms_push_total", type="webhook", outcome="retry") == 1
    assert value(samples, "ovms_push_total", type="webhook", outcome="delivered") == 1
    await car.aclose()
