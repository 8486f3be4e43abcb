"""Vehicle names and owner renaming in the web console, over plain HTTP.

Issue 14 (operators: "create, rename, delete" owners and vehicles; owners see "each
vehicle's id, name"): the owner names a vehicle on its page, an operator names any
vehicle and renames owners; every form needs its CSRF token, a wrong value comes
back next to its field, and a hostile name arrives escaped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from relay import db
from relay.v4 import monitor_parse
from tests.conftest import OWNER, RelayUnderTest, StartRelay
from tests.http_helpers import client
from tests.test_console_http import XSS, csrf, login

ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
async def ui(relay: RelayUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with client(relay) as c:
        yield c


def stored(relay: RelayUnderTest, table: str, where: str, *args: str) -> list[tuple[str, ...]]:
    conn = db.connect_reader(relay.db)
    try:
        return [tuple(r) for r in conn.execute(f"SELECT * FROM {table} WHERE {where}", args)]
    finally:
        conn.close()


def vehicle_name(relay: RelayUnderTest, vehicleid: str) -> str:
    conn = db.connect_reader(relay.db)
    try:
        row = db.get_vehicle(conn, vehicleid)
    finally:
        conn.close()
    assert row is not None
    return str(row["name"])


async def test_owner_names_a_vehicle_on_its_page(relay: RelayUnderTest,
                                                 ui: httpx.AsyncClient) -> None:
    """Issue 14: the owner sets a name on the vehicle page; the list shows it, escaped;
    the REST answers stay those of the public server (no name field)."""
    await login(ui)
    before = (await ui.get("/api/vehicles")).json()
    page = await ui.get("/ui/vehicles/DEMO")
    assert 'action="/ui/vehicles/DEMO/name"' in page.text
    token = csrf(page)

    missing = await ui.post("/ui/vehicles/DEMO/name", data={"name": "Blue"})
    assert missing.status_code == 403
    forged = await ui.post("/ui/vehicles/DEMO/name", data={"name": "Blue", "csrf": "0" * 64})
    assert forged.status_code == 403
    assert vehicle_name(relay, "DEMO") == ""

    long = await ui.post("/ui/vehicles/DEMO/name", data={"name": "x" * 65, "csrf": token})
    assert long.status_code == 400
    assert 'id="name-error"' in long.text and "at most 64 characters" in long.text
    assert 'aria-describedby="name-error"' in long.text
    control = await ui.post("/ui/vehicles/DEMO/name", data={"name": "a\x1bb", "csrf": token})
    assert control.status_code == 400 and 'id="name-error"' in control.text
    assert vehicle_name(relay, "DEMO") == ""

    done = await ui.post("/ui/vehicles/DEMO/name", data={"name": f"  {XSS}  ",
                                                         "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/ui/vehicles/DEMO"
    assert vehicle_name(relay, "DEMO") == XSS
    for path in ("/ui/vehicles", "/ui/vehicles/DEMO", "/ui/admin"):
        shown = await ui.get(path)
        assert XSS not in shown.text and "<script>alert" not in shown.text, path
        assert ESCAPED in shown.text, path
    listed = (await ui.get("/ui/vehicles")).text
    row = listed[listed.index('data-vehicle="DEMO"'):]
    assert ESCAPED in row[:600]

    assert (await ui.get("/api/vehicles")).json() == before
    assert "name" not in (await ui.get("/api/status/DEMO")).json()

    cleared = await ui.post("/ui/vehicles/DEMO/name", data={"name": "", "csrf": token})
    assert cleared.status_code == 303
    assert vehicle_name(relay, "DEMO") == ""


async def test_owner_cannot_name_someone_elses_vehicle(relay: RelayUnderTest,
                                                       ui: httpx.AsyncClient) -> None:
    await login(ui)
    token = csrf(await ui.get("/ui/vehicles/DEMO"))
    refused = await ui.post("/ui/vehicles/OTHERCAR/name", data={"name": "mine",
                                                                "csrf": token})
    assert refused.status_code == 404
    assert vehicle_name(relay, "OTHERCAR") == ""


async def test_a_read_only_login_cannot_name_a_vehicle(relay: RelayUnderTest,
                                                      ui: httpx.AsyncClient) -> None:
    conn = db.connect(relay.db)
    try:
        token = db.add_token(conn, OWNER, "viewer", permit="auth")
    finally:
        conn.close()
    assert (await login(ui, OWNER, token)).status_code == 303
    page = await ui.get("/ui/vehicles/DEMO")
    assert page.status_code == 200 and "/ui/vehicles/DEMO/name" not in page.text
    refused = await ui.post("/ui/vehicles/DEMO/name", data={"name": "x",
                                                            "csrf": csrf(page)})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert vehicle_name(relay, "DEMO") == ""


async def test_operator_names_any_vehicle(relay: RelayUnderTest,
                                          ui: httpx.AsyncClient) -> None:
    await login(ui)
    admin = await ui.get("/ui/admin")
    token = csrf(admin)
    missing = await ui.post("/ui/admin/vehicles/name", data={"vehicleid": "OTHERCAR",
                                                             "name": "Van"})
    assert missing.status_code == 403
    long = await ui.post("/ui/admin/vehicles/name", data={
        "vehicleid": "OTHERCAR", "name": "é" * 65, "csrf": token})
    assert long.status_code == 400
    assert 'id="name-OTHERCAR-error"' in long.text and "at most 64" in long.text
    unknown = await ui.post("/ui/admin/vehicles/name", data={
        "vehicleid": "NOSUCH", "name": "x", "csrf": token})
    assert unknown.status_code == 303
    assert "unknown vehicle" in (await ui.get("/ui/admin")).text
    done = await ui.post("/ui/admin/vehicles/name", data={
        "vehicleid": "OTHERCAR", "name": XSS, "csrf": token})
    assert done.status_code == 303
    assert vehicle_name(relay, "OTHERCAR") == XSS
    shown = await ui.get("/ui/admin")
    assert ESCAPED in shown.text and XSS not in shown.text
    # The owner sees it at once (the relay's cached record was dropped).
    async with client(relay) as other:
        await login(other, "other", "otherpass")
        assert ESCAPED in (await other.get("/ui/vehicles")).text


async def test_operator_renames_an_owner(start_relay: StartRelay) -> None:
    """Issue 14: an operator renames an owner; the owner's vehicles and monitors follow,
    the old name's logins end (console session, app logged in by user name), the car
    stays connected, and the new name logs in with the same password."""
    relay = await start_relay(allow_plain_login=True)
    async with client(relay) as ui:
        await renames_an_owner(relay, ui)


async def renames_an_owner(relay: RelayUnderTest, ui: httpx.AsyncClient) -> None:
    services = relay.handle.services
    engine = relay.handle.v4
    assert engine is not None
    monitor = monitor_parse.monitor_from_json({
        "label": "m", "subscribeParam": {"callback": {"target": "http://192.0.2.1/cb"}},
        "triggerParam": {"triggers": [{"name": "w", "time": {"times": [
            {"recurrence": "Daily", "start": "PT10H", "duration": "PT1H"}]}}],
            "bool.exp": "w"}}, url_allowed=lambda url: True)
    entry = await engine.put_monitor("OTHERCAR", "other", monitor)
    app = await relay.app("OTHERCAR", username="other", password="otherpass")
    car = await relay.car("OTHERCAR", carpass="OTHERPASS")

    async with client(relay) as other:
        await login(other, "other", "otherpass")
        assert (await other.get("/ui/vehicles")).status_code == 200
        await login(ui)
        admin = await ui.get("/ui/admin")
        assert 'action="/ui/admin/owners/rename"' in admin.text
        token = csrf(admin)

        missing = await ui.post("/ui/admin/owners/rename", data={"name": "other",
                                                                 "new_name": "otto"})
        assert missing.status_code == 403
        taken = await ui.post("/ui/admin/owners/rename", data={
            "name": "other", "new_name": OWNER, "csrf": token})
        assert taken.status_code == 400
        assert 'id="rename-other-error"' in taken.text and "already exists" in taken.text
        empty = await ui.post("/ui/admin/owners/rename", data={
            "name": "other", "new_name": " ", "csrf": token})
        assert empty.status_code == 400 and 'id="rename-other-error"' in empty.text
        own = await ui.post("/ui/admin/owners/rename", data={
            "name": OWNER, "new_name": "boss", "csrf": token})
        assert own.status_code == 303
        assert "your own account" in (await ui.get("/ui/admin")).text
        hostile = await ui.post("/ui/admin/owners/rename", data={
            "name": "other", "new_name": "bad\nname", "csrf": token})
        assert hostile.status_code == 400 and "bad owner name" in hostile.text
        assert stored(relay, "owners", "name=?", "other")
        assert entry.owner == "other"  # a refused rename leaves the monitor alone

        done = await ui.post("/ui/admin/owners/rename", data={
            "name": "other", "new_name": "otto", "csrf": token})
        assert done.status_code == 303
        assert not stored(relay, "owners", "name=?", "other")
        assert stored(relay, "vehicles", "vehicleid='OTHERCAR' AND owner=?", "otto")
        assert entry.owner == "otto"
        await services.store.flush()
        assert stored(relay, "v4_monitors", "owner=?", "otto")

        # The old name's console session and app connection are gone; the car stays.
        ended = await other.get("/ui/vehicles")
        assert ended.status_code == 303 and ended.headers["location"] == "/ui/"
        assert await app.closed_by_server()
        assert services.hub.car_connected("OTHERCAR")
        assert (await login(other, "other", "otherpass")).status_code == 401
        assert (await login(other, "otto", "otherpass")).status_code == 303
        assert "OTHERCAR" in (await other.get("/ui/vehicles")).text
    await car.aclose()
    with trio.fail_after(5):
        await app.aclose()
