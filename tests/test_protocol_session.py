"""ServerSession / ClientSession state machines, framing edge cases and round trips."""

from __future__ import annotations

import base64

import pytest

from protocol import (
    MAX_LINE_LENGTH,
    NEED_DATA,
    ClientSession,
    ClientType,
    LineBuffer,
    LocalProtocolError,
    Message,
    ProvisionAnswer,
    ProvisionRequest,
    RemoteProtocolError,
    Scheme0Login,
    Scheme1Login,
    ServerSession,
    ServerWelcome,
    State,
    crypto,
)

CARPASS = "DEMO"
CLIENT_TOKEN = "abcdefghijklmnopqrstuv"
SERVER_TOKEN = "ABCDEFGHIJKLMNOPQRSTUV"
WELCOME0 = b"MP-C 0 abcdefghijklmnopqrstuv I19P/bXxwPgQEGdpIIzapg== DEMO\r\n"
BAD_DIGEST_WELCOME0 = b"MP-C 0 abcdefghijklmnopqrstuv AAAAAAAAAAAAAAAAAAAAAA== DEMO\r\n"
WELCOME1 = b"MP-A 1 alice pw *\r\n"
SESSION_KEY = bytes.fromhex("b1d3c51bae20e0ad1eb1aa8a707fe5fe")


def drain(session: ServerSession | ClientSession) -> list[object]:
    events: list[object] = []
    while (event := session.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def scheme0_server() -> ServerSession:
    server = ServerSession()
    server.receive_data(WELCOME0)
    assert isinstance(server.next_event(), Scheme0Login)
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    return server


def scheme1_server() -> ServerSession:
    server = ServerSession()
    server.receive_data(WELCOME1)
    assert isinstance(server.next_event(), Scheme1Login)
    server.accept_scheme1("alice", "DEMO", ["DEMO"])
    return server


def car_stream() -> crypto.RC4Stream:
    """The car's transmit stream for the worked example's session key."""
    return crypto.RC4Stream(SESSION_KEY)


def test_a_stream_pair_is_two_independent_streams_of_one_key() -> None:
    """Issue 11: the receive and send streams share the key's algorithm object only."""
    rx, tx = crypto.RC4Stream.pair(SESSION_KEY)
    first = car_stream().apply(b"MP-0 A")
    assert tx.apply(b"MP-0 A") == first
    assert tx.apply(b"MP-0 A") != first  # tx went on
    assert rx.apply(b"MP-0 A") == first  # rx did not move with it


# --- welcome and authentication -------------------------------------------------


def test_initial_states() -> None:
    assert ServerSession().state is State.AWAIT_WELCOME
    assert ServerSession().login is None
    assert ClientSession(ClientType.CAR, "DEMO", carpass="x").state is State.AWAIT_WELCOME


def test_need_data_before_a_full_line() -> None:
    server = ServerSession()
    assert server.next_event() is NEED_DATA
    server.receive_data(WELCOME0[:-2])
    assert server.next_event() is NEED_DATA
    server.receive_data(WELCOME0[-2:])
    assert isinstance(server.next_event(), Scheme0Login)
    assert repr(NEED_DATA) == "NEED_DATA"


def test_lines_after_scheme0_welcome_are_held_until_accept() -> None:
    tx = car_stream()
    wire = base64.b64encode(tx.apply(b"MP-0 A")) + b"\r\n"
    server = ServerSession()
    server.receive_data(WELCOME0 + wire)
    login = server.next_event()
    assert isinstance(login, Scheme0Login)
    assert server.login == login
    assert server.state is State.AWAIT_AUTH
    # Held, not parsed as a welcome nor decrypted yet.
    assert server.next_event() is NEED_DATA
    assert server.next_event() is NEED_DATA
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    # Decided: the session no longer holds the login's token and digest.
    assert server.login is None
    assert server.next_event() == Message("A")
    assert server.next_event() is NEED_DATA


def test_a_rejected_login_is_forgotten() -> None:
    server = ServerSession()
    server.receive_data(WELCOME0)
    assert isinstance(server.next_event(), Scheme0Login)
    server.reject()
    assert server.login is None
    assert server.state is State.CLOSED


def test_lines_after_scheme1_welcome_are_held_until_accept() -> None:
    server = ServerSession()
    server.receive_data(WELCOME1 + b"A\r\nS80,K\r\n")
    assert isinstance(server.next_event(), Scheme1Login)
    assert server.next_event() is NEED_DATA
    server.accept_scheme1("alice", "DEMO", [])
    assert drain(server) == [Message("A"), Message("S", "80,K")]


def test_garbage_held_during_auth_is_not_an_error_until_accept() -> None:
    server = ServerSession()
    server.receive_data(WELCOME0 + b"!!! not base64 !!!\r\n")
    server.next_event()
    assert server.next_event() is NEED_DATA
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_wrong_digest() -> None:
    server = ServerSession()
    server.receive_data(BAD_DIGEST_WELCOME0)
    server.next_event()
    assert not server.scheme0_digest_ok(CARPASS)
    with pytest.raises(LocalProtocolError):
        server.accept_scheme0(CARPASS)
    assert server.state is State.AWAIT_AUTH


def test_digest_made_with_another_carpass() -> None:
    server = ServerSession()
    server.receive_data(WELCOME0)
    server.next_event()
    assert server.scheme0_digest_ok("DEMO")
    assert not server.scheme0_digest_ok("demo")
    assert not server.scheme0_digest_ok("")
    with pytest.raises(LocalProtocolError):
        server.accept_scheme0("OTHER")


def test_server_token_must_differ_from_client_token() -> None:
    server = ServerSession()
    server.receive_data(WELCOME0)
    server.next_event()
    with pytest.raises(LocalProtocolError):
        server.accept_scheme0(CARPASS, server_token=CLIENT_TOKEN)


def test_deciding_without_a_pending_login() -> None:
    server = ServerSession()
    with pytest.raises(LocalProtocolError):
        server.scheme0_digest_ok(CARPASS)
    with pytest.raises(LocalProtocolError):
        server.accept_scheme0(CARPASS)
    with pytest.raises(LocalProtocolError):
        server.accept_scheme1("alice", "DEMO", [])


def test_accept_of_the_wrong_scheme() -> None:
    s0 = ServerSession()
    s0.receive_data(WELCOME0)
    s0.next_event()
    with pytest.raises(LocalProtocolError):
        s0.accept_scheme1("alice", "DEMO", [])
    s1 = ServerSession()
    s1.receive_data(WELCOME1)
    s1.next_event()
    with pytest.raises(LocalProtocolError):
        s1.accept_scheme0(CARPASS)
    with pytest.raises(LocalProtocolError):
        s1.scheme0_digest_ok(CARPASS)


def test_cannot_accept_twice() -> None:
    server = scheme0_server()
    with pytest.raises(LocalProtocolError):
        server.accept_scheme0(CARPASS)


def test_reject_closes() -> None:
    server = ServerSession()
    server.receive_data(WELCOME1)
    server.next_event()
    server.reject()
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.next_event()
    with pytest.raises(LocalProtocolError):
        server.send(Message("Z", "0"))


def test_send_before_established() -> None:
    server = ServerSession()
    with pytest.raises(LocalProtocolError):
        server.send(Message("Z", "0"))
    server.receive_data(WELCOME0)
    server.next_event()
    with pytest.raises(LocalProtocolError) as info:
        server.send(Message("Z", "0"))
    assert "await-auth" in info.value.reason
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS)
    with pytest.raises(LocalProtocolError):
        client.send(Message("A"))
    client.welcome()
    with pytest.raises(LocalProtocolError):
        client.send_many([Message("A")])


def test_scheme1_accept_line_and_plain_lines() -> None:
    server = ServerSession()
    server.receive_data(b"MP-A 1 user pw veh\r\n")
    login = server.next_event()
    assert login == Scheme1Login(ClientType.APP, "user", "pw", "VEH", "")
    assert server.accept_scheme1("user", "VEH", ["V1", "V2"]) == b"MP-S 1 user VEH V1 V2\r\n"
    assert server.state is State.ESTABLISHED
    assert server.send(Message("Z", "1")) == b"Z1\r\n"
    assert server.send_many([Message("a"), Message("S", "1,2")]) == b"a\r\nS1,2\r\n"
    server.receive_data(b"C10\r\nA\r\n")
    assert drain(server) == [Message("C", "10"), Message("A")]


def test_scheme1_accept_without_vehicle_list() -> None:
    server = ServerSession()
    server.receive_data(WELCOME1)
    server.next_event()
    assert server.accept_scheme1("alice", "*", []) == b"MP-S 1 alice *\r\n"


# --- malformed lines once established ----------------------------------------------


@pytest.mark.parametrize(
    "line",
    [b"!!!!", b"=9w0vmQYF", b"9w0v=mQYF", b"9w0vmQY", b"9w0v mQYF", b"\xff\xfe", b"9w0vmQYF\x00"],
)
def test_line_that_is_not_base64(line: bytes) -> None:
    server = scheme0_server()
    server.receive_data(line + b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert info.value.reason
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.next_event()


def test_line_without_mp0_prefix_after_decryption() -> None:
    server = scheme0_server()
    wire = base64.b64encode(car_stream().apply(b"XX-0 A"))
    server.receive_data(wire + b"\r\n")
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert "MP-0" in info.value.reason
    assert server.state is State.CLOSED


def test_line_encrypted_with_another_key() -> None:
    server = scheme0_server()
    wrong = crypto.RC4Stream(crypto.session_key(b"OTHER", SERVER_TOKEN, CLIENT_TOKEN))
    server.receive_data(base64.b64encode(wrong.apply(b"MP-0 A")) + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_line_with_prefix_but_no_code() -> None:
    server = scheme0_server()
    server.receive_data(base64.b64encode(car_stream().apply(b"MP-0 ")) + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_garbage_welcome_closes() -> None:
    server = ServerSession()
    server.receive_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()
    assert server.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        server.next_event()


# --- line length bound -------------------------------------------------------------------


@pytest.mark.parametrize("terminator", [b"\r\n", b"\n"])
@pytest.mark.parametrize("length", [MAX_LINE_LENGTH - 1, MAX_LINE_LENGTH])
def test_line_up_to_the_bound_passes(terminator: bytes, length: int) -> None:
    server = scheme1_server()
    server.receive_data(b"P" + b"x" * (length - 1) + terminator)
    event = server.next_event()
    assert isinstance(event, Message)
    assert len(event.text()) == length


@pytest.mark.parametrize("terminator", [b"\r\n", b"\n"])
def test_over_long_terminated_line(terminator: bytes) -> None:
    server = scheme1_server()
    server.receive_data(b"P" * (MAX_LINE_LENGTH + 1) + terminator)
    with pytest.raises(RemoteProtocolError) as info:
        server.next_event()
    assert str(MAX_LINE_LENGTH) in info.value.reason
    assert server.state is State.CLOSED


def test_over_long_unterminated_line() -> None:
    server = scheme1_server()
    server.receive_data(b"P" * MAX_LINE_LENGTH)
    assert server.next_event() is NEED_DATA
    server.receive_data(b"P")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_over_long_unterminated_welcome() -> None:
    server = ServerSession()
    server.receive_data(b"M" * (MAX_LINE_LENGTH + 10))
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_custom_bound_on_session() -> None:
    server = ServerSession(max_line_length=64)
    server.receive_data(b"MP-A 1 alice pw " + b"V" * 100 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        server.next_event()


def test_linebuffer_bound_edges() -> None:
    lb = LineBuffer(10)
    lb.feed(b"x" * 10)
    assert lb.next_line() is None
    lb.feed(b"\r")  # a full-length line waiting for its LF
    assert lb.next_line() is None
    lb.feed(b"\n")
    assert lb.next_line() == b"x" * 10
    assert lb.pending == 0

    lb = LineBuffer(10)
    lb.feed(b"x" * 11)
    with pytest.raises(RemoteProtocolError):
        lb.next_line()

    lb = LineBuffer(10)
    lb.feed(b"x" * 10 + b"\ry")
    with pytest.raises(RemoteProtocolError):
        lb.next_line()

    lb = LineBuffer(10)
    lb.feed(b"x" * 10 + b"\r\r\n")  # 11 bytes before the CRLF
    with pytest.raises(RemoteProtocolError):
        lb.next_line()


def test_linebuffer_second_line_checked_too() -> None:
    lb = LineBuffer(10)
    lb.feed(b"short\r\n" + b"y" * 20 + b"\r\n")
    assert lb.next_line() == b"short"
    with pytest.raises(RemoteProtocolError):
        lb.next_line()


def test_linebuffer_pending_and_terminators() -> None:
    lb = LineBuffer()
    lb.feed(b"a\r\nb\nc\r")
    assert lb.next_line() == b"a"
    assert lb.next_line() == b"b"
    assert lb.next_line() is None
    assert lb.pending == 2
    lb.feed(b"\n\n")
    assert lb.next_line() == b"c"
    assert lb.next_line() == b""
    assert lb.pending == 0
    lb.feed(b"inner\rcr\n")
    assert lb.next_line() == b"inner\rcr"  # only a CR right before the LF is a terminator


# --- stream handling -------------------------------------------------------------------


def test_byte_by_byte() -> None:
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS, token=CLIENT_TOKEN)
    server = ServerSession()
    events: list[object] = []
    for b in client.welcome():
        assert server.next_event() is NEED_DATA
        server.receive_data(bytes([b]))
    events.append(server.next_event())
    assert isinstance(events[0], Scheme0Login)
    for b in server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN):
        assert client.next_event() is NEED_DATA
        client.receive_data(bytes([b]))
    assert client.next_event() == ServerWelcome(0)
    msgs = [Message("A"), Message("S", "80,K,220"), Message("L", "22.27,114.18")]
    data = client.send_many(msgs)
    got: list[object] = []
    for b in data:
        server.receive_data(bytes([b]))
        got += drain(server)
    assert got == msgs


def test_bare_lf_and_crlf_mixed() -> None:
    server = ServerSession()
    server.receive_data(WELCOME1.replace(b"\r\n", b"\n"))
    assert isinstance(server.next_event(), Scheme1Login)
    server.accept_scheme1("alice", "DEMO", [])
    server.receive_data(b"A\nB\r\nC\n")
    assert drain(server) == [Message("A"), Message("B"), Message("C")]


def test_bare_lf_scheme0() -> None:
    server = ServerSession()
    server.receive_data(WELCOME0.replace(b"\r\n", b"\n"))
    server.next_event()
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    server.receive_data(b"9w0vmQYF\n")
    assert server.next_event() == Message("A")


def test_blank_lines_skipped() -> None:
    server = ServerSession()
    server.receive_data(b"\r\n\n\r\n" + WELCOME0 + b"\r\n\n")
    assert isinstance(server.next_event(), Scheme0Login)
    server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN)
    server.receive_data(b"\r\n\n9w0vmQYF\r\n\r\n")
    assert server.next_event() == Message("A")
    assert server.next_event() is NEED_DATA


def test_blank_lines_do_not_advance_the_cipher() -> None:
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS, token=CLIENT_TOKEN)
    client.receive_data(b"\r\nMP-S 0 ABCDEFGHIJKLMNOPQRSTUV uYfWa48MsR++o78IaSTglA==\r\n\n")
    assert client.next_event() == ServerWelcome(0)
    client.receive_data(b"\r\n9w0vmQYerQ==\r\n\n\nKpmO/jRe\n")
    assert drain(client) == [Message("Z", "0"), Message("a")]


# --- auto-provisioning --------------------------------------------------------------


def test_provision_answer_then_ap_x() -> None:
    server = ServerSession()
    server.receive_data(b"AP-C 0 key1\r\nAP-C 0 key1\r\n")
    assert server.next_event() == ProvisionRequest("key1")
    assert server.state is State.AWAIT_WELCOME
    answer = server.answer_provision(("stoken", "sdigest", "prov"))
    assert answer == b"AP-S 0 stoken sdigest prov\r\n"
    assert server.next_event() == ProvisionRequest("key1")
    assert server.answer_provision(("stoken", "sdigest", "prov")) == b"AP-X\r\n"


def test_provision_unknown_key() -> None:
    server = ServerSession()
    server.receive_data(b"AP-C 0 nope\r\n")
    assert server.next_event() == ProvisionRequest("nope")
    assert server.answer_provision(None) == b"AP-X\r\n"
    # a miss also uses up the connection's one chance
    assert server.answer_provision(("a", "b", "c")) == b"AP-X\r\n"


def test_login_after_provisioning() -> None:
    server = ServerSession()
    server.receive_data(b"AP-C 0 key1\r\n" + WELCOME0)
    assert isinstance(server.next_event(), ProvisionRequest)
    server.answer_provision(None)
    assert isinstance(server.next_event(), Scheme0Login)
    assert server.state is State.AWAIT_AUTH


def test_client_sees_provision_answers() -> None:
    server = ServerSession()
    server.receive_data(b"AP-C 0 k\r\n")
    server.next_event()
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS)
    client.receive_data(server.answer_provision(("tok", "dig", "prov")))
    client.receive_data(server.answer_provision(("tok", "dig", "prov")))
    assert client.next_event() == ProvisionAnswer(True, ("tok", "dig", "prov"))
    assert client.next_event() == ProvisionAnswer(False)
    assert client.state is State.AWAIT_WELCOME


# --- client <-> server ----------------------------------------------------------------


def test_round_trip_scheme0() -> None:
    client = ClientSession(ClientType.APP, "demo", carpass="s3cret pass")
    server = ServerSession()
    server.receive_data(client.welcome())
    login = server.next_event()
    assert isinstance(login, Scheme0Login)
    assert login.client_type is ClientType.APP
    assert login.token == client.token
    assert login.vehicleid == "DEMO"
    assert server.scheme0_digest_ok("s3cret pass")
    client.receive_data(server.accept_scheme0("s3cret pass"))
    assert client.next_event() == ServerWelcome(0)
    assert client.state is State.ESTABLISHED
    for i in range(20):
        up = Message("C", f"{i},some,args")
        down = Message("c", f"{i},0,ok")
        server.receive_data(client.send(up))
        client.receive_data(server.send(down))
        assert server.next_event() == up
        assert client.next_event() == down


def test_round_trip_scheme1() -> None:
    client = ClientSession(ClientType.APP, "*", username="alice", password="pw")
    welcome = client.welcome()
    assert welcome == b"MP-A 1 alice pw *\r\n"
    server = ServerSession()
    server.receive_data(welcome)
    login = server.next_event()
    assert isinstance(login, Scheme1Login)
    client.receive_data(server.accept_scheme1("alice", "V1", ["V1", "V2", "V3"]))
    assert client.next_event() == ServerWelcome(1, ("V1", "V2", "V3"))
    server.receive_data(client.send(Message("C", "1")))
    client.receive_data(server.send(Message("c", "1,0,0,3,x")))
    assert server.next_event() == Message("C", "1")
    assert client.next_event() == Message("c", "1,0,0,3,x")


def test_client_rejects_server_digest_of_another_carpass() -> None:
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS, token=CLIENT_TOKEN)
    server = ServerSession()
    server.receive_data(
        ClientSession(ClientType.CAR, "DEMO", carpass="OTHER", token=CLIENT_TOKEN).welcome()
    )
    server.next_event()
    client.receive_data(server.accept_scheme0("OTHER", server_token=SERVER_TOKEN))
    with pytest.raises(RemoteProtocolError) as info:
        client.next_event()
    assert "digest" in info.value.reason
    assert client.state is not State.ESTABLISHED


@pytest.mark.parametrize(
    "line",
    [
        b"garbage\r\n",
        b"MP-S 0\r\n",
        b"MP-S 0 tok\r\n",
        b"MP-S 1 alice DEMO\r\n",  # scheme 1 answer to a scheme 0 login
        "MP-S 0 é abc\r\n".encode(),
        b"MP-S 0 \xff\xfe abc\r\n",
    ],
)
def test_client_rejects_bad_server_welcome(line: bytes) -> None:
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS)
    client.receive_data(line)
    with pytest.raises(RemoteProtocolError):
        client.next_event()


def test_scheme1_client_rejects_scheme0_welcome() -> None:
    client = ClientSession(ClientType.APP, "*", username="alice", password="pw")
    client.receive_data(b"MP-S 0 ABCDEFGHIJKLMNOPQRSTUV uYfWa48MsR++o78IaSTglA==\r\n")
    with pytest.raises(RemoteProtocolError):
        client.next_event()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"username": "alice"},
        {"password": "pw"},
        {"carpass": "x", "username": "alice", "password": "pw"},
    ],
)
def test_client_needs_exactly_one_credential(kwargs: dict[str, str]) -> None:
    with pytest.raises(LocalProtocolError):
        ClientSession(ClientType.APP, "DEMO", **kwargs)  # type: ignore[arg-type]


def test_client_random_token() -> None:
    a = ClientSession(ClientType.CAR, "DEMO", carpass="x")
    b = ClientSession(ClientType.CAR, "DEMO", carpass="x")
    assert a.token != b.token and len(a.token) == 22


# --- non-UTF-8 survives ---------------------------------------------------------------


RAW = b"Pna\xefve \xff\xfe caf\xc3\xa9 \x80,\x00"


def test_non_utf8_scheme1_relay_unchanged() -> None:
    server = scheme1_server()
    server.receive_data(RAW + b"\r\n")
    msg = server.next_event()
    assert isinstance(msg, Message)
    assert msg.code == "P"
    assert "café" in msg.data
    assert server.send(msg) == RAW + b"\r\n"


def test_non_utf8_scheme0_round_trip() -> None:
    client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS, token=CLIENT_TOKEN)
    server = ServerSession()
    server.receive_data(client.welcome())
    server.next_event()
    client.receive_data(server.accept_scheme0(CARPASS, server_token=SERVER_TOKEN))
    client.next_event()
    # Decode as the server would, send it on, and compare raw plaintext bytes.
    text = RAW.decode("utf-8", "surrogateescape")
    up = Message.parse(text)
    server.receive_data(client.send(up))
    got = server.next_event()
    assert got == up
    assert isinstance(got, Message)
    wire = server.send(got)
    rx = car_stream()  # the server's transmit stream uses the same key
    assert rx.apply(base64.b64decode(wire.rstrip(b"\r\n"))) == b"MP-0 " + RAW
    client.receive_data(wire)
    assert client.next_event() == up
