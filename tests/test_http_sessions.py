"""Issue 10 item 8: cookie logins live api_session_timeout, vehicle registrations
api_idle_timeout; every 401 is logged with its reason. On trio's MockClock."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from relay.http.sessions import UNKNOWN_SESSION, SessionTable
from relay.hub import Hub
from tests.conftest import OWNER, RelayUnderTest
from tests.http_helpers import CREDS, api, assert_text
from tests.test_http_units import drain, make_car

__all__ = ["api"]  # the fixture


async def test_login_outlives_its_registrations(mock_clock: trio.testing.MockClock) -> None:
    hub = Hub()
    car = make_car(hub)
    drain(car)
    table = SessionTable(hub, idle_timeout=120, session_timeout=3600)
    session = table.create("o", "*", "h")
    table.connect(session, "V")
    assert drain(car) == ["Z1"]
    mock_clock.jump(100)
    assert table.get(session.sid) is session  # used: both renewed
    mock_clock.jump(121)
    assert table.expire() == 0  # the login lives ...
    assert drain(car) == ["Z0"] and session.vehicles == set()  # ... its registration not
    assert table.get(session.sid) is session
    mock_clock.jump(3599)
    assert table.get(session.sid) is session  # sliding
    mock_clock.jump(3601)
    assert table.get(session.sid) is None
    assert table.why_not(session.sid) == "session ended (expired)"
    assert table.why_not("nonsense") == UNKNOWN_SESSION


async def test_registration_of_a_session_used_after_idle_is_dropped_at_once(
    mock_clock: trio.testing.MockClock,
) -> None:
    """Between two sweeps, the first request after the idle time ends the registrations
    first: a registration never outlives api_idle_timeout unused."""
    hub = Hub()
    car = make_car(hub)
    table = SessionTable(hub, idle_timeout=120, session_timeout=3600)
    session = table.create("o", "*", "h")
    table.connect(session, "V")
    drain(car)
    mock_clock.jump(200)
    assert table.get(session.sid) is session
    assert drain(car) == ["Z0"] and hub.app_count("V") == 0


async def test_implicit_sessions_still_end_after_idle(mock_clock: trio.testing.MockClock
                                                      ) -> None:
    hub = Hub()
    table = SessionTable(hub, idle_timeout=120, session_timeout=3600)
    implicit = table.implicit("o", "h", "*", create=True)
    assert implicit is not None
    mock_clock.jump(121)
    assert table.expire() == 1 and len(table) == 0


async def test_logout_is_remembered_for_the_401_line(mock_clock: trio.testing.MockClock
                                                     ) -> None:
    table = SessionTable(Hub(), idle_timeout=120, session_timeout=3600)
    session = table.create("o", "*", "h")
    table.end(session, "logout")
    assert table.why_not(session.sid) == "session ended (logout)"


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage().rsplit(": 401 ", 1)[1] for r in caplog.records
            if ": 401 " in r.getMessage()]


async def test_every_401_is_logged_with_its_reason(
    relay: RelayUnderTest, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.http")
    refused = (401, "Authentication failed")
    assert_text(await api.get("/api/vehicles"), *refused)
    assert_text(await api.get("/api/vehicles", params={"username": OWNER, "password": "x"}),
                *refused)
    assert_text(await api.get("/api/vehicles", headers={"cookie": "ovmsapisession=NOPE"}), *refused)
    assert_text(await api.get("/api/cookie", params=CREDS), 200, "Login ok")
    sid = api.cookies["ovmsapisession"]
    assert_text(await api.delete("/api/cookie"), 200, "Logout ok")
    assert_text(await api.get("/api/vehicles"), *refused)  # the cookie is still sent
    assert reasons(caplog) == [
        "(no credentials)", f"(bad password or token for user {OWNER!r})",
        f"({UNKNOWN_SESSION})", "(session ended (logout))"]
    assert not any(sid in r.getMessage() or "NOPE" in r.getMessage() for r in caplog.records
                   if ": 401 " in r.getMessage())
