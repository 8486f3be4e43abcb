"""The web console in a real browser: Debian's Chromium driven by Playwright.

Issue 14. One relay (in its own thread, with its own trio loop) and one browser
serve the whole module; a simulated car sends status and answers commands.
Screenshots of each page go to $OVMS_ARTEFACTS/console (default: the pytest
temporary folder); they are not committed (docs/console/ holds a chosen few).

Skipped with one line when Chromium or Playwright is missing, unless
OVMS_REQUIRE_SERVICES=1 (CI), which makes a missing browser a failure.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
import trio

from protocol import ClientType
from relay import db
from relay.app import RelayHandle, run_relay
from relay.config import Config
from tests.conftest import OWNER, PASSWORD
from tests.http_helpers import D_MSG, F_MSG, L_MSG, S_MSG, W_MSG
from tools.v2client import LoginRefused, V2Client

CHROMIUM = "/usr/bin/chromium"
_missing = [what for what, there in (
    (CHROMIUM, os.path.exists(CHROMIUM)),
    ("playwright", importlib.util.find_spec("playwright") is not None)) if not there]
if _missing:
    if os.environ.get("OVMS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests need {', '.join(_missing)} (OVMS_REQUIRE_SERVICES=1)",
                    pytrace=False)
    pytest.skip(f"no {', '.join(_missing)}: web console browser tests skipped",
                allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

T = TypeVar("T")
# As the pages' own timeout (below): on a loaded machine the chart of 100,000 samples
# took longer than expect's 5 s default to show.
expect.set_options(timeout=15_000)
CALLBACK_PREFIX = "http://127.0.0.1:9/"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]


@attrs.define
class SimCar:
    """A car that sends what it is told and answers every command with success."""

    client: V2Client
    commands: list[str] = attrs.field(factory=list)
    lock: trio.Lock = attrs.field(factory=trio.Lock)

    async def send(self, code: str, data: str) -> None:
        async with self.lock:
            await self.client.send(code, data)

    async def answer(self) -> None:
        while True:
            try:
                msg = await self.client.receive(math.inf)
            except (LoginRefused, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the relay closed the connection (at the end of the module)
            if msg.code == "C":
                self.commands.append(msg.data)
                number = msg.data.split(",", 1)[0]
                await self.send("c", f"{number},0")


class ThreadedRelay:
    """A relay on its own trio loop in a thread, for a synchronous browser driver."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.handle: RelayHandle | None = None
        self.car: SimCar | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._nursery: trio.Nursery | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._error: BaseException | None = None

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.handle = await nursery.start(run_relay, self.config)
                self._ready.set()
                await self._stop.wait()
                nursery.cancel_scope.cancel()
        except BaseException as exc:  # reported by stop()
            self._error = exc
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None or self.handle is None:
            raise RuntimeError(f"relay did not start: {self._error!r}")

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def stop(self) -> None:
        if self._error is None and self._stop is not None:
            trio.from_thread.run_sync(self._stop.set, trio_token=self._token)
        self._thread.join(10)
        if self._error is not None:
            raise AssertionError("the relay stopped during the tests") from self._error

    @property
    def url(self) -> str:
        assert self.handle is not None
        return f"http://127.0.0.1:{self.handle.http_port}"

    async def start_car(self) -> None:
        assert self.handle is not None and self._nursery is not None
        client = await V2Client.connect("127.0.0.1", self.handle.v2_port, "DEMO",
                                        client_type=ClientType.CAR, carpass="DEMO")
        self.car = SimCar(client)
        for code, data in (("F", F_MSG), ("S", S_MSG), ("D", D_MSG), ("L", L_MSG),
                           ("W", W_MSG)):
            await self.car.send(code, data)
        self._nursery.start_soon(self.car.answer)

    async def car_sends(self, code: str, data: str) -> None:
        assert self.car is not None
        await self.car.send(code, data)


SAMPLES = 50_000  # per chart: SOC and range, 100,000 points in all


def seed_history(target: str) -> None:
    """A day of telemetry (what the v4 engine records) and a track around the car."""
    now = int(time.time())
    rows: list[tuple[str, int, str, float]] = []
    for k in range(SAMPLES):
        ts = now - 86_000 + k * 86_000 // SAMPLES
        soc = 50 + 40 * math.sin(k / 4000)
        rows.append(("DEMO", ts, "vehicle.energy.electric.level", round(soc, 1)))
        rows.append(("DEMO", ts, "vehicle.energy.electric.autonomy", round(soc * 3.2, 1)))
    start = now - 1800
    for k in range(120):  # the last half hour: a loop to the car's position
        angle = k / 120 * 2 * math.pi
        rows.append(("DEMO", start + k * 15, "vehicle.position.latitude",
                     22.270553 + 0.01 * math.sin(angle)))
        rows.append(("DEMO", start + k * 15, "vehicle.position.longitude",
                     114.186994 + 0.015 * (1 - math.cos(angle))))
    conn = db.wrapped(db.connect(target))
    try:
        with conn.transaction():
            conn.executemany("INSERT INTO v4_telemetry(vehicleid, ts, metric, value) "
                             "VALUES (?, ?, ?, ?)", rows)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(module_relay_db: str) -> Iterator[ThreadedRelay]:
    path = module_relay_db
    config = Config(db=path, host="127.0.0.1", v2_port=0, http_port=0,
                    webhook_allow=[CALLBACK_PREFIX], command_timeout=10.0)
    relay = ThreadedRelay(config)
    relay.start()
    seed_history(path)
    relay.run(relay.start_car)
    yield relay
    relay.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("OVMS_ARTEFACTS")
    folder = Path(base) / "console" if base else tmp_path_factory.mktemp("console-shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        # launch() gives the browser a fresh temporary profile of its own.
        launched = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=BROWSER_ARGS)
        yield launched
        launched.close()


# Dialogs the pages opened: "confirm" before destructive actions, never an "alert".
dialogs: list[str] = []


@pytest.fixture(scope="module")
def page(browser: Browser, server: ThreadedRelay) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  base_url=server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    tab.on("dialog", lambda dialog: dialogs.append(dialog.type) or dialog.accept())
    tab.goto("/ui/")
    tab.fill("input[name=username]", OWNER)
    tab.fill("input[name=password]", PASSWORD)
    tab.keyboard.press("Enter")  # keyboard use: the form submits from the password field
    tab.wait_for_url("**/ui/vehicles")
    yield tab
    context.close()


def snap(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def test_login_page(browser: Browser, server: ThreadedRelay, shots: Path) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 640}, base_url=server.url)
    tab = context.new_page()
    tab.goto("/ui/")
    tab.fill("#username", OWNER)
    tab.fill("#password", "wrong")
    tab.click("button[type=submit]")
    expect(tab.locator("#password-error")).to_contain_text("Wrong user name or password")
    snap(tab, shots, "login-error-360")
    context.close()


def test_vehicle_list_shows_the_soc_and_follows_it_live(page: Page, server: ThreadedRelay,
                                                        shots: Path) -> None:
    page.goto("/ui/vehicles")
    row = page.locator("tr[data-vehicle=DEMO]")
    expect(row.locator("[data-field=soc]")).to_have_text("30%")
    expect(row.locator("[data-field=online]")).to_have_text("online")
    expect(page.locator("#live-state")).to_have_text("Live updates on.")
    server.run(server.car_sends, "S", S_MSG.replace("30,", "57,", 1))
    expect(row.locator("[data-field=soc]")).to_have_text("57%")
    snap(page, shots, "vehicles")


def test_vehicle_page_status_map_and_charts(page: Page, server: ThreadedRelay,
                                            shots: Path) -> None:
    page.goto("/ui/vehicles")
    page.click("a[href='/ui/vehicles/DEMO']")
    page.wait_for_url("**/ui/vehicles/DEMO")
    expect(page.locator("h1")).to_contain_text("DEMO")
    expect(page.locator(".vehicle [data-field=soc]").first).to_contain_text("%")
    expect(page.locator("#map path.car")).to_be_attached()
    # The seeded samples, the track's and whatever the engine recorded since.
    expect(page.locator("#chart-summary")).to_contain_text(re.compile(r"\b5\d{4} samples"))
    expect(page.locator("#chart-soc canvas")).to_be_attached()
    expect(page.locator("#chart-range canvas")).to_be_attached()
    expect(page.locator("#map path.track")).to_be_attached()  # today's track
    server.run(server.car_sends, "S", S_MSG.replace("30,", "64,", 1))
    expect(page.locator(".vehicle dd[data-field=soc]")).to_have_text("64%")
    snap(page, shots, "vehicle")


def test_lock_command_answered_by_the_car(page: Page, server: ThreadedRelay,
                                          shots: Path) -> None:
    page.goto("/ui/vehicles/DEMO")
    page.fill("#pin", "1234")
    page.click("button[value=lock]")
    page.wait_for_url("**/ui/vehicles/DEMO#control")
    expect(page.locator(".notice.ok")).to_contain_text("Lock: done (200)")
    assert server.car is not None and "20,1234" in server.car.commands
    page.click("button[value=unlock]")  # no PIN: refused next to the field
    expect(page.locator("#pin-error")).to_contain_text("needs the PIN")
    snap(page, shots, "vehicle-control")


def test_create_and_revoke_a_token(page: Page, shots: Path) -> None:
    page.goto("/ui/tokens")
    page.fill("#application", "dashboard")
    page.fill("#purpose", "wall display")
    page.check("input[name=permit_v4]")
    page.click("text=Create token")
    value = page.locator("#new-token").input_value()
    assert len(value) == 64
    snap(page, shots, "token-created")
    page.goto("/ui/tokens")
    assert value not in page.content()
    row = page.locator("tr", has_text="dashboard")
    expect(row).to_contain_text("auth,v4")
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".notice.ok")).to_contain_text("Token revoked")
    expect(page.locator("tr", has_text="dashboard")).to_have_count(0)
    assert dialogs[-1] == "confirm"


def test_create_and_delete_a_monitor(page: Page, shots: Path) -> None:
    page.goto("/ui/vehicles/DEMO/monitors")
    page.fill("#label", "Away from home")
    page.fill("#target", CALLBACK_PREFIX + "hook")
    page.click("#zone-map")  # a click on the map places the zone
    expect(page.locator("#zone_lat")).not_to_have_value("")
    page.fill("#zone_radius", "abc")
    page.click("text=Create monitor")
    expect(page.locator("#zone_radius-error")).to_contain_text("enter a number")
    page.fill("#zone_radius", "2")
    page.select_option("#data_path", "vehicle.energy.electric.level")
    page.select_option("#data_op", "lowerThan")
    page.fill("#data_value", "20")
    page.click("text=Create monitor")
    expect(page.locator(".notice.ok")).to_contain_text("Monitor Away from home created")
    row = page.locator("tr", has_text="Away from home")
    expect(row).to_contain_text("car leaves 2.0 km around")
    expect(row).to_contain_text("vehicle.energy.electric.level lowerThan 20")
    snap(page, shots, "monitors")
    page.locator("tr", has_text="Away from home").locator("button").click()
    expect(page.locator("tr", has_text="Away from home")).to_have_count(0)


def test_phone_width_is_usable(browser: Browser, server: ThreadedRelay, page: Page,
                               shots: Path) -> None:
    """360 px wide: nothing wider than the screen but tables, which scroll in their box."""
    context = browser.new_context(viewport={"width": 360, "height": 740}, base_url=server.url,
                                  storage_state=page.context.storage_state())
    phone = context.new_page()
    phone.goto("/ui/vehicles/DEMO")
    expect(phone.locator("h1")).to_contain_text("DEMO")
    expect(phone.locator("#chart-soc canvas")).to_be_attached()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, width
    snap(phone, shots, "vehicle-360")
    context.close()


def test_operator_pages(page: Page, server: ThreadedRelay, shots: Path) -> None:
    page.goto("/ui/vehicles")
    page.click("text=Operators")
    expect(page.locator("#st-cars")).to_have_text("1")
    page.fill("#owner_name", "fleet")
    page.fill("#owner_password", "fleetpass")
    page.click("text=Create owner")
    expect(page.locator(".notice.ok")).to_contain_text("Owner fleet created")
    page.fill("#vehicle_id", "FLEET1")
    page.select_option("#vehicle_owner", "fleet")
    page.fill("#vehicle_carpass", "secret")
    page.click("text=Create vehicle")
    expect(page.locator(".notice.ok")).to_contain_text("Vehicle FLEET1 created")
    snap(page, shots, "operators")
    page.click("a[href='/ui/admin/vehicles/DEMO']")
    expect(page.locator("h1")).to_contain_text("DEMO")
    expect(page.locator("table").last).to_contain_text("accepted")
    snap(page, shots, "operator-vehicle")
    page.goto("/ui/admin")
    owner_row = page.locator("section[aria-labelledby=h-owners] tbody tr", has_text="fleet")
    owner_row.locator("input[name=new_name]").fill("fleet-east")
    owner_row.locator("button", has_text="Rename").click()
    expect(page.locator(".notice.ok")).to_contain_text("Owner fleet renamed to fleet-east")
    vehicle_row = page.locator("tr", has_text="FLEET1")
    expect(vehicle_row).to_contain_text("fleet-east")
    vehicle_row.locator("input[name=name]").fill("Van 1")
    vehicle_row.locator("button", has_text="Save").click()
    expect(page.locator(".notice.ok")).to_contain_text("Vehicle FLEET1 named Van 1")
    page.locator("tr", has_text="FLEET1").locator("button", has_text="Delete").click()
    expect(page.locator(".notice.ok")).to_contain_text("Vehicle FLEET1")


def test_hostile_text_renders_inert(page: Page, server: ThreadedRelay) -> None:
    """Script in an alert text and a token label shows as text and never runs."""
    hostile = '<script>alert("alert")</script><img src=x onerror="alert(1)">'
    server.run(server.car_sends, "P", "A" + hostile)
    page.goto("/ui/tokens")
    page.fill("#application", hostile)
    page.click("text=Create token")
    expect(page.locator("h2#h-new")).to_contain_text('<script>alert("alert")</script>')
    page.goto("/ui/vehicles/DEMO")
    expect(page.locator(".alerts")).to_contain_text('<img src=x onerror="alert(1)">')
    page.goto("/ui/tokens")
    expect(page.locator("table")).to_contain_text("<script>")
    page.goto("/ui/vehicles/DEMO")  # a vehicle name, set by its owner
    page.fill("#name", hostile)
    page.click("text=Save name")
    expect(page.locator("h1")).to_contain_text(hostile)
    page.goto("/ui/vehicles")
    expect(page.locator("tr[data-vehicle=DEMO] .vname")).to_have_text(hostile)
    assert "alert" not in dialogs
