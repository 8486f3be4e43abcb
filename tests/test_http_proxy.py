"""The REST API behind a reverse proxy: X-Forwarded-For, believed only from trusted proxies."""

from __future__ import annotations

import pytest

from relay.http.proxy import client_address, parse_trusted
from tests.conftest import StartRelay
from tests.http_helpers import client

TRUSTED = parse_trusted("127.0.0.1, 10.0.0.1")


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # rightmost is ours
    ("127.0.0.1", "203.0.113.7, 10.0.0.1", "203.0.113.7"),  # through two proxies
    ("127.0.0.1", "10.0.0.1", "10.0.0.1"),  # only proxies: the last one
    ("127.0.0.1", "not-an-address", "127.0.0.1"),
    ("127.0.0.1", "forged, 203.0.113.7", "203.0.113.7"),
    ("192.0.2.9", "203.0.113.7", "192.0.2.9"),  # not a trusted proxy: header ignored
    ("127.0.0.1", None, "127.0.0.1"),
])
def test_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    headers = {} if forwarded is None else {b"x-forwarded-for": forwarded.encode()}
    assert client_address(peer, headers, TRUSTED) == expected


async def test_rate_limit_per_forwarded_client(start_relay: StartRelay) -> None:
    relay = await start_relay(api_rate_burst=2, api_trusted_proxies="127.0.0.1")
    async with client(relay) as api:
        first = {"X-Forwarded-For": "203.0.113.7"}
        assert (await api.get("/", headers=first)).status_code != 429
        assert (await api.get("/", headers=first)).status_code != 429
        assert (await api.get("/", headers=first)).status_code == 429
        # another client behind the same proxy has its own quota
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert (await api.get("/", headers=other)).status_code != 429


async def test_forwarded_header_ignored_without_trusted_proxies(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(api_rate_burst=2)
    async with client(relay) as api:
        for n in range(3):
            forged = {"X-Forwarded-For": f"203.0.113.{n}"}
            status = (await api.get("/", headers=forged)).status_code
        assert status == 429  # all three counted against 127.0.0.1
