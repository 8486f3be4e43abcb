"""Helpers for the REST API tests: an httpx client on the relay's HTTP port, a scripted car."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterable
from typing import Any

import certifi
import httpx
import pytest

from tests.conftest import OWNER, PASSWORD, RelayUnderTest
from tools.v2client import V2Client

CREDS = {"username": OWNER, "password": PASSWORD}
OTHER_CREDS = {"username": "other", "password": "otherpass"}

# The reference car messages (the public server's demo car and TESTCAR).
S_MSG = (
    "30,K,0,0,done,standard,105,85,13,0,0,0,7,13,0,0,0,1,160,0,0,80,80,0,31,60,0,0,0,105,,"
    "7.2,12.0,80,7.2,95,1,0,0,0,0,0"
)
D_MSG = "160,8,4,35,45,30,0,0,55,0,25,1,1,1,12.0,0,0,25,13.5,30"
L_MSG = "22.270553,114.186994,90,0,1,1,55,0,0,0,0,0,0,100,AS,12,2,55,100"
W_MSG = "29,27,40,31,29,27,40,31,1"
Y_MSG = "4,FL,FR,RL,RR,4,200.0,200.0,276.0,276.0,4,27,27,31,31,1,4,100,100,100,100,1,4,1,1,1,1"
F_MSG = "1.5.0,VIN123456789012345,5,1,TRDM,DNET,25000,86400,DEMO-HW,Wifi-online"
TESTCAR_S = "80,K,220,70,charging,standard,280,270"
TESTCAR_L = "22.274165,114.185715"


def base_url(relay: RelayUnderTest) -> str:
    assert relay.handle.http_port is not None
    return f"http://127.0.0.1:{relay.handle.http_port}"


@functools.cache
def client_tls() -> ssl.SSLContext:
    """httpx's default certificate check, made once: each client would load the CA
    bundle again (~50 ms), and the REST tests make hundreds of clients."""
    return ssl.create_default_context(cafile=certifi.where())


def client(relay: RelayUnderTest, **kwargs: Any) -> httpx.AsyncClient:
    kwargs.setdefault("verify", client_tls())
    return httpx.AsyncClient(base_url=base_url(relay), timeout=10.0, **kwargs)


@pytest.fixture
async def api(relay: RelayUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with client(relay) as c:
        yield c


async def sync(car: V2Client) -> list[str]:
    """Ping the relay and wait for the ack: everything the car sent before is processed.

    Returns the text of whatever else arrived meanwhile (``Z`` counts, commands).
    """
    await car.send("A")
    seen = [m.text() for m in await car.receive_until("a")]
    return seen[:-1]


async def scripted_car(relay: RelayUnderTest, vehicleid: str = "DEMO",
                       messages: Iterable[tuple[str, str]] = ()) -> V2Client:
    """A logged-in car that has sent ``messages`` (all stored once this returns)."""
    car = await relay.car(vehicleid)
    assert (await car.receive()).code == "Z"
    for code, data in messages:
        await car.send(code, data)
    await sync(car)
    return car


def assert_json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"] == "application/json"
    assert response.text.endswith("\n")
    return response.json()


def assert_text(response: httpx.Response, status: int, text: str) -> None:
    assert (response.status_code, response.text) == (status, text + "\n")
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["content-type"] == "text/plain"


def without_ages(data: dict[str, Any]) -> dict[str, Any]:
    """The answer minus ``m_msgtime_*``/``m_msgage_*`` (checked separately: they vary)."""
    return {k: v for k, v in data.items() if not k.startswith(("m_msgtime_", "m_msgage_"))}
