"""Home Assistant's OVMS integration (ovms-hass): a cookie session polled every 300 s.

It logs in once (``GET /api/cookie``), keeps the cookie, and every 300 s reads
the vehicle list and each vehicle's status, charge and location; it logs in
again only when a call is answered 404. Issue 10 item 8: sessions ended after
120 s unused, so from the second poll on every call was 401 and its sensors
went empty. Run on trio's MockClock: the test jumps the clock, it never waits
(the clock is still, autojump off: only the jumps move it, so no timeout of the
server's fires while the sockets are busy).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.conftest import OWNER, PASSWORD, RelayUnderTest, StartRelay
from tests.http_helpers import D_MSG, L_MSG, S_MSG, base_url, client_tls, scripted_car, sync

POLL_INTERVAL = 300.0
COOKIE = "ovmsapisession"


class HomeAssistant:
    """The integration's calls, with its one rule for errors: re-login on 404 only."""

    def __init__(self, relay: RelayUnderTest) -> None:
        # A fresh connection per request: the server closes idle keep-alive connections
        # when the clock jumps, and this test is not about keep-alive.
        self.http = httpx.AsyncClient(base_url=base_url(relay), timeout=10.0,
                                      limits=httpx.Limits(max_keepalive_connections=0),
                                      verify=client_tls())
        self.logins = 0
        self.statuses: list[int] = []

    async def login(self) -> None:
        response = await self.http.get("/api/cookie",
                                       params={"username": OWNER, "password": PASSWORD})
        assert response.status_code == 200, response.text
        assert COOKIE in response.cookies
        self.logins += 1

    async def call(self, path: str) -> Any:
        response = await self.http.get(path)
        if response.status_code == 404:
            await self.login()
            response = await self.http.get(path)
        self.statuses.append(response.status_code)
        return response.json() if response.status_code == 200 else None

    async def poll(self) -> dict[str, Any]:
        """One update: the sensors' values (None where a call failed)."""
        sensors: dict[str, Any] = {}
        vehicles = await self.call("/api/vehicles") or []
        for vehicle in vehicles:
            vid = vehicle["id"]
            status = await self.call(f"/api/status/{vid}") or {}
            charge = await self.call(f"/api/charge/{vid}") or {}
            location = await self.call(f"/api/location/{vid}") or {}
            sensors[vid] = (status.get("soc"), charge.get("chargestate"),
                            location.get("latitude"))
        return sensors


async def settle(relay: RelayUnderTest) -> None:
    """Let the server's tasks react to a clock jump (sweeps, closed connections), and
    finish the database reads they queued: a read runs in a thread, which
    ``wait_all_tasks_blocked`` counts as blocked; a sweep still waiting for one when the
    clock jumps again would start its next round only after that jump."""
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    await relay.handle.store.flush()  # after every read queued before it
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def test_home_assistant_polls_for_an_hour_on_one_login(
    start_relay: StartRelay, mock_clock: trio.testing.MockClock
) -> None:
    """ovms-hass: one login, then a poll every 300 s for an hour, every sensor filled."""
    relay = await start_relay(api_rate_burst=0)  # the rate limiter is not under test
    car = await scripted_car(relay, messages=[("S", S_MSG), ("D", D_MSG), ("L", L_MSG)])
    await car.aclose()
    ha = HomeAssistant(relay)
    async with ha.http:
        await ha.login()
        expected = {"DEMO": ("30", "done", "22.270553"), "TESTCAR": (None, None, None)}
        for _ in range(int(3600 / POLL_INTERVAL)):
            assert await ha.poll() == expected
            mock_clock.jump(POLL_INTERVAL)
            await settle(relay)
        assert await ha.poll() == expected
    assert set(ha.statuses) == {200}
    assert ha.logins == 1


@pytest.mark.parametrize("idle", [3 * 3600.0, 24 * 3600.0 - 1])
async def test_cookie_login_is_sliding(
    start_relay: StartRelay, mock_clock: trio.testing.MockClock, idle: float
) -> None:
    """Issue 10 item 8: a cookie unused for less than api_session_timeout (24 h) works."""
    relay = await start_relay()
    ha = HomeAssistant(relay)
    async with ha.http:
        await ha.login()
        mock_clock.jump(idle)
        await settle(relay)
        assert await ha.call("/api/vehicles") is not None
        mock_clock.jump(idle)  # counted from the last use
        await settle(relay)
        assert await ha.call("/api/vehicles") is not None
        mock_clock.jump(24 * 3600 + 1)
        await settle(relay)
        response = await ha.http.get("/api/vehicles")
        assert response.status_code == 401


async def test_registration_ends_after_idle_while_the_login_lives(
    start_relay: StartRelay, mock_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10 item 8: ``GET /api/vehicle/<id>`` counts as an app (the car goes to its
    fast reporting interval); unused for api_idle_timeout (120 s) it ends and the car
    gets ``Z0``, while the cookie login goes on."""
    caplog.set_level(logging.INFO, logger="relay.http.sessions")
    relay = await start_relay()
    car = await scripted_car(relay)
    ha = HomeAssistant(relay)
    async with ha.http:
        await ha.login()
        connected = await ha.call("/api/vehicle/DEMO")
        assert connected["v_apps_connected"] == 1
        assert await sync(car) == ["Z1"]
        mock_clock.jump(100)
        await settle(relay)
        assert await ha.call("/api/status/DEMO") is not None  # used: the registration lives
        mock_clock.jump(100)
        await settle(relay)
        assert await sync(car) == []
        mock_clock.jump(30)
        await settle(relay)
        assert await sync(car) == ["Z0"]
        vehicles = await ha.call("/api/vehicles")
        assert vehicles[0]["v_apps_connected"] == 0
        assert set(ha.statuses) == {200} and ha.logins == 1
    assert any("vehicle registration(s) ended" in r.getMessage() for r in caplog.records)
