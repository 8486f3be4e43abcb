"""Support for the API v4 end-to-end tests (no tests here): a callback receiver, tokens.

The receiver is a real HTTP server (``http.server`` in a thread) on 127.0.0.1,
which the relay may call because the tests start it with ``webhook_allow`` set
to the receiver's URL, exactly as an operator would.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import httpx
import pytest
import trio

from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, client

V4 = "/api/v4"


@attrs.frozen
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float  # time.monotonic() on arrival


class Receiver:
    """Records every POST; answers ``status`` (settable)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with receiver._lock:
                    receiver.requests.append(Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic()))
                    status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        with trio.fail_after(timeout):
            while len(self.received()) < count:
                await trio.sleep(0.02)
        return self.received()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.server.shutdown()
        rec.server.server_close()
        thread.join(10)


@pytest.fixture
async def v4relay(start_relay: StartRelay, receiver: Receiver) -> RelayUnderTest:
    relay: RelayUnderTest = await start_relay(webhook_allow=[receiver.url],
                                              trip_end_after=0.3, telemetry_interval=0.0)
    return relay


@pytest.fixture
async def v4api(v4relay: RelayUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with client(v4relay) as c:
        yield c


async def make_token(api: httpx.AsyncClient, permit: str = "v4") -> str:
    response = await api.post("/api/token", params={**CREDS, "permit": permit})
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def drain(relay: RelayUnderTest) -> None:
    """Everything the car sent so far has gone through the v4 engine (and callbacks)."""
    await relay.handle.v4.drain()


def assert_hal(response: httpx.Response, status: int = 200,
               content_type: str = "application/hal+json") -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == content_type
    return response.json()


def assert_error(response: httpx.Response, status: int, contains: str = "") -> str:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == status
    assert contains in body["message"], body["message"]
    message: str = body["message"]
    return message


def assert_single(obj: dict[str, Any], href: str) -> None:
    assert obj["_links"]["self"]["href"] == href
    for key in ("createdAt", "updatedAt"):
        assert obj[key].endswith("Z") and "T" in obj[key]
    assert isinstance(obj["_embedded"], dict)
