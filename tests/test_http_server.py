"""The HTTP layer itself: keep-alive, framing errors, bounds, CORS, rate limits, HTTPS, mqapi."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx
import trio

from relay.http import serve_http
from relay.tls import client_context, server_context
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import (
    CREDS,
    api,
    assert_json,
    assert_text,
    base_url,
    client,
)
from tools import admin

__all__ = ["api"]  # fixtures


async def raw_exchange(relay: RelayUnderTest, data: bytes, *, until_closed: bool = False,
                       answers: int = 0) -> bytes:
    """Send raw bytes on one connection and collect what comes back: until the server
    closes, or until ``answers`` responses arrived and no more follow for a moment."""
    assert relay.handle.http_port is not None
    stream = await trio.open_tcp_stream("127.0.0.1", relay.handle.http_port)
    out = b""
    async with stream:
        await stream.send_all(data)
        # Wait for what is expected however slow the machine (a password check under
        # load), then briefly for anything unexpected after it.
        with trio.move_on_after(10 if (until_closed or answers) else 0.5):
            while out.count(b"HTTP/1.1 ") < answers or until_closed:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return out
                out += chunk
        with trio.move_on_after(0.2):
            while chunk := await stream.receive_some(65536):
                out += chunk
    return out


async def test_keep_alive_and_pipelining_on_one_connection(relay: RelayUnderTest) -> None:
    request = (b"GET /api/vehicles?username=demo&password=demopass HTTP/1.1\r\n"
               b"Host: x\r\n\r\n")
    reply = await raw_exchange(relay, request * 3, answers=3)
    assert reply.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert b"connection: close" not in reply.lower()
    assert reply.lower().count(b"access-control-allow-origin: *\r\n") == 3


async def test_http_1_0_is_answered_and_closed(relay: RelayUnderTest) -> None:
    reply = await raw_exchange(relay, b"GET / HTTP/1.0\r\n\r\n", until_closed=True)
    assert reply.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert reply.endswith(b"\r\n\r\nnot found\n")


async def test_garbage_is_400_and_closes(relay: RelayUnderTest) -> None:
    reply = await raw_exchange(relay, b"HELLO THERE\r\n\r\n", until_closed=True)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert reply.endswith(b"Bad request\n")


async def test_oversized_head_and_body_are_refused(relay: RelayUnderTest) -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    assert (await raw_exchange(relay, head, until_closed=True)).startswith(b"HTTP/1.1 431 ")
    body = b"x" * 70000
    request = (b"POST /api/token HTTP/1.1\r\nHost: x\r\nContent-Length: "
               + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert (await raw_exchange(relay, request, until_closed=True)).startswith(b"HTTP/1.1 413 ")


async def test_idle_connection_is_closed(start_relay: StartRelay) -> None:
    relay = await start_relay(api_keepalive_timeout=0.2, api_request_timeout=0.2)
    assert relay.handle.http_port is not None
    stream = await trio.open_tcp_stream("127.0.0.1", relay.handle.http_port)
    async with stream:
        await stream.send_all(b"GET /api/vehicles HTTP/1.1\r\n")  # never finished
        with trio.fail_after(5):
            while await stream.receive_some(1000):
                pass


async def test_cors_preflight(relay: RelayUnderTest, api: httpx.AsyncClient) -> None:
    response = await api.options("/api/lock/DEMO", headers={
        "Origin": "https://example.org", "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type"


async def test_rate_limit_refuses_the_121st_burst_request(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    for _ in range(120):
        assert (await api.get("/")).status_code == 404
    refused = await api.get("/api/vehicles", params=CREDS)
    assert_text(refused, 429, "Too many requests")
    # Per address: another client address still gets through.
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=base_url(relay), transport=transport) as other:
        assert_json(await other.get("/api/vehicles", params=CREDS))
    assert (await api.get("/")).status_code == 429


async def test_rate_limit_exempt_address(start_relay: StartRelay) -> None:
    relay = await start_relay(api_rate_burst=2, api_rate_exempt="127.0.0.1")
    async with client(relay) as http:
        for _ in range(5):
            assert (await http.get("/")).status_code == 404


async def test_https_with_the_same_api(relay: RelayUnderTest, tmp_path: Path,
                                       nursery: trio.Nursery) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    assert admin.run(["selfsigned", "--cert", str(cert), "--key", str(key),
                      "--host", "127.0.0.1"]) == 0
    context = server_context(str(cert), str(key))
    listeners = await nursery.start(
        partial(serve_http, relay.handle.services, "127.0.0.1", 0, ssl_context=context))
    port = listeners[0].socket.getsockname()[1]
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}",
                                 verify=client_context(str(cert))) as https:
        assert_text(await https.get("/api/cookie", params=CREDS), 200, "Login ok")
        cookie = https.cookies["ovmsapisession"]
    # One API behind both listeners: the session made over HTTPS works over HTTP.
    async with client(relay, cookies={"ovmsapisession": cookie}) as http:
        assert len(assert_json(await http.get("/api/vehicles"))) == 2


async def test_mqapi(start_relay: StartRelay) -> None:
    relay = await start_relay(mqtt_superuser="broker")
    async with client(relay) as http:
        ok = await http.post("/mqapi/auth", data={"username": "demo", "password": "demopass"})
        assert (ok.status_code, ok.text) == (200, "")
        assert ok.headers["access-control-allow-origin"] == "*"
        bad = await http.post("/mqapi/auth", data={"username": "demo", "password": "nope"})
        assert bad.status_code == 403
        v3 = assert_json(await http.post("/api/token", params={**CREDS, "permit": "v3"}),
                         201)["token"]
        auth_only = assert_json(await http.post("/api/token", params=CREDS), 201)["token"]
        assert (await http.post("/mqapi/auth", data={"username": "demo", "password": v3})
                ).status_code == 200
        assert (await http.post("/mqapi/auth", data={"username": "demo",
                                                     "password": auth_only})).status_code == 403
        acl = {"username": "demo", "topic": "ovms/demo/DEMO/metric/v/b/soc", "acc": "2"}
        assert (await http.post("/mqapi/acl", data=acl)).status_code == 200
        assert (await http.post("/mqapi/acl", data={**acl, "topic": "ovms/other/X"})
                ).status_code == 403
        assert (await http.post("/mqapi/acl", data={**acl, "username": "broker",
                                                     "topic": "ovms/other/X"})).status_code == 200
        assert (await http.post("/mqapi/superuser", data={"username": "broker"})
                ).status_code == 200
        assert (await http.post("/mqapi/superuser", data={"username": "demo"})
                ).status_code == 403
        assert_text(await http.post("/mqapi/superuser", data={}), 404, "Username required")
        assert_text(await http.get("/mqapi/auth"), 405, "Method not allowed")
