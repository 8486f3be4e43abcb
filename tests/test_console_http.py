"""The web console over plain HTTP (no browser): login, pages, CSRF, escaping, live events.

Issue 14. The browser tests (test_console_browser.py) show the same pages working
in Chromium; these check what a browser does not show: headers, refusals, and
that hostile text from cars and users arrives escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from relay.http.views import COOKIE_NAME
from tests.conftest import OWNER, PASSWORD, RelayUnderTest, StartRelay
from tests.http_helpers import (
    D_MSG,
    F_MSG,
    L_MSG,
    S_MSG,
    client,
    scripted_car,
    sync,
)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
_CSRF_RE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@pytest.fixture
async def ui(relay: RelayUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with client(relay) as c:
        yield c


async def login(ui: httpx.AsyncClient, username: str = OWNER, password: str = PASSWORD
                ) -> httpx.Response:
    return await ui.post("/ui/", data={"username": username, "password": password})


def csrf(page: httpx.Response) -> str:
    match = _CSRF_RE.search(page.text)
    assert match is not None, page.text[:500]
    return match.group(1)


async def test_login_form_and_session_cookie(ui: httpx.AsyncClient) -> None:
    page = await ui.get("/ui/")
    assert page.status_code == 200
    assert 'name="username"' in page.text and 'name="password"' in page.text
    assert "content-security-policy" in page.headers
    answer = await login(ui)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/vehicles"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP; test_console_tls covers HTTPS
    # The same session works on the REST API.
    listed = await ui.get("/api/vehicles")
    assert listed.status_code == 200
    assert {v["id"] for v in listed.json()} == {"DEMO", "TESTCAR"}


async def test_wrong_password_is_refused_next_to_the_field(ui: httpx.AsyncClient) -> None:
    answer = await login(ui, OWNER, "wrong")
    assert answer.status_code == 401
    assert 'id="password-error"' in answer.text
    assert "Wrong user name or password" in answer.text
    assert COOKIE_NAME not in answer.headers.get("set-cookie", "")
    empty = await ui.post("/ui/", data={"username": "", "password": ""})
    assert empty.status_code == 400
    assert 'id="username-error"' in empty.text and 'id="password-error"' in empty.text


async def test_pages_need_a_login(ui: httpx.AsyncClient) -> None:
    page = await ui.get("/ui/vehicles")
    assert page.status_code == 303 and page.headers["location"] == "/ui/"
    events = await ui.get("/ui/events?v=DEMO")
    assert events.status_code == 401
    post = await ui.post("/ui/tokens", data={"application": "x"})
    assert post.status_code == 401


async def test_vehicle_list_and_page_show_the_car(relay: RelayUnderTest,
                                                  ui: httpx.AsyncClient) -> None:
    car = await scripted_car(relay, "DEMO", [("S", S_MSG), ("D", D_MSG), ("L", L_MSG),
                                             ("F", F_MSG)])
    await login(ui)
    listed = await ui.get("/ui/vehicles")
    assert listed.status_code == 200
    row = listed.text[listed.text.index('data-vehicle="DEMO"'):]
    assert "online" in row[:600] and "30%" in row[:600]
    page = await ui.get("/ui/vehicles/DEMO")
    assert page.status_code == 200
    assert 'data-lat="22.270553"' in page.text
    assert "VIN123456789012345" in page.text
    await car.aclose()


async def test_someone_elses_vehicle_is_not_shown(ui: httpx.AsyncClient) -> None:
    await login(ui)
    page = await ui.get("/ui/vehicles/OTHERCAR")
    assert page.status_code == 404
    series = await ui.get("/ui/vehicles/OTHERCAR/series")
    assert series.status_code == 404


async def test_state_changes_need_the_csrf_token(ui: httpx.AsyncClient) -> None:
    await login(ui)
    tokens = await ui.get("/ui/tokens")
    form = {"application": "phone", "purpose": "p", "permit_auth": "1"}
    missing = await ui.post("/ui/tokens", data=form)
    assert missing.status_code == 403
    forged = await ui.post("/ui/tokens", data={**form, "csrf": "0" * 64})
    assert forged.status_code == 403
    cross = await ui.post("/ui/tokens", data={**form, "csrf": csrf(tokens)},
                          headers={"origin": "https://evil.example"})
    assert cross.status_code == 403
    assert (await ui.get("/api/token")).json() == []
    made = await ui.post("/ui/tokens", data={**form, "csrf": csrf(tokens)})
    assert made.status_code == 201
    assert len((await ui.get("/api/token")).json()) == 1


async def test_token_create_shows_it_once_and_revoke(ui: httpx.AsyncClient) -> None:
    await login(ui)
    token_page = await ui.get("/ui/tokens")
    made = await ui.post("/ui/tokens", data={
        "application": "car-app", "purpose": "dashboard", "permit_v4": "1",
        "csrf": csrf(token_page)})
    assert made.status_code == 201
    value = re.search(r'id="new-token" readonly value="([0-9a-f]{64})"', made.text)
    assert value is not None
    listed = (await ui.get("/api/token")).json()
    assert listed[0]["permit"] == "v4" and listed[0]["application"] == "car-app"
    again = await ui.get("/ui/tokens")
    assert value.group(1) not in again.text  # shown once
    revoked = await ui.post("/ui/tokens/delete", data={"token": listed[0]["token"],
                                                       "csrf": csrf(again)})
    assert revoked.status_code == 303
    assert (await ui.get("/api/token")).json() == []


async def test_token_form_rejects_bad_values_next_to_the_field(ui: httpx.AsyncClient) -> None:
    await login(ui)
    token_page = await ui.get("/ui/tokens")
    none_chosen = await ui.post("/ui/tokens", data={"application": "a",
                                                    "csrf": csrf(token_page)})
    assert none_chosen.status_code == 400
    assert 'id="permit-error"' in none_chosen.text
    control = await ui.post("/ui/tokens", data={"application": "a\x01b", "permit_auth": "1",
                                                "csrf": csrf(token_page)})
    assert control.status_code == 400
    assert 'id="application-error"' in control.text


async def test_hostile_text_is_escaped(relay: RelayUnderTest, ui: httpx.AsyncClient) -> None:
    """Car-supplied names (F: vehicle type, VIN), alert texts (P) and token labels."""
    car = await scripted_car(relay, "DEMO", [
        ("F", f"1.5.0,{XSS},5,1,{XSS},DNET"), ("S", S_MSG), ("P", f"A{XSS}")])
    await sync(car)
    await login(ui)
    token_page = await ui.get("/ui/tokens")
    await ui.post("/ui/tokens", data={"application": XSS, "purpose": XSS, "permit_auth": "1",
                                      "csrf": csrf(token_page)})
    with trio.fail_after(5):
        while True:  # the alert is stored by the push intake task
            page = await ui.get("/ui/vehicles/DEMO")
            if "&lt;script&gt;alert(&#34;x&#34;)" in page.text and "alert" in page.text:
                if page.text.count("&lt;script&gt;") >= 3:
                    break
            await trio.sleep(0.05)
    for url in ("/ui/vehicles/DEMO", "/ui/vehicles", "/ui/tokens"):
        text = (await ui.get(url)).text
        assert "<script>alert" not in text and "<img src=x" not in text, url
        assert "&lt;script&gt;" in text, url
    await car.aclose()


async def test_control_answers_like_the_rest_api(relay: RelayUnderTest,
                                                 ui: httpx.AsyncClient) -> None:
    await login(ui)
    page = await ui.get("/ui/vehicles/DEMO")
    token = csrf(page)
    # No car: 409, shown as a notice on the next page.
    answer = await ui.post("/ui/vehicles/DEMO/control",
                           data={"action": "lock", "pin": "1234", "csrf": token})
    assert answer.status_code == 303
    shown = await ui.get("/ui/vehicles/DEMO")
    assert "Lock: Vehicle not connected (409)" in shown.text
    # A missing PIN is an error next to the field.
    no_pin = await ui.post("/ui/vehicles/DEMO/control", data={"action": "lock",
                                                              "csrf": token})
    assert no_pin.status_code == 400 and 'id="pin-error"' in no_pin.text
    car = await scripted_car(relay, "DEMO", [("S", S_MSG)])

    async def answer_car() -> None:
        msg = await car.receive_until("C")
        assert msg[-1].data == "20,1234"
        await car.send("c", "20,0")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_car)
        done = await ui.post("/ui/vehicles/DEMO/control",
                             data={"action": "lock", "pin": "1234", "csrf": token})
    assert done.status_code == 303
    assert "Lock: done (200)" in (await ui.get("/ui/vehicles/DEMO")).text
    bad = await ui.post("/ui/vehicles/DEMO/control",
                        data={"action": "charge_current", "current": "abc", "csrf": token})
    assert bad.status_code == 400 and 'id="current-error"' in bad.text
    await car.aclose()


async def test_live_events_follow_the_car(relay: RelayUnderTest, ui: httpx.AsyncClient) -> None:
    car = await scripted_car(relay, "DEMO", [("S", S_MSG)])
    await login(ui)
    async with ui.stream("GET", "/ui/events?v=DEMO&v=OTHERCAR") as events:
        assert events.headers["content-type"] == "text/event-stream"
        lines = events.aiter_lines()

        async def next_vehicle() -> dict[str, object]:
            async for line in lines:
                if line.startswith("data: "):
                    data: dict[str, object] = json.loads(line[6:])
                    return data
            raise AssertionError("stream ended")

        with trio.fail_after(5):
            first = await next_vehicle()
            assert first["id"] == "DEMO" and first["soc"] == "30" and first["online"]
            await car.send("S", S_MSG.replace("30,", "31,", 1))
            second = await next_vehicle()
            assert second["id"] == "DEMO" and second["soc"] == "31"
            await car.aclose()
            third = await next_vehicle()
            assert third["online"] is False


async def test_static_files_are_served_from_the_package(ui: httpx.AsyncClient) -> None:
    js = await ui.get("/ui/static/vendor/uplot/uPlot.iife.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "max-age=3600" in js.headers["cache-control"]
    assert (await ui.get("/ui/static/vendor/leaflet/LICENSE")).status_code == 200
    assert (await ui.get("/ui/static/../web.py")).status_code == 404
    assert (await ui.get("/ui/static/nothing.js")).status_code == 404


async def test_operator_pages_need_the_admin_permit(relay: RelayUnderTest,
                                                    ui: httpx.AsyncClient) -> None:
    await login(ui)  # demo has "*", which includes admin
    admin = await ui.get("/ui/admin")
    assert admin.status_code == 200 and "Connected cars" in admin.text
    made = await ui.post("/ui/admin/owners", data={
        "owner_name": "driver", "owner_password": "drive123", "owner_permissions": "auth,v4",
        "csrf": csrf(admin)})
    assert made.status_code == 303
    async with client(relay) as other:
        await login(other, "driver", "drive123")
        refused = await other.get("/ui/admin")
        assert refused.status_code == 403
        assert "Operators" not in (await other.get("/ui/vehicles")).text
        post = await other.post("/ui/admin/owners", data={
            "owner_name": "x", "owner_password": "y", "csrf": csrf(refused)})
        assert post.status_code == 403


async def test_operator_manages_vehicles_and_sees_refused_logins(
        relay: RelayUnderTest, ui: httpx.AsyncClient) -> None:
    await login(ui)
    admin = await ui.get("/ui/admin")
    token = csrf(admin)
    bad = await ui.post("/ui/admin/vehicles", data={
        "vehicle_id": "BAD ID", "vehicle_owner": OWNER, "vehicle_carpass": "pw",
        "csrf": token})
    assert bad.status_code == 400 and 'id="vehicle_id-error"' in bad.text
    made = await ui.post("/ui/admin/vehicles", data={
        "vehicle_id": "newcar", "vehicle_owner": OWNER, "vehicle_carpass": "pw1",
        "csrf": token})
    assert made.status_code == 303
    car = await relay.car("NEWCAR", carpass="pw1")
    reset = await ui.post("/ui/admin/vehicles/carpass", data={"vehicleid": "NEWCAR",
                                                              "csrf": token})
    assert reset.status_code == 200
    carpass = re.search(r'id="new-carpass" readonly value="([^"]+)"', reset.text)
    assert carpass is not None
    assert await car.closed_by_server()  # the old password's connection is gone
    with pytest.raises(Exception):  # noqa: B017 - the refusal is a closed connection
        await relay.car("NEWCAR", carpass="pw1")
    again = await relay.car("NEWCAR", carpass=carpass.group(1))
    log_page = await ui.get("/ui/admin/vehicles/NEWCAR")
    assert log_page.status_code == 200
    assert "refused:</strong> digest does not match the carpass" in log_page.text
    assert "accepted" in log_page.text
    await again.aclose()
    deleted = await ui.post("/ui/admin/vehicles/delete", data={"vehicleid": "NEWCAR",
                                                               "csrf": token})
    assert deleted.status_code == 303
    assert "NEWCAR" not in (await ui.get("/api/vehicles")).text


def test_vendored_libraries_match_the_vendor_script() -> None:
    """What tools/vendor_static.py would copy is committed, with version and licence."""
    from tools.vendor_static import LIBRARIES, VENDOR

    for library in LIBRARIES:
        folder = VENDOR / library.name
        assert (folder / "VERSION").read_text().startswith(
            f"{library.name} {library.version}\n")
        assert (folder / "LICENSE").stat().st_size > 0
        for name in library.files:
            assert (folder / name.removeprefix("dist/")).is_file(), name


async def test_push_subscriptions_list_and_deactivate(relay: RelayUnderTest,
                                                      ui: httpx.AsyncClient) -> None:
    from relay.store import PushSubscription

    store = relay.handle.store
    secret_url = "https://push.example/secret-device-key"
    await store.add_push_subscription(PushSubscription(
        "DEMO", "phone1", OWNER, "webhook", "simple", secret_url))
    await store.add_push_subscription(PushSubscription(
        "OTHERCAR", "theirs", "other", "webhook", "simple", "https://push.example/o"))
    await login(ui)
    page = await ui.get("/ui/push")
    assert "phone1" in page.text and "theirs" not in page.text
    assert secret_url not in page.text  # the key is named by a digest only
    key = re.search(r'name="key" value="([0-9a-f]+)"', page.text)
    assert key is not None
    # Someone else's subscription cannot be reached through this form.
    await ui.post("/ui/push/deactivate", data={"vehicleid": "OTHERCAR", "appid": "theirs",
                                               "key": key.group(1), "csrf": csrf(page)})
    assert len(await store.push_subscriptions("OTHERCAR")) == 1
    done = await ui.post("/ui/push/deactivate", data={
        "vehicleid": "DEMO", "appid": "phone1", "key": key.group(1), "csrf": csrf(page)})
    assert done.status_code == 303
    await store.flush()
    assert await store.push_subscriptions("DEMO") == []


async def test_monitor_form_errors_land_next_to_their_field(ui: httpx.AsyncClient) -> None:
    await login(ui)
    page = await ui.get("/ui/vehicles/DEMO/monitors")
    token = csrf(page)
    form = {"label": "Evenings", "target": "http://10.0.0.1/hook", "time_recurrence": "Weekly",
            "time_start": "18:00", "time_hours": "3", "day_Mon": "1", "csrf": token}
    refused = await ui.post("/ui/vehicles/DEMO/monitors", data=form)
    # The v4 endpoint's own check: private addresses are not callback targets.
    assert refused.status_code == 400
    assert 'id="target-error"' in refused.text and "not an allowed" in refused.text
    bad_time = await ui.post("/ui/vehicles/DEMO/monitors",
                             data={**form, "time_start": "25:00", "day_Mon": ""})
    assert bad_time.status_code == 400
    assert 'id="time_start-error"' in bad_time.text and 'id="time_days-error"' in bad_time.text
    nothing = await ui.post("/ui/vehicles/DEMO/monitors",
                            data={"label": "x", "target": "https://example.org/x",
                                  "csrf": token})
    assert nothing.status_code == 400 and 'id="triggers-error"' in nothing.text


async def test_logout_ends_the_live_stream(start_relay: StartRelay) -> None:
    relay = await start_relay(api_idle_timeout=0.6)
    async with client(relay) as ui:
        await login(ui)
        page = await ui.get("/ui/vehicles")
        async with ui.stream("GET", "/ui/events?v=DEMO") as events:
            lines = events.aiter_lines()
            with trio.fail_after(5):
                async for line in lines:
                    if line.startswith("event: vehicle"):
                        break
                async with client(relay,
                                             cookies=ui.cookies) as other:
                    out = await other.post("/ui/logout", data={"csrf": csrf(page)})
                    assert out.status_code == 303
                async for line in lines:
                    if line.startswith("event: "):
                        assert line == "event: logout"
                        break
        assert (await ui.get("/api/vehicles")).status_code == 401


async def test_an_open_vehicle_page_counts_as_an_app(relay: RelayUnderTest,
                                                     ui: httpx.AsyncClient) -> None:
    """The car hears Z 1 while a vehicle page is open (and reports often), Z 0 after."""
    car = await scripted_car(relay, "DEMO", [("S", S_MSG)])
    await login(ui)
    with trio.fail_after(5):
        async with ui.stream("GET", "/ui/events?v=DEMO&app=1") as events:
            async for line in events.aiter_lines():
                if line.startswith("event: vehicle"):
                    break
            assert [m.data for m in await car.receive_until("Z")][-1] == "1"
            async with ui.stream("GET", "/ui/events?v=DEMO&app=1") as second:
                async for line in second.aiter_lines():
                    if line.startswith("event: vehicle"):
                        break
        # Both pages closed: the car is told once nobody watches.
        assert [m.data for m in await car.receive_until("Z")][-1] == "0"
    assert (await ui.get("/api/vehicles")).json()[0]["v_apps_connected"] == 0
    await car.aclose()


async def test_tile_url_setting_reaches_the_map_and_the_policy(start_relay: StartRelay
                                                               ) -> None:
    from relay.console.web import tile_origin

    assert tile_origin("") == ""
    assert tile_origin("https://{s}.tile.example.org/{z}/{x}/{y}.png") == \
        "https://*.tile.example.org"
    assert tile_origin("javascript:alert(1)") == ""
    relay = await start_relay(console_tile_url="https://tiles.example.org/{z}/{x}/{y}.png")
    async with client(relay) as ui:
        await login(ui)
        page = await ui.get("/ui/vehicles/DEMO")
    assert 'data-tiles="https://tiles.example.org/{z}/{x}/{y}.png"' in page.text
    policy = page.headers["content-security-policy"]
    assert "img-src 'self' data: https://tiles.example.org;" in policy
    assert "script-src 'self';" in policy


async def test_a_failing_event_stream_costs_one_connection_only(
        relay: RelayUnderTest, ui: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A streamed answer that fails (or whose client vanishes mid-write) closes its own
    connection; before, the error escaped as an ExceptionGroup and stopped the listener."""
    from relay.console import live

    async def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("summary failed")

    await login(ui)
    monkeypatch.setattr(live, "summary", broken)
    with trio.fail_after(5):
        with pytest.raises(httpx.HTTPError):
            async with ui.stream("GET", "/ui/events?v=DEMO") as events:
                async for _line in events.aiter_lines():
                    pass
                raise httpx.ReadError("stream ended")
    monkeypatch.undo()
    assert (await ui.get("/ui/")).status_code in (200, 303)
    assert (await ui.get("/api/vehicles")).status_code == 200
