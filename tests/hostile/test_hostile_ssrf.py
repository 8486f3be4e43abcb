"""Issue 9 defect 8: the webhook allow-list could be escaped with ``../``.

With the prefix ``http://127.0.0.1:P/hooks/``, ``http://127.0.0.1:P/hooks/../admin``
passed the prefix check as a string and httpx then resolved the dot segments, so
the POST landed on ``/admin``. A real local HTTP server records which path is hit.
"""

from __future__ import annotations

import pytest
import trio

from relay.outbound.urlpolicy import UrlPolicy, UrlRefused, normalise
from relay.store import PushSubscription
from tests.conftest import OWNER, RelayUnderTest, StartRelay
from tests.http_helpers import client
from tests.test_push_support import FakeService
from tests.test_push_webhook import FAST, car_says, subscribe
from tests.test_v4_http_monitors import monitor_body
from tests.test_v4_http_support import V4, Receiver, assert_error, bearer, make_token
from tests.test_v4_http_support import receiver as receiver  # fixture

ESCAPES = (
    "hooks/../admin",
    "hooks/./../admin",
    "hooks/sub/../../admin",
    "hooks/%2e%2e/admin",
    "hooks/%2E%2e/admin",
    "hooks/.%2e/admin",
    "hooks/%252e%252e/admin",
    "hooks/..%2fadmin",
    "hooks/..%5cadmin",
    "hooks/..;/admin",
    "hooks\\..\\admin",
    "hooks/%2fadmin",
)


@pytest.fixture
async def service(nursery: trio.Nursery) -> FakeService:
    return await FakeService().start(nursery)


@pytest.mark.parametrize("escape", ESCAPES)
def test_escapes_are_not_under_the_prefix(escape: str) -> None:
    """Issue 9 defect 8: no spelling of ``..`` gets out of the operator's prefix."""
    policy = UrlPolicy(("http://127.0.0.1:8080/hooks/",))
    assert policy.operator_allowed("http://127.0.0.1:8080/hooks/car1")
    assert not policy.operator_allowed(f"http://127.0.0.1:8080/{escape}")


@pytest.mark.parametrize(("url", "expected"), [
    ("HTTP://Example.ORG:80/a/./b/../c?q=1#frag", "http://example.org/a/c?q=1"),
    ("https://example.org:443", "https://example.org/"),
    ("https://example.org:8443/x/..", "https://example.org:8443/"),
    ("http://[::1]:80/a/", "http://[::1]/a/"),
])
def test_normalised_form(url: str, expected: str) -> None:
    """Issue 9 defect 8: scheme and host case, default port and dot segments."""
    assert normalise(url) == expected


def test_prefix_without_slash_matches_whole_segments() -> None:
    """Issue 9 defect 8: ``/hooks`` allows ``/hooks/x``, not ``/hooks-admin``."""
    policy = UrlPolicy(("http://127.0.0.1:8080/hooks",))
    assert policy.operator_allowed("http://127.0.0.1:8080/hooks")
    assert policy.operator_allowed("http://127.0.0.1:8080/hooks/x")
    assert not policy.operator_allowed("http://127.0.0.1:8080/hooks-admin")


async def test_checked_url_is_the_fetched_url() -> None:
    """Issue 9 defect 8: the target carries the normalised URL, not the one given."""
    target = await UrlPolicy(("http://127.0.0.1:8080/hooks/",)).check(
        "http://127.0.0.1:8080/hooks/a/./b/../c")
    assert target.url == "http://127.0.0.1:8080/hooks/a/c"
    with pytest.raises(UrlRefused):
        await UrlPolicy(("http://127.0.0.1:8080/hooks/",)).check(
            "http://127.0.0.1:8080/hooks/../admin")


async def test_push_webhook_cannot_reach_outside_the_prefix(
    start_relay: StartRelay, service: FakeService
) -> None:
    """Issue 9 defect 8: push subscriptions escaping the prefix are refused; one stored by
    an older version is refused at delivery; nothing ever reaches ``/admin``."""
    relay: RelayUnderTest = await start_relay(webhook_allow=[service.url + "/hooks/"], **FAST)
    lines = [f"bad{i},webhook,url,DEMO,DEMO,{service.url}/{e}" for i, e in enumerate(ESCAPES)]
    await subscribe(relay, *lines, f"good,webhook,url,DEMO,DEMO,{service.url}/hooks/ok")
    store = relay.handle.store
    assert [s.appid for s in await store.push_subscriptions("DEMO")] == ["good"]
    # As if stored before the fix: checked again (and refused) before every delivery.
    await store.add_push_subscription(PushSubscription(
        "DEMO", "old", OWNER, "webhook", "url", f"{service.url}/hooks/../admin"))
    car = await car_says(relay, "ADoor open")
    await service.wait_for(1, "/hooks/ok")
    push = relay.handle.services.router.push
    assert push is not None
    with trio.fail_after(15):
        while push.stats.failed < 1:
            await trio.sleep(0.02)
    assert [r.path for r in service.requests] == ["/hooks/ok"]
    await car.aclose()


async def test_v4_callback_cannot_reach_outside_the_prefix(
    start_relay: StartRelay, receiver: Receiver
) -> None:
    """Issue 9 defect 8: a v4 monitor whose callback escapes the prefix is a 400."""
    relay: RelayUnderTest = await start_relay(webhook_allow=[receiver.url + "hooks/"])
    async with client(relay) as api:
        headers = bearer(await make_token(api))
        for escape in ESCAPES:
            response = await api.post(f"{V4}/user/vehicles/DEMO/monitors", headers=headers,
                                      json=monitor_body(receiver.url + escape))
            assert_error(response, 400, "not an allowed callback target")
        ok = await api.post(f"{V4}/user/vehicles/DEMO/monitors", headers=headers,
                            json=monitor_body(receiver.url + "hooks/"))
        assert ok.status_code == 201, ok.text
    assert receiver.received() == []
