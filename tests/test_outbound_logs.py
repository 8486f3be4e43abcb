"""Issue 10 item 10: no secrets in logs for outbound URLs.

Real deliveries (a push webhook and ntfy topic through a running relay, a v4 monitor
callback) to a local HTTP server whose URLs carry a secret in the path and the query,
captured at DEBUG through the filters the CLI installs: the secrets never appear, and
every URL shows as ``scheme://host/#hash``, in our lines and in httpx's and httpcore's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import pytest
import trio

from relay import logsafe
from relay.lograte import RateLimitFilter
from relay.outbound.urlpolicy import UrlPolicy
from tests.conftest import StartRelay
from tests.test_outbound_callbacks import Outcomes, job, sender, until
from tests.test_push_support import FakeService, Reply
from tests.test_push_webhook import FAST, car_says, dispatcher, subscribe, wait_until

SECRETS = ("s3cretPath", "s3cretQuery", "s3cretTopic")


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Everything at DEBUG, through the CLI's filters (taken off again afterwards)."""
    caplog.set_level(logging.DEBUG)
    logsafe.install(caplog.handler, burst=1000)
    yield caplog
    for log_filter in list(caplog.handler.filters):
        if isinstance(log_filter, (logsafe.SafeLineFilter, RateLimitFilter)):
            caplog.handler.removeFilter(log_filter)


def assert_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        for secret in SECRETS:
            assert secret not in text, (record.name, text)


def lines_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(logger)]


def test_redact_url_form() -> None:
    """Issue 10 item 10: scheme, host (and port), a short hash of the rest; stable within
    a run, different for different paths, nothing after the host gives no hash."""
    one = logsafe.redact_url("https://ntfy.sh/s3cretTopic")
    assert re.fullmatch(r"https://ntfy\.sh/#[0-9a-f]{8}", one)
    assert logsafe.redact_url("https://ntfy.sh/s3cretTopic") == one
    assert logsafe.redact_url("https://ntfy.sh/other") != one
    assert logsafe.redact_url("HTTP://user:pw@h.example:8443/x?token=1").startswith(
        "http://h.example:8443/#")
    assert logsafe.redact_url("https://h.example") == "https://h.example/"
    assert logsafe.redact_url("https://h.example/") == "https://h.example/"
    assert logsafe.redact_url("not a url") == "<unparsable URL>"
    assert logsafe.redact_urls("POST https://h/s3cretPath?q=s3cretQuery \"HTTP/1.1 200 OK\"") \
        .endswith(' "HTTP/1.1 200 OK"')


async def test_push_delivery_logs_no_url_secret(
        start_relay: StartRelay, service: FakeService,
        captured: pytest.LogCaptureFixture) -> None:
    """Issue 10 item 10: a webhook with a secret path and query and an ntfy topic URL,
    delivered for real: httpx's request lines show ``scheme://host/#hash``, no secret
    anywhere in the log."""
    relay = await start_relay(webhook_allow=[service.url + "/"], **FAST)
    hook = f"{service.url}/hook/s3cretPath?topic=s3cretQuery"
    topic = f"{service.url}/s3cretTopic"
    await subscribe(relay, f"hook1,webhook,url,DEMO,DEMO,{hook}",
                    f"ntfy1,ntfy,url,DEMO,DEMO,{topic}")
    car = await car_says(relay, "ACharging stopped")
    await service.wait_for(2)
    await wait_until(lambda: dispatcher(relay.handle).stats.delivered == 2)
    await car.aclose()
    assert_no_secret(captured)
    requests = [line for line in lines_of(captured, "httpx") if "HTTP Request" in line]
    assert len(requests) == 2, requests
    host = re.escape(service.url)
    for line in requests:
        assert re.search(rf"POST {host}/#[0-9a-f]{{8}} ", line), line
    assert {logsafe.redact_url(hook), logsafe.redact_url(topic)} == {
        line.split()[3] for line in requests}


async def test_callback_delivery_logs_no_url_secret(
        service: FakeService, captured: pytest.LogCaptureFixture) -> None:
    """Issue 10 item 10: a v4 monitor callback to a URL with a secret path and query,
    delivered for real and once retried: our lines and httpx's name the target only as
    ``scheme://host/#hash``."""
    service.script("/cb/s3cretPath?key2=s3cretQuery&car=DEMO", Reply(500))
    outcomes = Outcomes()
    callbacks = sender(UrlPolicy((service.url + "/",)), outcomes)
    target = f"{service.url}/cb/s3cretPath?key2=s3cretQuery"
    async with trio.open_nursery() as nursery:
        await nursery.start(callbacks.run)
        callbacks.submit(job(target, delay=1))
        await service.wait_for(2)
        await until(callbacks.idle)
        nursery.cancel_scope.cancel()
    assert callbacks.stats.delivered == 1
    assert_no_secret(captured)
    ours = lines_of(captured, "relay.v4.callbacks")
    shown = logsafe.redact_url(target)
    assert re.fullmatch(rf"{re.escape(service.url)}/#[0-9a-f]{{8}}", shown)
    assert any(f"target={shown}: callback attempt 1 failed" in line for line in ours), ours
    assert any(f"target={shown}: callback delivered" in line for line in ours), ours
    assert len([line for line in lines_of(captured, "httpx") if "HTTP Request" in line]) == 2
