"""Shared by the listener tests: a relay with all four listeners and a liveness check.

"Healthy" means what an owner would notice: a car that connects now can send a status
and an app that connects now receives it, and the REST API answers.
"""

from __future__ import annotations

import itertools
import ssl

import attrs
import httpx
import trio

from tests.conftest import OWNER, PASSWORD, StartRelay
from tests.test_tls import CertFiles, TLSRelay, start_tls_relay
from tools.v2client import V2Client

LISTENERS = ("v2", "v2-tls", "http", "https")
_serial = itertools.count(1)


@attrs.define
class Listeners:
    """A relay under test with v2, v2 over TLS, HTTP and HTTPS all listening."""

    tls: TLSRelay

    def port(self, listener: str) -> int:
        handle = self.tls.relay.handle
        port = {"v2": handle.v2_port, "v2-tls": handle.v2_tls_port,
                "http": handle.http_port, "https": handle.https_port}[listener]
        assert port is not None
        return port

    def uses_tls(self, listener: str) -> bool:
        return listener in ("v2-tls", "https")

    async def open(self, listener: str) -> trio.abc.Stream:
        """A raw connection to ``listener`` (TLS handshake done where the port wants it)."""
        tcp = await trio.open_tcp_stream("127.0.0.1", self.port(listener))
        if not self.uses_tls(listener):
            return tcp
        stream = trio.SSLStream(tcp, self.tls.context(), server_hostname="127.0.0.1",
                                https_compatible=True)
        try:
            await stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(tcp)
            raise
        return stream

    def http(self, listener: str = "http") -> httpx.AsyncClient:
        scheme = "https" if self.uses_tls(listener) else "http"
        verify: ssl.SSLContext | bool = self.tls.context() if scheme == "https" else False
        return httpx.AsyncClient(base_url=f"{scheme}://127.0.0.1:{self.port(listener)}",
                                 verify=verify, timeout=10.0)


async def start_listeners(start_relay: StartRelay, cert_files: CertFiles,
                          **overrides: object) -> Listeners:
    return Listeners(await start_tls_relay(start_relay, cert_files, **overrides))


async def _status_reaches_app(car: V2Client, app: V2Client) -> None:
    marker = f"80,K,{next(_serial)}"
    await car.send("S", marker)
    with trio.fail_after(10):
        while (await app.receive()).text() != "S" + marker:
            pass


async def assert_healthy(target: Listeners, vehicleid: str = "DEMO") -> None:
    """New car and app on each v2 port relay a status; the REST API answers on both ports."""
    tls = target.tls
    for car_on_tls, app_on_tls in ((False, False), (True, True)):
        car = await (tls.car(vehicleid) if car_on_tls else tls.relay.car(vehicleid))
        app = await (tls.app(vehicleid) if app_on_tls else tls.relay.app(vehicleid))
        try:
            await _status_reaches_app(car, app)
        finally:
            await app.aclose()
            await car.aclose()
    for listener in ("http", "https"):
        async with target.http(listener) as client:
            answer = await client.get("/api/vehicles",
                                      params={"username": OWNER, "password": PASSWORD})
        assert answer.status_code == 200, (listener, answer.status_code)


def _answer_complete(data: bytes) -> bool:
    """An HTTP answer (head and content-length body) has arrived in full."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1.1 "):
        return False
    if head.startswith(b"HTTP/1.1 101"):
        return True
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


async def send_and_drain(stream: trio.abc.Stream, data: bytes, *, limit: float = 2.0) -> bytes:
    """Send ``data``, then read what comes back until the server closes, an HTTP answer
    is complete (a keep-alive connection stays open) or ``limit`` s pass."""
    received = bytearray()
    try:
        await stream.send_all(data)
        with trio.move_on_after(limit):
            while chunk := await stream.receive_some(65536):
                received += chunk
                if _answer_complete(bytes(received)):
                    break
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)
    return bytes(received)
