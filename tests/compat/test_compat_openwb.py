"""openWB's OVMS module (Python, ``requests``): token setup and the SoC reads.

Its sequence: create an API token with a ``multipart/form-data`` body (the
``files=`` form of ``requests``, fields without file names) and the account
password in the query string; from then on authenticate with ``username`` + that
token; list the tokens and delete every one that is not its own; read status and
charge. Issue 10 items 7 and 9: the multipart fields used to be dropped (the
token was stored as ``notspecified``), and the list showed only digests, so
openWB deleted the very token it was using and its next read failed with 401.
"""

from __future__ import annotations

import httpx

from relay.db import token_hash
from relay.store.engines import is_postgres
from tests.conftest import OWNER, PASSWORD, RelayUnderTest
from tests.http_helpers import D_MSG, S_MSG, assert_json, assert_text, client, scripted_car

# What requests.post(url, files={...}) sends: a 32-hex-digit boundary, one part per
# field with only a Content-Disposition header, CRLF line ends.
BOUNDARY = "9a4f1c0e3b7d45e8a1f2c6b0d9e8f7a6"
APPLICATION = "openWB"
PURPOSE = "SoC Modul openWB chargepoint 1"
PERMIT = "auth,token.admin"


def requests_multipart(fields: dict[str, str]) -> bytes:
    body = b""
    for name, value in fields.items():
        body += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                 f"{value}\r\n").encode()
    return body + f"--{BOUNDARY}--\r\n".encode()


REQUESTS_HEADERS = {
    "User-Agent": "python-requests/2.31.0",
    "Accept": "*/*",
    "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
}


async def create_token(http: httpx.AsyncClient) -> dict[str, str]:
    response = await http.post(
        "/api/token", params={"username": OWNER, "password": PASSWORD},
        content=requests_multipart({"application": APPLICATION, "purpose": PURPOSE,
                                    "permit": PERMIT}),
        headers=REQUESTS_HEADERS)
    created: dict[str, str] = assert_json(response, 201)
    return created


async def test_openwb_token_setup_keeps_its_own_token(relay: RelayUnderTest) -> None:
    """openWB: multipart token creation, list, delete the foreign tokens, then read."""
    await scripted_car(relay, messages=[("S", S_MSG), ("D", D_MSG)])
    async with client(relay) as http:
        # A token of another application, made earlier (the phone app, a script).
        foreign = assert_json(await http.post(
            "/api/token", params={"username": OWNER, "password": PASSWORD,
                                  "application": "other"}), 201)
        created = await create_token(http)
        assert {k: created[k] for k in ("application", "purpose", "permit")} == {
            "application": APPLICATION, "purpose": PURPOSE, "permit": PERMIT}
        token = created["token"]
        mine = {"username": OWNER, "password": token}

        listed = assert_json(await http.get("/api/token", params=mine))
        assert {t["token"] for t in listed} == {token, _digest(foreign["token"])}
        for entry in listed:
            if entry["token"] != token:  # openWB: "not ours", delete it
                assert_json(await http.delete(f"/api/token/{entry['token']}", params=mine))

        # Only its own token is left, and it still works.
        listed = assert_json(await http.get("/api/token", params=mine))
        assert [(t["token"], t["application"], t["purpose"]) for t in listed] == [
            (token, APPLICATION, PURPOSE)]
        status = assert_json(await http.get("/api/status/DEMO", params=mine))
        charge = assert_json(await http.get("/api/charge/DEMO", params=mine))
        assert (status["soc"], charge["soc"], charge["chargestate"]) == ("30", "30", "done")
        # The foreign token is gone.
        assert_text(await http.get("/api/vehicles", params={
            "username": OWNER, "password": foreign["token"]}), 401, "Authentication failed")


async def test_token_list_shows_digests_to_other_callers(relay: RelayUnderTest) -> None:
    """Issue 10 item 9: only the token that authenticated the call is shown in clear;
    a password login sees every token's digest, and tokens stay stored hashed."""
    async with client(relay) as http:
        created = await create_token(http)
        listed = assert_json(await http.get(
            "/api/token", params={"username": OWNER, "password": PASSWORD}))
        assert [t["token"] for t in listed] == [_digest(created["token"])]
    stored = _stored_tokens(relay)
    assert created["token"] not in stored and _digest(created["token"]) in stored


async def test_unknown_permit_is_refused_naming_the_known_ones(relay: RelayUnderTest) -> None:
    """Issue 10 item 9: ``POST /api/token`` accepts only known permits (a typo used to
    mint a token that silently granted nothing)."""
    async with client(relay) as http:
        response = await http.post(
            "/api/token", params={"username": OWNER, "password": PASSWORD},
            content=requests_multipart({"application": APPLICATION, "permit": "auth,contrl"}),
            headers=REQUESTS_HEADERS)
        assert response.status_code == 400
        assert "unknown permit contrl" in response.text
        assert "token.admin" in response.text and "control" in response.text
        assert assert_json(await http.get(
            "/api/token", params={"username": OWNER, "password": PASSWORD})) == []


def _digest(token: str) -> str:
    return token_hash(token)


def _stored_tokens(relay: RelayUnderTest) -> str:
    """Everything the database holds, as text (the token must not be in it): a SQLite
    file's bytes (and its WAL's), or every row of every PostgreSQL table."""
    if is_postgres(relay.db):
        tables = relay.sql("SELECT table_name FROM information_schema.tables "
                           "WHERE table_schema='public'")
        return repr([relay.sql(f'SELECT * FROM "{name}"') for (name,) in tables])
    data = relay.db_path.read_bytes()
    wal = relay.db_path.with_name(relay.db_path.name + "-wal")
    if wal.exists():
        data += wal.read_bytes()
    return data.decode("latin-1")
