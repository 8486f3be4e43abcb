"""Issue 9 defect 10 (REST and v4 part): unchecked numbers and times gave 500s.

Every parameter goes through ``relay.params``: a bad one is a 400 with a text that
names it, a time outside what the server can represent is clamped, and a car's
answer with a strange index is left out of the list instead of failing the request.
"""

from __future__ import annotations

import httpx
import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.params import ParamError, rfc3339_seconds, since, small_index, whole_number
from tests.conftest import RelayUnderTest
from tests.http_helpers import CREDS, api, assert_json, assert_text, scripted_car
from tests.test_http_control import answer, finished, start_call
from tests.test_v4_http_support import V4, assert_error, assert_hal, bearer, make_token

__all__ = ["api"]  # fixtures

TWENTY_DIGITS = "9" * 20


@pytest.mark.parametrize("parameters", [
    TWENTY_DIGITS, "²", "2026-02-30", "-1", " 5",
])
async def test_command_31_bad_since_is_400(api: httpx.AsyncClient, parameters: str) -> None:
    """Issue 9 defect 10: ``POST /api/command`` 31 with a 20-digit since was a 500."""
    response = await api.post("/api/command/DEMO", params={
        **CREDS, "command": "31", "parameters": parameters})
    assert response.status_code == 400, response.text
    assert "since" in response.text


async def test_command_32_bad_since_is_400(api: httpx.AsyncClient) -> None:
    """Issue 9 defect 10: the same for 32 (``type,since``); a good since still answers."""
    response = await api.post("/api/command/DEMO", params={
        **CREDS, "command": "32", "parameters": f"*-Log-Notification,{TWENTY_DIGITS}"})
    assert response.status_code == 400, response.text
    ok = await api.post("/api/command/DEMO", params={
        **CREDS, "command": "32", "parameters": "*-Log-Notification,2026-01-01"})
    assert ok.status_code == 422  # answered by the server: no records
    assert "No historical data" in ok.text


@pytest.mark.parametrize("since_text", [TWENTY_DIGITS, "²", "1e9", "2026-13-01"])
async def test_historical_bad_since_is_400(api: httpx.AsyncClient, since_text: str) -> None:
    """Issue 9 defect 10: ``since`` of the historical endpoints is range-checked."""
    response = await api.get("/api/historical/DEMO", params={**CREDS, "since": since_text})
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("index", ["²", "7" * 5000])
async def test_features_with_a_strange_index_leave_the_line_out(
    relay: RelayUnderTest, api: httpx.AsyncClient, nursery: trio.Nursery, index: str
) -> None:
    """Issue 9 defect 10: a car answering C1 with index ``²`` or 5,000 digits was a 500."""
    car = await scripted_car(relay)
    pending = await start_call(nursery, api, "GET", "/api/features/DEMO", params=CREDS)
    await answer(car, "C1", "1,0,0,3,10", f"1,0,{index},3,0")
    assert assert_json(await finished(pending)) == [{"feature": 0, "value": "10"}]
    await car.aclose()


@pytest.mark.parametrize(("name", "value"), [
    ("current", "²"), ("current", "1" * 5000), ("current", " 16"), ("button", "-1"),
    ("mode", "STANDARD"), ("mode", "0"), ("action", "explode"),
])
async def test_control_numbers_and_enums_are_checked(
    api: httpx.AsyncClient, name: str, value: str
) -> None:
    """Issue 9 defect 10 and 16: only documented values reach the car (400 otherwise)."""
    path = "/api/homelink/DEMO" if name == "button" else "/api/charge/DEMO"
    response = await api.put(path, params={**CREDS, name: value})
    assert response.status_code == 400, response.text
    assert name in response.text


async def test_v4_telemetry_times_are_clamped_or_refused(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Issue 9 defect 10: ``since=0001-01-01T00:00:00+23:59`` was a 500."""
    headers = bearer(await make_token(api))
    url = f"{V4}/user/vehicles/DEMO/telemetry"
    body = assert_hal(await api.get(url, headers=headers,
                                    params={"since": "0001-01-01T00:00:00+23:59"}))
    assert body["since"] == "1970-01-01T00:00:00Z"
    body = assert_hal(await api.get(url, headers=headers, params={
        "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}))
    assert all(item["points"] == [] for item in body["_embedded"]["telemetry"])
    for bad in ("9999-12-31T23:59:59-23:59", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00",
                "²", "1" * 5000):
        response = await api.get(url, headers=headers, params={"since": bad})
        if bad.startswith("9999"):
            assert_hal(response)  # past 9999 after the offset: clamped
        else:
            assert_error(response, 400, "since")


async def test_rest_paths_answer_405_to_undeclared_methods(api: httpx.AsyncClient) -> None:
    """Issue 9 defect 16: TRACE on an API path is a 405 with Allow, not a 404."""
    response = await api.request("TRACE", "/api/vehicles", params=CREDS)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, OPTIONS"
    assert_text(await api.request("TRACE", "/api/nosuch"), 404, "Unrecognised API call")


# --- the parser itself: only ParamError, whatever the text --------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.integers(0, 10**6), st.integers(0, 10**6))
def test_whole_number_raises_only_param_error(text: str, low: int, high: int) -> None:
    """Issue 9 defect 10: any text is a number in range or a ParamError."""
    try:
        value = whole_number(text, "n", low, high)
    except ParamError:
        return
    assert low <= value <= high and text.isascii()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.from_regex(
    r"\A[0-9]{1,6}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z)?\Z")))
def test_times_raise_only_param_error(text: str) -> None:
    """Issue 9 defect 10: ``since`` and RFC 3339 parse, clamped to 1970-9999, or refuse."""
    for parse in (since, lambda t: rfc3339_seconds(t, "since")):
        try:
            value = parse(text)
        except ParamError:
            continue
        assert value is None or 0 <= value <= 253_402_300_799


def test_small_index() -> None:
    assert small_index("12") == 12
    assert small_index("²") is None
    assert small_index("9" * 5000) is None
    assert small_index("") is None
