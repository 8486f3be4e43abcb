"""evcc's OVMS vehicle (Go): cookie login, vehicle list, connect, status, charge, location.

Go's ``encoding/json`` is strict: a field declared ``float64 `json:"soc,string"```
must arrive as a JSON string holding a number, an ``int`` field as a JSON integer
and a ``string`` field as a JSON string; anything else fails the whole answer
(``cannot unmarshal number into Go struct field ... of type string``). The
fields below are what evcc reads, with the Go types of its structs; their
values are the public server's reference answers (docs/rest-api.md).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import OWNER, PASSWORD, RelayUnderTest
from tests.http_helpers import D_MSG, L_MSG, S_MSG, assert_json, client, scripted_car

# Go type of each field evcc decodes: "int" (JSON integer), "string" (JSON string),
# "float,string" / "int,string" (a JSON string holding that number: the ",string" tag).
CONNECT = {"v_net_connected": "int", "v_apps_connected": "int", "m_msgage_s": "int"}
VEHICLES = {"id": "string", "v_net_connected": "int"}
STATUS = {"odometer": "float,string", "soc": "float,string",
          "estimatedrange": "float,string", "m_msgage_s": "int"}
CHARGE = {"soc": "float,string", "chargestate": "string", "charge_etr_full": "int,string",
          "estimatedrange": "float,string", "cp_dooropen": "int", "m_msgage_s": "int"}
LOCATION = {"latitude": "float,string", "longitude": "float,string"}


def go_decode(data: Any, fields: dict[str, str]) -> dict[str, Any]:
    """What Go's json.Unmarshal would put into the struct, or AssertionError where it
    would fail. Every field evcc reads must be present (a missing one reads as zero:
    a wrong SoC, not an error, so the test insists)."""
    assert isinstance(data, dict), f"not a JSON object: {data!r}"
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        assert name in data, f"{name} missing"
        value = data[name]
        if kind == "int":
            assert isinstance(value, int) and not isinstance(value, bool), (name, value)
            out[name] = value
        elif kind == "string":
            assert isinstance(value, str), (name, value)
            out[name] = value
        else:
            number, _ = kind.split(",")
            assert isinstance(value, str), f"{name}: ,string needs a JSON string: {value!r}"
            out[name] = int(value) if number == "int" else float(value)
    return out


async def test_evcc_sequence_with_go_types(relay: RelayUnderTest) -> None:
    """evcc: login once with the cookie, then its reads; every answer decodes in Go."""
    car = await scripted_car(relay, messages=[("S", S_MSG), ("D", D_MSG), ("L", L_MSG)])
    async with car, client(relay) as http:
        response = await http.get("/api/cookie",
                                  params={"username": OWNER, "password": PASSWORD})
        assert (response.status_code, response.text) == (200, "Login ok\n")
        assert isinstance(http.cookies.get("ovmsapisession"), str)

        vehicles = assert_json(await http.get("/api/vehicles"))
        assert [go_decode(v, VEHICLES)["id"] for v in vehicles] == ["DEMO", "TESTCAR"]
        connect = go_decode(assert_json(await http.get("/api/vehicle/DEMO")), CONNECT)
        assert connect["v_net_connected"] == 1 and connect["v_apps_connected"] == 1

        status = go_decode(await _read(http, "status"), STATUS)
        charge = go_decode(await _read(http, "charge"), CHARGE)
        location = go_decode(await _read(http, "location"), LOCATION)
    assert (status["soc"], status["estimatedrange"], status["odometer"]) == (30.0, 85.0, 0.0)
    assert (charge["soc"], charge["chargestate"], charge["charge_etr_full"]) == (
        30.0, "done", 0)
    assert charge["cp_dooropen"] == 0
    assert (location["latitude"], location["longitude"]) == (22.270553, 114.186994)


async def test_go_decode_catches_what_go_refuses() -> None:
    """The checker itself: a number where Go wants a string fails, as in Go."""
    for bad, fields in (({"soc": 30}, {"soc": "float,string"}),
                        ({"chargestate": 1}, {"chargestate": "string"}),
                        ({"cp_dooropen": "0"}, {"cp_dooropen": "int"}),
                        ({"cp_dooropen": True}, {"cp_dooropen": "int"}),
                        ({}, {"soc": "float,string"})):
        try:
            go_decode(bad, fields)
        except AssertionError:
            continue
        raise AssertionError(f"accepted {bad}")


async def _read(http: httpx.AsyncClient, what: str) -> Any:
    return assert_json(await http.get(f"/api/{what}/DEMO"))
