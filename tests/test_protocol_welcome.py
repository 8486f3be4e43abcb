"""parse_welcome: every accepted shape of a client's first line, and what is refused."""

from __future__ import annotations

import pytest

from protocol import (
    ClientType,
    ProvisionRequest,
    RemoteProtocolError,
    Scheme0Login,
    Scheme1Login,
    parse_welcome,
)

TOKEN = "abcdefghijklmnopqrstuv"
DIGEST = "I19P/bXxwPgQEGdpIIzapg=="
TYPES = [
    ("C", ClientType.CAR),
    ("A", ClientType.APP),
    ("B", ClientType.BATCH),
    ("S", ClientType.SERVER),
]


@pytest.mark.parametrize(("letter", "client_type"), TYPES)
def test_scheme0_each_client_type(letter: str, client_type: ClientType) -> None:
    line = f"MP-{letter} 0 {TOKEN} {DIGEST} DEMO".encode()
    assert parse_welcome(line) == Scheme0Login(client_type, TOKEN, DIGEST, "DEMO", "")


@pytest.mark.parametrize(("letter", "client_type"), TYPES)
def test_scheme1_each_client_type(letter: str, client_type: ClientType) -> None:
    line = f"MP-{letter} 1 alice s3cret DEMO".encode()
    assert parse_welcome(line) == Scheme1Login(client_type, "alice", "s3cret", "DEMO", "")


def test_client_type_labels() -> None:
    assert [t.label for t in ClientType] == ["car", "app", "batch", "server"]


def test_scheme0_vehicleid_upper_cased() -> None:
    login = parse_welcome(f"MP-A 0 {TOKEN} {DIGEST} demo-car1".encode())
    assert isinstance(login, Scheme0Login)
    assert login.vehicleid == "DEMO-CAR1"
    # Token and digest are case-sensitive and left alone.
    assert login.token == TOKEN and login.digest == DIGEST


def test_scheme1_vehicleid_upper_cased_username_not() -> None:
    login = parse_welcome(b"MP-A 1 Alice PassWord demo")
    assert isinstance(login, Scheme1Login)
    assert (login.username, login.password, login.vehicleid) == ("Alice", "PassWord", "DEMO")


def test_scheme1_star_vehicle() -> None:
    login = parse_welcome(b"MP-A 1 alice pw *")
    assert isinstance(login, Scheme1Login)
    assert login.vehicleid == "*"


@pytest.mark.parametrize(
    ("suffix", "rest"),
    [(" v3", "v3"), (" some extra words", "some extra words"), (" a  b", "a  b")],
)
def test_trailing_rest_kept(suffix: str, rest: str) -> None:
    login0 = parse_welcome(f"MP-C 0 {TOKEN} {DIGEST} DEMO{suffix}".encode())
    login1 = parse_welcome(f"MP-A 1 alice pw *{suffix}".encode())
    assert isinstance(login0, Scheme0Login) and login0.rest == rest
    assert isinstance(login1, Scheme1Login) and login1.rest == rest


def test_provision_request() -> None:
    assert parse_welcome(b"AP-C 0 my-ap-key") == ProvisionRequest(apkey="my-ap-key")


def test_scheme1_password_never_in_repr() -> None:
    login = parse_welcome(b"MP-A 1 alice hunter2-very-secret DEMO")
    assert isinstance(login, Scheme1Login)
    assert login.password == "hunter2-very-secret"
    assert "hunter2-very-secret" not in repr(login)
    assert "hunter2-very-secret" not in str(login)
    assert "alice" in repr(login)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b" ",
        b"garbage",
        b"GET / HTTP/1.1",
        b"\x00\x01\x02\x03",
        b"hello world this is not it",
        # unknown login scheme
        f"MP-C 5 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP-C 2 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP-C 00 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP-C x {TOKEN} {DIGEST} DEMO".encode(),
        # unknown client type / malformed head
        f"MP-X 0 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP-c 0 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP- 0 {TOKEN} {DIGEST} DEMO".encode(),
        f"MP-CC 0 {TOKEN} {DIGEST} DEMO".encode(),
        f"XP-C 0 {TOKEN} {DIGEST} DEMO".encode(),
        # too few fields, or empty ones
        b"MP-C",
        b"MP-C 0",
        f"MP-C 0 {TOKEN}".encode(),
        f"MP-C 0 {TOKEN} {DIGEST}".encode(),
        f"MP-C 0 {TOKEN} {DIGEST} ".encode(),
        f"MP-C 0  {TOKEN} {DIGEST} DEMO".encode(),
        b"MP-A 1 alice pw",
        b"MP-A 1 alice  DEMO",
        # non-ASCII
        f"MP-C 0 {TOKEN} {DIGEST} DÉMO".encode(),
        b"MP-A 1 alice p\xffw DEMO",
        # malformed provisioning requests
        b"AP-C",
        b"AP-C 0",
        b"AP-C 0 ",
        b"AP-C 1 key",
        b"AP-C 0 key extra",
    ],
)
def test_refused_with_reason(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_welcome(line)
    assert info.value.reason
    assert str(info.value) == info.value.reason


def test_unknown_scheme_reason_is_bounded() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_welcome(b"MP-C " + b"9" * 10_000 + b" a b c")
    assert len(info.value.reason) < 100
