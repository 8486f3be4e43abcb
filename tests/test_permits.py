"""Issue 11 item 4: one permission model (relay.permits), asked by v2, REST, v4 and /mqapi.

The table lists every permit form and what it grants; the end-to-end tests are the
two defects it fixes: a token with permit ``all`` was refused by REST, one with
``V2`` by v2 logins. Also imported (non-hex) API tokens at REST logins.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

from protocol import ClientType
from relay import permits
from relay.permits import ADMIN, CONTROL, MQTT, READ, SESSION, TOKEN_ADMIN, V2_LOGIN, V4
from tests.conftest import RelayUnderTest, StartRelay
from tests.http_helpers import CREDS, api, assert_json, assert_text
from tools.v2client import LoginRefused

__all__ = ["api"]  # fixtures

EVERYTHING = {READ, SESSION, V2_LOGIN, V4, MQTT, CONTROL, TOKEN_ADMIN, ADMIN}
# permit string -> the actions it grants
TABLE: list[tuple[str, set[str]]] = [
    ("*", EVERYTHING),
    ("all", EVERYTHING),
    ("ALL", EVERYTHING),
    ("auth,All", EVERYTHING),
    ("auth", {READ}),
    ("session", {READ, SESSION}),
    ("v2", {READ, V2_LOGIN}),
    ("V2", {READ, V2_LOGIN}),
    (" v2 , auth ", {READ, V2_LOGIN}),
    ("v3", {READ, MQTT}),
    ("mqtt", {READ, MQTT}),
    ("MQTT", {READ, MQTT}),
    ("v4", {READ, V4}),
    ("control", {READ, CONTROL}),
    ("token.admin", {READ, TOKEN_ADMIN}),
    ("Token.Admin", {READ, TOKEN_ADMIN}),
    ("admin", {READ, CONTROL, TOKEN_ADMIN, ADMIN}),
    ("auth,session,control", {READ, SESSION, CONTROL}),
    ("none", set()),
    ("NONE", set()),
    ("", set()),
    (" , ", set()),
    ("none,*", EVERYTHING),
    ("bogus", {READ}),  # a stored unknown word: a login, but no right
]


@pytest.mark.parametrize(("permit", "grants"), TABLE)
def test_every_permit_form_grants_exactly_this(permit: str, grants: set[str]) -> None:
    assert {action for action in permits.GRANTED_BY if permits.may(permit, action)} == grants
    assert permits.grants_nothing(permit) == (not grants)


def test_every_known_word_is_in_the_table() -> None:
    listed = {w.strip().lower() for permit, _ in TABLE for w in permit.split(",")}
    assert set(permits.KNOWN) <= listed


def test_vehicle_rights_need_the_owner_too() -> None:
    assert permits.may_on("demo", "control", CONTROL, "demo")
    assert not permits.may_on("demo", "control", CONTROL, "other")
    assert not permits.may_on("demo", "*", CONTROL, None)
    assert not permits.may_on("demo", "auth", CONTROL, "demo")


def test_minting_never_escalates() -> None:
    assert permits.covers("*", "control,v4") and permits.covers("all", "*")
    assert permits.covers("control", "auth,CONTROL,none")
    assert not permits.covers("control", "all") and not permits.covers("admin", "control")


@pytest.mark.parametrize("text", ["DEMO", "demo", "a_b-9", "X" * 32])
def test_valid_vehicle_ids(text: str) -> None:
    assert permits.vehicle_id(text) == text.upper()


@pytest.mark.parametrize("text", ["", "X" * 33, "A B", "A,B", "A/B", "..", "É", "A\n"])
def test_invalid_vehicle_ids(text: str) -> None:
    assert permits.vehicle_id(text) is None


async def new_token(api: httpx.AsyncClient, permit: str) -> str:
    token: str = assert_json(await api.post("/api/token", params={**CREDS, "permit": permit}),
                             201)["token"]
    return token


async def test_a_token_with_permit_all_may_control_over_rest(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Before: ``all`` logged in over v2 but REST refused it every right (403)."""
    as_all = {"username": "demo", "password": await new_token(api, "all")}
    # Command 30 is answered by the server (no car needed): no data yet is a 422.
    assert_text(await api.post("/api/command/DEMO", params={**as_all, "command": "30"}),
                422, "No GPRS utilisation data available")
    assert len(assert_json(await api.get("/api/token", params=as_all))) == 1


async def test_a_token_with_permit_v2_in_capitals_logs_in_over_v2(
    start_relay: StartRelay,
) -> None:
    """Before: v2 logins compared permit words case-sensitively and refused ``V2``."""
    relay = await start_relay(allow_plain_login=True)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{relay.handle.http_port}") as http:
        upper = await new_token(http, "V2")
        session_only = await new_token(http, "session")
    app = await relay.connect("DEMO", ClientType.APP, username="demo", password=upper)
    assert app.welcome is not None
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, username="demo", password=session_only)


def import_token(relay: RelayUnderTest, token: str, permit: str) -> None:
    """A token as tools/import_perl.py stores one from the Perl server: its SHA-256."""
    relay.sql("INSERT INTO tokens(token_hash, owner, application, purpose, permit, created) "
              "VALUES (?, ?, ?, ?, ?, ?)",
              hashlib.sha256(token.encode()).hexdigest(), "demo", "perl", "", permit,
              time.time())


async def test_an_imported_non_hex_token_logs_in_over_rest(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """Before: REST tried the token lookup only for 64 hex characters, so a token
    imported from the Perl server (any varchar(64)) was checked as a password."""
    token = "Perl-Token_with.any+chars=42"
    import_token(relay, token, "auth,control")
    as_token = {"username": "demo", "password": token}
    assert len(assert_json(await api.get("/api/vehicles", params=as_token))) == 2
    assert_text(await api.post("/api/command/DEMO", params={**as_token, "command": "30"}),
                422, "No GPRS utilisation data available")
    # Another owner's name with that token, or a token one character off: refused.
    assert_text(await api.get("/api/vehicles", params={"username": "other", "password": token}),
                401, "Authentication failed")
    assert_text(await api.get("/api/vehicles", params={"username": "demo",
                                                        "password": token + "x"}),
                401, "Authentication failed")


async def test_an_imported_token_with_permit_all_works_as_a_v4_bearer(
    relay: RelayUnderTest, api: httpx.AsyncClient
) -> None:
    """API v4 asks the same permission model: ``ALL`` grants v4; ``auth`` does not."""
    import_token(relay, "imported all", "ALL")
    import_token(relay, "imported auth", "auth")
    ok = await api.get("/api/v4/user", headers={"Authorization": "Bearer imported all"})
    assert ok.status_code == 200, ok.text
    refused = await api.get("/api/v4/user", headers={"Authorization": "Bearer imported auth"})
    assert refused.status_code == 403
