"""Issue 10 item 7: form and multipart bodies are read as parameters, bounded."""

from __future__ import annotations

import httpx
import pytest

from relay.http.forms import MAX_PARAMS, FormError, body_params
from tests.conftest import OWNER, PASSWORD, RelayUnderTest
from tests.http_helpers import api, assert_json, assert_text

__all__ = ["api"]  # the fixture

MULTIPART = b"multipart/form-data; boundary=b0undary"


def multipart(*parts: bytes) -> bytes:
    return b"".join(b"--b0undary\r\n" + p + b"\r\n" for p in parts) + b"--b0undary--\r\n"


def field(name: str, value: str) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}'.encode()


def test_multipart_fields_are_read() -> None:
    body = multipart(field("application", "openWB"), field("purpose", "a, b"),
                     b'Content-Disposition: form-data; name="f"; filename="x.txt"\r\n'
                     b"Content-Type: text/plain\r\n\r\nfile text",
                     field("application", "second"))
    assert body_params(MULTIPART, body) == {
        "application": "openWB", "purpose": "a, b", "f": "file text"}
    quoted = b'multipart/form-data; boundary="b0undary"'
    assert body_params(quoted, body)["application"] == "openWB"


def test_form_bodies_by_content_type() -> None:
    assert body_params(b"application/x-www-form-urlencoded", b"a=1&b=x%20y") == {
        "a": "1", "b": "x y"}
    assert body_params(b"", b"a=1") == {"a": "1"}  # a script without a content type
    assert body_params(b"application/json; charset=utf-8", b'{"a": 1}') == {"a": "1"}
    assert body_params(MULTIPART, b"") == {}


@pytest.mark.parametrize("ctype, body, reason", [
    (b"multipart/form-data", multipart(field("a", "1")), "without a boundary"),
    (MULTIPART, b"garbage", "malformed"),
    (MULTIPART, multipart(*[field(f"f{i}", "v") for i in range(MAX_PARAMS + 1)]),
     "too many"),
    (MULTIPART, b"--b0undary\r\n" + b"X-A: b\r\n" * 20 + b"\r\nv\r\n--b0undary--\r\n",
     "malformed"),
    (b"application/x-www-form-urlencoded", b"&".join([b"a=1"] * (MAX_PARAMS + 1)),
     "too many"),
])
def test_bad_bodies_are_refused(ctype: bytes, body: bytes, reason: str) -> None:
    with pytest.raises(FormError, match=reason):
        body_params(ctype, body)


async def test_multipart_token_over_rest(api: httpx.AsyncClient) -> None:
    """The fields of a multipart body reach the handler (they were dropped)."""
    body = multipart(field("application", "wallbox"), field("purpose", "soc"))
    created = assert_json(await api.post(
        "/api/token", params={"username": OWNER, "password": PASSWORD}, content=body,
        headers={"content-type": MULTIPART.decode()}), 201)
    assert (created["application"], created["purpose"]) == ("wallbox", "soc")


async def test_credentials_in_a_multipart_body(api: httpx.AsyncClient) -> None:
    body = multipart(field("username", OWNER), field("password", PASSWORD),
                     field("application", "x"))
    created = assert_json(await api.post(
        "/api/token", content=body, headers={"content-type": MULTIPART.decode()}), 201)
    assert created["application"] == "x"


async def test_query_string_wins_over_the_body(api: httpx.AsyncClient) -> None:
    """As the public server's Mojolicious ``param``: body fields first, the query
    string's last, and the last value is the one read."""
    created = assert_json(await api.post(
        "/api/token", params={"username": OWNER, "password": PASSWORD,
                              "application": "from-query"},
        data={"application": "from-body", "purpose": "body-only"}), 201)
    assert (created["application"], created["purpose"]) == ("from-query", "body-only")


async def test_malformed_multipart_is_400(relay: RelayUnderTest, api: httpx.AsyncClient
                                          ) -> None:
    response = await api.post("/api/token", params={"username": OWNER, "password": PASSWORD},
                              content=b"garbage", headers={"content-type": MULTIPART.decode()})
    assert_text(response, 400, "malformed multipart body")
