"""The OpenAPI document: in sync with the routes, and a fuzzing pass finding no 500.

The relay runs in a thread of its own (with a car that answers every command)
so that Hypothesis can drive it from plain synchronous tests over real sockets.
"""

from __future__ import annotations

import functools
import json
import math
import string
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import ClientType
from relay.app import RelayHandle, run_relay
from relay.config import Config
from relay.endpoints import all_routes
from tests.http_helpers import CREDS, D_MSG, L_MSG, S_MSG, W_MSG, Y_MSG
from tools.v2client import V2Client


@attrs.frozen
class LiveRelay:
    url: str
    cookie: str
    token: str


async def answering_car(port: int, *, task_status: trio.TaskStatus[None]) -> None:
    """DEMO's car: sends its state, then answers every command (lists in two lines)."""
    car = await V2Client.connect("127.0.0.1", port, "DEMO", client_type=ClientType.CAR,
                                 carpass="DEMO")
    for code, data in (("S", S_MSG), ("D", D_MSG), ("L", L_MSG), ("W", W_MSG), ("Y", Y_MSG)):
        await car.send(code, data)
    task_status.started()
    while True:
        msg = await car.receive(math.inf)
        if msg.code != "C":
            continue
        number = msg.data.split(",")[0]
        if number in ("1", "3"):
            await car.send("c", f"{number},0,0,2,a")
            await car.send("c", f"{number},0,1,2,b")
        else:
            await car.send("c", f"{number},0,done")


@pytest.fixture(scope="module")
def live_relay(module_relay_db: str) -> Iterator[LiveRelay]:
    config = Config(db=module_relay_db, host="127.0.0.1", v2_port=0, http_port=0,
                    sweep_interval=0.05, command_timeout=0.5, api_rate_burst=0)
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            handle: RelayHandle = await nursery.start(run_relay, config)
            await nursery.start(answering_car, handle.v2_port)
            box.update(handle=handle, scope=nursery.cancel_scope,
                       token=trio.lowlevel.current_trio_token())
            started.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert started.wait(60), "relay did not start"
    url = f"http://127.0.0.1:{box['handle'].http_port}"
    with httpx.Client(base_url=url) as http:
        cookie = http.get("/api/cookie", params=CREDS).cookies["ovmsapisession"]
        token = http.post("/api/token", params={**CREDS, "permit": "*"}).json()["token"]
    try:
        yield LiveRelay(url, cookie, token)
    finally:
        trio.from_thread.run_sync(box["scope"].cancel, trio_token=box["token"])
        thread.join(30)


def document(relay: LiveRelay) -> dict[str, Any]:
    response = httpx.get(relay.url + "/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc: dict[str, Any] = response.json()
    return doc


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


def test_document_lists_exactly_the_routes(live_relay: LiveRelay) -> None:
    doc = document(live_relay)
    assert doc["openapi"].startswith("3.")
    documented = {(m, p) for m, p, _ in operations(doc)}
    assert documented == {(r.method, r.path) for r in all_routes(None)}
    for method, path, op in operations(doc):
        assert op["responses"], (method, path)
        assert {p["name"] for p in op["parameters"] if p["in"] == "path"} == {
            seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        for response in op["responses"].values():
            ref = response.get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in ref:
                assert ref["$ref"].split("/")[-1] in doc["components"]["schemas"]


def test_every_documented_operation_is_served(live_relay: LiveRelay) -> None:
    """The dispatcher knows every documented operation (none is 'Unrecognised')."""
    with httpx.Client(base_url=live_relay.url, timeout=10) as http:
        for method, path, _op in operations(document(live_relay)):
            concrete = path.replace("{vehicleid}", "DEMO").replace("{type}", "S").replace(
                "{token}", "0" * 64)
            response = http.request(method, concrete, params=CREDS)
            assert response.status_code != 404 or response.text != "Unrecognised API call\n", (
                method, path)
            assert response.status_code < 500, (method, path, response.text)


_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_VEHICLES = st.sampled_from(["DEMO", "demo", "TESTCAR", "OTHERCAR", "NOSUCH", "", "%", ".."])


def _value(param: dict[str, Any]) -> st.SearchStrategy[str]:
    schema = param.get("schema", {})
    choices: list[st.SearchStrategy[str]] = [_TEXT]
    if "enum" in schema:
        choices.append(st.sampled_from(schema["enum"]))
    if schema.get("type") == "integer":
        choices.append(st.integers(-5, 10**7).map(str))
    return st.one_of(*choices)


@st.composite
def requests(draw: st.DrawFn, ops: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    method, path, op = draw(st.sampled_from(ops))
    for param in op["parameters"]:
        if param["in"] == "path":
            raw = draw(st.one_of(_VEHICLES, _TEXT)) if param["name"] == "vehicleid" else draw(
                _TEXT)
            path = path.replace("{" + param["name"] + "}", quote(raw, safe=""))
    params: dict[str, str] = {}
    for param in op["parameters"]:
        if param["in"] == "query" and draw(st.booleans()):
            if param["name"] == "password":
                # Wrong passwords cost an argon2 check each: the auth tests cover them.
                params["password"] = draw(st.sampled_from(["", "demopass"]))
            elif param["name"] == "username":
                params["username"] = draw(st.sampled_from(["", "demo"]))
            else:
                params[param["name"]] = draw(_value(param))
    params.update(draw(st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8)
                                       .filter(lambda k: k not in ("username", "password")),
                                       _TEXT, max_size=3)))
    auth = draw(st.sampled_from(["none", "password", "token", "cookie"]))
    body = draw(st.sampled_from(["query", "form", "json", "junk"]))
    return {"method": method, "path": path, "params": params, "auth": auth, "body": body,
            "junk": draw(st.binary(max_size=40))}


@pytest.fixture(scope="module")
def ops(live_relay: LiveRelay) -> list[tuple[str, str, dict[str, Any]]]:
    return operations(document(live_relay))


@functools.cache
def fuzz_client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=10)


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_finds_no_server_error(live_relay: LiveRelay,
                                    ops: list[tuple[str, str, dict[str, Any]]],
                                    data: st.DataObject) -> None:
    req = data.draw(requests(ops))
    query: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if req["auth"] == "password":
        query.update(CREDS)
    elif req["auth"] == "token":
        query.update(username="demo", password=live_relay.token)
    elif req["auth"] == "cookie":
        cookies["ovmsapisession"] = live_relay.cookie
    kwargs: dict[str, Any] = {}
    if req["body"] == "query" or req["method"] in ("GET", "DELETE"):
        query.update(req["params"])
    elif req["body"] == "form":
        kwargs["data"] = req["params"]
    elif req["body"] == "json":
        kwargs["content"] = json.dumps(req["params"]).encode()
        kwargs["headers"] = {"content-type": "application/json"}
    else:
        kwargs["content"] = req["junk"]
        kwargs["headers"] = {"content-type": "application/json"}
    # One client for every example (building one loads the CA store: tens of ms), with
    # no cookie carried from one example to the next.
    http = fuzz_client(live_relay.url)
    http.cookies.clear()
    if cookies:
        kwargs.setdefault("headers", {})["cookie"] = "; ".join(
            f"{k}={v}" for k, v in cookies.items())
    response = http.request(req["method"], req["path"], params=query, **kwargs)
    assert response.status_code < 500 or response.status_code in (502, 504), (
        req, response.status_code, response.text)
    assert response.headers["access-control-allow-origin"] == "*"
    if response.headers.get("content-type") == "application/json":
        assert response.text.endswith("\n")
        json.loads(response.text)


def test_document_states_what_the_server_answers(live_relay: LiveRelay) -> None:
    """Issue 9 defect 16: the shapes schemathesis found wrong, checked against real answers."""
    doc = document(live_relay)
    schemas = doc["components"]["schemas"]
    paths = doc["paths"]
    with httpx.Client(base_url=live_relay.url, timeout=10) as http:
        lock = http.get("/api/lock/DEMO", params=CREDS).json()
        tpms = http.get("/api/tpms/DEMO", params=CREDS).json()
    # m_msgtime_d is text, the flag and the age integers.
    flags = schemas["Flags"]["properties"]
    assert isinstance(lock["m_msgtime_d"], str) and flags["m_msgtime_d"]["type"] == "string"
    assert isinstance(lock["carlocked"], int) and flags["carlocked"]["type"] == "integer"
    # Y's psi is a number, W's the car's string: the document allows both.
    assert isinstance(tpms["fl_pressure"], float)
    assert "number" in schemas["Tpms"]["properties"]["fl_pressure"]["type"]
    for route in ("/mqapi/auth", "/mqapi/acl", "/mqapi/superuser"):
        assert "403" in paths[route]["post"]["responses"]
    charge = {p["name"]: p["schema"] for p in paths["/api/charge/{vehicleid}"]["put"][
        "parameters"]}
    assert charge["mode"]["enum"] == ["standard", "storage", "range", "performance"]
    lock_pin = {p["name"]: p["schema"] for p in paths["/api/lock/{vehicleid}"]["put"][
        "parameters"]}["pin"]
    assert lock_pin["pattern"].startswith("^[^,")
    since = {p["name"]: p["schema"] for p in paths["/api/historical/{vehicleid}"]["get"][
        "parameters"]}["since"]
    assert "pattern" in since
