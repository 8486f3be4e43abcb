"""HTTPS: the REST API on the TLS port (6869), same certificate as the v2 TLS port."""

from __future__ import annotations

import httpx
import trio

from tests.conftest import OWNER, PASSWORD, StartRelay
from tests.test_tls import (
    CertFiles,
    TLSRelay,
    cert_files,
    client_hello,
    start_tls_relay,
)

__all__ = ["cert_files"]  # fixtures, imported for use here


def https(tls_relay: TLSRelay) -> httpx.AsyncClient:
    port = tls_relay.relay.handle.https_port
    assert port is not None
    return httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=tls_relay.context(),
                             timeout=10.0)


async def test_rest_call_over_https(start_relay: StartRelay, cert_files: CertFiles) -> None:
    tls_relay = await start_tls_relay(start_relay, cert_files)
    async with https(tls_relay) as client:
        answer = await client.get("/api/vehicles",
                                  params={"username": OWNER, "password": PASSWORD})
    assert answer.status_code == 200
    assert sorted(v["id"] for v in answer.json()) == ["DEMO", "TESTCAR"]
    assert answer.extensions["http_version"] == b"HTTP/1.1"


async def test_broken_https_clients_do_not_disturb_others(
    start_relay: StartRelay, cert_files: CertFiles
) -> None:
    tls_relay = await start_tls_relay(start_relay, cert_files)
    port = tls_relay.relay.handle.https_port
    assert port is not None
    hello = client_hello()
    for data in (b"GET /api/vehicles HTTP/1.1\r\nHost: x\r\n\r\n", hello[:20], hello):
        raw = await trio.open_tcp_stream("127.0.0.1", port)
        await raw.send_all(data)
        await raw.aclose()
    async with https(tls_relay) as client:
        answer = await client.get("/api/vehicles",
                                  params={"username": OWNER, "password": PASSWORD})
    assert answer.status_code == 200


async def test_no_https_port_without_tls(start_relay: StartRelay) -> None:
    relay = await start_relay()
    assert relay.handle.https_port is None and relay.handle.v2_tls_port is None
