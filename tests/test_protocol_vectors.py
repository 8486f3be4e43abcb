"""The worked scheme 0 example, reproduced byte for byte by both session sides."""

from __future__ import annotations

import base64
import secrets
import string

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

CARPASS = "DEMO"
VEHICLEID = "DEMO"
CLIENT_TOKEN = "abcdefghijklmnopqrstuv"
CLIENT_DIGEST = "I19P/bXxwPgQEGdpIIzapg=="
CLIENT_WELCOME = b"MP-C 0 abcdefghijklmnopqrstuv I19P/bXxwPgQEGdpIIzapg== DEMO"
SERVER_TOKEN = "ABCDEFGHIJKLMNOPQRSTUV"
SERVER_DIGEST = "uYfWa48MsR++o78IaSTglA=="
SERVER_WELCOME = b"MP-S 0 ABCDEFGHIJKLMNOPQRSTUV uYfWa48MsR++o78IaSTglA=="
SESSION_KEY = bytes.fromhex("b1d3c51bae20e0ad1eb1aa8a707fe5fe")

# (plain line including the "MP-0 " prefix, wire line without CRLF), in stream order.
CAR_TO_SERVER = [
    ("MP-0 A", b"9w0vmQYF"),
    (
        "MP-0 S80,K,220,70,charging,standard,280,270,13,0,0,0,0,0,0,0,0,0,0",
        b"0Dfkk+5HB4z3t2b1/NO5b0+TawZZIen0X7iypg0pyUScaHt/0EGRTnaIeaOTlP8qCs5TvfY6PZ8DkfcOXGIB8XmC",
    ),
    (
        "MP-0 L22.274165,114.185715,90,30,1,1,0,0",
        b"KBanWg+0h6QPm1iKe1JmmXgCNd90yambLvtxefRhL3Ct/sDFl74S1w==",
    ),
    (
        "MP-0 h1,0,*-LOG-Trip,1,86400,trip data",
        b"KddvGgN+UOuvDnPuwnnNnaye1WQaIvu5Fa5ZNEmuyzU4fRg8424=",
    ),
]
SERVER_TO_CAR = [
    ("MP-0 Z0", b"9w0vmQYerQ=="),
    ("MP-0 a", b"KpmO/jRe"),
    ("MP-0 h1", b"8YvReuem0g=="),
]


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


def test_digests_match() -> None:
    assert crypto.digests_match(CLIENT_DIGEST, CLIENT_DIGEST)
    assert not crypto.digests_match(CLIENT_DIGEST, SERVER_DIGEST)
    assert not crypto.digests_match(CLIENT_DIGEST, "")
    assert not crypto.digests_match(CLIENT_DIGEST, "é" * 24)  # non-ASCII: no exception


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
    draws = iter("A" * 22 + "B" * 22)
    monkeypatch.setattr(secrets, "choice", lambda _alphabet: next(draws))
    assert crypto.make_token(avoid="A" * 22) == "B" * 22


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
