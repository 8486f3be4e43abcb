"""The worked scheme 0 example, reproduced byte for byte by both session sides."""

from __future__ import annotations

import base64
import json
import secrets
import string
from pathlib import Path

import pytest

from protocol import (
    NEED_DATA,
    ClientSession,
    ClientType,
    LocalProtocolError,
    Message,
    ServerSession,
    ServerWelcome,
    State,
    crypto,
)
from protocol.welcome import Scheme0Login

# The project's own copy of shared/vectors/handshake.json (refresh it from there).
VECTORS = json.loads((Path(__file__).parent / "vectors" / "handshake.json").read_text())

CARPASS: str = VECTORS["carpass"]
VEHICLEID: str = VECTORS["vehicleid"]
CLIENT_TOKEN: str = VECTORS["client_token"]
CLIENT_DIGEST: str = VECTORS["client_digest_b64"]
CLIENT_DIGEST_UNPADDED: str = VECTORS["client_digest_b64_unpadded"]
CLIENT_WELCOME: bytes = VECTORS["client_welcome"].encode()
CLIENT_WELCOME_UNPADDED: bytes = VECTORS["client_welcome_unpadded"].encode()
SERVER_TOKEN: str = VECTORS["server_token"]
SERVER_DIGEST: str = VECTORS["server_digest_b64"]
SERVER_DIGEST_UNPADDED: str = VECTORS["server_digest_b64_unpadded"]
SERVER_WELCOME: bytes = VECTORS["server_welcome"].encode()
SESSION_KEY = bytes.fromhex(VECTORS["session_key_hex"])

# (plain line including the "MP-0 " prefix, wire line without CRLF), in stream order.
CAR_TO_SERVER = [(v["plain"], v["wire"].encode()) for v in VECTORS["car_to_server"]]
SERVER_TO_CAR = [(v["plain"], v["wire"].encode()) for v in VECTORS["server_to_car"]]


def test_vector_file_is_complete() -> None:
    # The worked example still has what the tests below walk through.
    assert len(CAR_TO_SERVER) >= 4 and len(SERVER_TO_CAR) >= 3
    assert CLIENT_DIGEST == CLIENT_DIGEST_UNPADDED + "=="
    assert SERVER_DIGEST == SERVER_DIGEST_UNPADDED + "=="


def _msg(plain: str) -> Message:
    assert plain.startswith("MP-0 ")
    return Message.parse(plain[len("MP-0 ") :])


def _server_after_welcome() -> ServerSession:
    server = ServerSession()
    server.receive_data(CLIENT_WELCOME + b"\r\n")
    login = server.next_event()
    assert login == Scheme0Login(ClientType.CAR, CLIENT_TOKEN, CLIENT_DIGEST, VEHICLEID, "")
    assert server.state is State.AWAIT_AUTH
    return server


def _client() -> ClientSession:
    return ClientSession(ClientType.CAR, VEHICLEID, carpass=CARPASS, token=CLIENT_TOKEN)


# --- crypto -----------------------------------------------------------------


def test_token_digests() -> None:
    assert crypto.token_digest(CARPASS.encode(), CLIENT_TOKEN) == CLIENT_DIGEST
    assert crypto.token_digest(CARPASS.encode(), SERVER_TOKEN) == SERVER_DIGEST


def test_session_key_server_token_first() -> None:
    assert crypto.session_key(CARPASS.encode(), SERVER_TOKEN, CLIENT_TOKEN) == SESSION_KEY
    assert crypto.session_key(CARPASS.encode(), CLIENT_TOKEN, SERVER_TOKEN) != SESSION_KEY


def test_digest_matches_padded_and_unpadded() -> None:
    """Issue 10 item 1: both forms carry the same 16 bytes."""
    key = crypto.hmac_md5(CARPASS.encode(), CLIENT_TOKEN.encode())
    assert crypto.digest_matches(key, CLIENT_DIGEST)
    assert crypto.digest_matches(key, CLIENT_DIGEST_UNPADDED)
    assert not crypto.digest_matches(key, SERVER_DIGEST)
    assert not crypto.digest_matches(key, SERVER_DIGEST_UNPADDED)


@pytest.mark.parametrize(
    "bad",
    [
        "", "é" * 24, "=" * 24, CLIENT_DIGEST_UNPADDED[:-1], CLIENT_DIGEST + "=",
        CLIENT_DIGEST_UNPADDED + "=", CLIENT_DIGEST_UNPADDED + "A", CLIENT_DIGEST[:-3] + "*==",
        base64.b64encode(bytes(17)).decode(), base64.b64encode(bytes(15)).decode(),
    ],
)
def test_malformed_digests_never_match(bad: str) -> None:
    key = crypto.hmac_md5(CARPASS.encode(), CLIENT_TOKEN.encode())
    assert crypto.decode_digest(bad) is None
    assert not crypto.digest_matches(key, bad)  # and no exception


def test_decode_digest_both_forms() -> None:
    key = crypto.hmac_md5(CARPASS.encode(), CLIENT_TOKEN.encode())
    assert crypto.decode_digest(CLIENT_DIGEST) == key
    assert crypto.decode_digest(CLIENT_DIGEST_UNPADDED) == key
    assert crypto.unpadded_b64(key) == CLIENT_DIGEST_UNPADDED


def test_rc4_streams_with_the_session_key() -> None:
    tx = crypto.RC4Stream(SESSION_KEY)
    for plain, wire in CAR_TO_SERVER:
        assert base64.b64encode(tx.apply(plain.encode())) == wire
    rx = crypto.RC4Stream(SESSION_KEY)
    for plain, wire in SERVER_TO_CAR:
        assert rx.apply(base64.b64decode(wire)) == plain.encode()


def test_make_token_shape() -> None:
    alphabet = set(string.ascii_letters + string.digits + "+/")
    tokens = {crypto.make_token() for _ in range(50)}
    assert len(tokens) == 50  # random
    for token in tokens:
        assert len(token) == crypto.TOKEN_LENGTH == 22
        assert set(token) <= alphabet


def test_make_token_avoids(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force the first candidate to collide with `avoid`: a new one must be drawn.
    # (b"\x04\x10\x41" is base64 "BBBB".)
    draws = iter([bytes(17), (b"\x04\x10\x41" * 6)[:17]])
    monkeypatch.setattr(secrets, "token_bytes", lambda _n: next(draws))
    assert crypto.make_token(avoid="A" * 22) == "B" * 22


def test_make_token_draws_every_character_of_the_alphabet() -> None:
    """Each of the 22 characters carries 6 random bits: all 64 characters turn up
    at each position, the last ones included (no base64 padding or short bits)."""
    seen: list[set[str]] = [set() for _ in range(crypto.TOKEN_LENGTH)]
    for _ in range(3000):
        for i, char in enumerate(crypto.make_token()):
            seen[i].add(char)
    assert all(len(chars) == 64 for chars in seen)


# --- server side --------------------------------------------------------------


def test_server_reproduces_worked_example() -> None:
    server = _server_after_welcome()
    assert server.scheme0_digest_ok(CARPASS)
    assert server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN) == SERVER_WELCOME + b"\r\n"
    assert server.state is State.ESTABLISHED

    # Car -> server, all on one stream in one chunk.
    server.receive_data(b"".join(wire + b"\r\n" for _, wire in CAR_TO_SERVER))
    for plain, _ in CAR_TO_SERVER:
        assert server.next_event() == _msg(plain)
    assert server.next_event() is NEED_DATA

    # Server -> car.
    for plain, wire in SERVER_TO_CAR:
        assert server.send(_msg(plain)) == wire + b"\r\n"


def test_server_send_many_matches_sends() -> None:
    server = _server_after_welcome()
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    expected = b"".join(wire + b"\r\n" for _, wire in SERVER_TO_CAR)
    assert server.send_many(_msg(p) for p, _ in SERVER_TO_CAR) == expected


def test_server_accepts_the_unpadded_welcome() -> None:
    """Issue 10 item 1: the official Perl tools' welcome (b64digest, no padding)."""
    server = ServerSession()
    server.receive_data(CLIENT_WELCOME_UNPADDED + b"\r\n")
    login = server.next_event()
    assert login == Scheme0Login(
        ClientType.CAR, CLIENT_TOKEN, CLIENT_DIGEST_UNPADDED, VEHICLEID, "")
    assert server.scheme0_digest_ok(CARPASS)
    assert not server.scheme0_digest_ok(CARPASS + "x")
    # The server's own answer stays padded, as the public server sends it.
    assert server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN) == SERVER_WELCOME + b"\r\n"
    server.receive_data(b"".join(wire + b"\r\n" for _, wire in CAR_TO_SERVER))
    for plain, _ in CAR_TO_SERVER:
        assert server.next_event() == _msg(plain)


def test_client_accepts_an_unpadded_server_digest() -> None:
    client = _client()
    client.welcome()
    client.receive_data(f"MP-S 0 {SERVER_TOKEN} {SERVER_DIGEST_UNPADDED}\r\n".encode())
    assert client.next_event() == ServerWelcome(0)
    for plain, wire in CAR_TO_SERVER:
        assert client.send(_msg(plain)) == wire + b"\r\n"


def test_server_random_token_differs_from_client() -> None:
    server = _server_after_welcome()
    line = server.accept_scheme0(CARPASS)
    head, scheme, token, digest = line.rstrip(b"\r\n").decode().split(" ")
    assert (head, scheme) == ("MP-S", "0")
    assert token != CLIENT_TOKEN and len(token) == 22
    assert digest == crypto.token_digest(CARPASS.encode(), token)


# --- client side ------------------------------------------------------------------


def test_client_reproduces_worked_example() -> None:
    client = _client()
    assert client.welcome() == CLIENT_WELCOME + b"\r\n"
    client.receive_data(SERVER_WELCOME + b"\r\n")
    event = client.next_event()
    assert event == ServerWelcome(0)
    assert client.state is State.ESTABLISHED

    for plain, wire in CAR_TO_SERVER:
        assert client.send(_msg(plain)) == wire + b"\r\n"

    client.receive_data(b"".join(wire + b"\r\n" for _, wire in SERVER_TO_CAR))
    for plain, _ in SERVER_TO_CAR:
        assert client.next_event() == _msg(plain)
    assert client.next_event() is NEED_DATA


def test_client_and_server_talk_the_example_to_each_other() -> None:
    client = _client()
    server = ServerSession()
    server.receive_data(client.welcome())
    assert isinstance(server.next_event(), Scheme0Login)
    client.receive_data(server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN))
    client.next_event()
    for plain, wire in CAR_TO_SERVER:
        data = client.send(_msg(plain))
        assert data == wire + b"\r\n"
        server.receive_data(data)
        assert server.next_event() == _msg(plain)
    for plain, wire in SERVER_TO_CAR:
        data = server.send(_msg(plain))
        assert data == wire + b"\r\n"
        client.receive_data(data)
        assert client.next_event() == _msg(plain)


def test_client_welcome_only_once() -> None:
    client = _client()
    client.welcome()
    with pytest.raises(LocalProtocolError):
        client.welcome()
