"""Issue 9 defect 1: nothing a peer sends may end the process, on any listener."""

from __future__ import annotations

import logging

import pytest
import trio

from relay import tls
from relay.http import server as http_server
from tests.conftest import StartRelay
from tests.hostile.net_health import (
    LISTENERS,
    Listeners,
    assert_healthy,
    send_and_drain,
    start_listeners,
)
from tests.test_tls import CertFiles, cert_files

__all__ = ["cert_files"]  # fixtures, imported for use here

KEY = b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"


def upgrade(*headers: bytes, target: bytes = b"/apiv2") -> bytes:
    """A WebSocket upgrade request with ``headers`` replacing the usual ones of their name."""
    names = {h.split(b":", 1)[0].lower() for h in headers}
    usual = [h for h in (b"Host: relay", b"Upgrade: websocket", b"Connection: Upgrade")
             if h.split(b":", 1)[0].lower() not in names]
    return (b"GET " + target + b" HTTP/1.1\r\n" + b"\r\n".join([*usual, *headers]) + b"\r\n"
            + KEY + b"\r\n")


# The packets of the report: one non-ASCII byte in a header wsproto decodes as ASCII.
NON_ASCII_UPGRADES = (
    upgrade(b"Connection: Upgrade\xff"),
    upgrade(b"Sec-WebSocket-Protocol: ovms\xe9"),
    upgrade(b"Sec-WebSocket-Extensions: permessage-deflate\x80"),
    upgrade(b"Host: r\xc3\xa9lay\xff"),
)


@pytest.fixture
async def listeners(start_relay: StartRelay, cert_files: CertFiles) -> Listeners:
    return await start_listeners(start_relay, cert_files)


@pytest.mark.parametrize("listener", LISTENERS)
async def test_non_ascii_websocket_upgrade_closes_only_that_connection(
    listeners: Listeners, listener: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 1: the upgrade that killed the server is refused with a 400; the
    server goes on relaying between a new car and app, and answering REST calls."""
    caplog.set_level(logging.INFO)
    for packet in NON_ASCII_UPGRADES:
        answer = await send_and_drain(await listeners.open(listener), packet)
        # v2 ports refuse it (400); the REST ports answer an unknown path.
        assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404")), answer[:80]
    await assert_healthy(listeners)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_subprotocol_that_is_no_token_is_not_echoed(listeners: Listeners) -> None:
    """Issue 9 defect 1: an odd (but ASCII) subprotocol is not sent back in our answer."""
    packet = upgrade(b"Sec-WebSocket-Protocol: a b\t\"c\"")
    answer = await send_and_drain(await listeners.open("v2"), packet, limit=0.5)
    assert answer.startswith(b"HTTP/1.1 101")
    assert b"sec-websocket-protocol" not in answer.lower()
    await assert_healthy(listeners)


@pytest.mark.parametrize("listener", ["http", "https"])
async def test_bug_in_one_http_connection_closes_only_it(
    listeners: Listeners, listener: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 1: an exception no handler expected (injected here, as a stand-in
    for a bug a peer can trigger) ends that one connection with one warning."""

    def broken(*_args: object) -> str:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(http_server, "client_address", broken)
    answer = await send_and_drain(await listeners.open(listener),
                                  b"GET /api/vehicles HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer == b""
    monkeypatch.undo()
    await assert_healthy(listeners)
    warnings = [r.getMessage() for r in caplog.records if r.name == "relay.boundary"
                and r.levelno == logging.WARNING]
    assert warnings == [f"{listener} addr=127.0.0.1: connection closed after an internal "
                        "error (RuntimeError)"]


async def test_bug_in_tls_handshake_closes_only_that_connection(
    listeners: Listeners, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 9 defect 1: the v2 TLS port's handshake step has the boundary too."""

    async def broken(*_args: object) -> str:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(tls, "tls_handshake", broken)
    raw = await trio.open_tcp_stream("127.0.0.1", listeners.port("v2-tls"))
    assert await send_and_drain(raw, b"") == b""
    monkeypatch.undo()
    await assert_healthy(listeners)
