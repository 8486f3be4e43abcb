"""Fuzz targets for every sans-IO entry point of ``protocol/`` and the REST parameter parser.

Property (issue 9, attack suite): whatever a peer sends, an entry point answers with
its documented error type (``RemoteProtocolError`` for the wire, ``ProvisioningError``
for a provisioning record, ``ParamError`` for a parameter) or a result, never any
other exception. Hypothesis drives each target; CI runs a bounded number of
examples, a release check many more (docs/fuzzing-protocol.md):

    OVMS_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:randomly \\
        tests/hostile/test_hostile_fuzz_protocol.py
"""

from __future__ import annotations

import base64
import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    NEED_DATA,
    LocalProtocolError,
    Message,
    NewTPMS,
    RemoteProtocolError,
    ServerSession,
    crypto,
    parse_welcome,
)
from protocol.messages import TPMS, CommandResponse, Doors, Firmware, Location, Status
from protocol.provisioning import ProvisioningError, decode_record
from relay.params import ParamError, rfc3339_seconds, since, whole_number

EXAMPLES = int(os.environ.get("OVMS_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="OVMS_FUZZ_EXAMPLES" not in
                os.environ, suppress_health_check=[HealthCheck.too_slow])

# The worked example of tests/test_protocol_session.py (scheme 0 with carpass DEMO).
WELCOME0 = b"MP-C 0 abcdefghijklmnopqrstuv I19P/bXxwPgQEGdpIIzapg== DEMO\r\n"
WELCOME1 = b"MP-A 1 alice pw *\r\n"
SESSION_KEY = bytes.fromhex("b1d3c51bae20e0ad1eb1aa8a707fe5fe")
SERVER_TOKEN = "ABCDEFGHIJKLMNOPQRSTUV"

# Bytes shaped like the protocol, mixed with anything: welcome words, separators, digits.
_PIECES = st.sampled_from([b"MP-C ", b"MP-A ", b"MP-B ", b"AP-C ", b"0 ", b"1 ", b" ", b",",
                           b"\r\n", b"\n", b"\r", b"\x00", b"\xff", b"=", b"*", b"9" * 30,
                           b"DEMO", b"MP-0 ", b"\xc3\xa9", b"\x1b["])
WIRE = st.one_of(st.binary(max_size=300),
                 st.lists(st.one_of(_PIECES, st.binary(max_size=12)), max_size=30).map(b"".join))


def _drain(session: ServerSession) -> bool:
    """Every event the session has; only RemoteProtocolError may come out (after which
    the session is closed, and the relay closes the connection: False)."""
    for _ in range(10_000):
        try:
            event = session.next_event()
        except RemoteProtocolError:
            return False
        if event is NEED_DATA:
            return True
    return True


def _scheme0() -> ServerSession:
    server = ServerSession()
    server.receive_data(WELCOME0)
    server.next_event()
    server.accept_scheme0("DEMO", server_token=SERVER_TOKEN)
    return server


def _scheme1() -> ServerSession:
    server = ServerSession()
    server.receive_data(WELCOME1)
    server.next_event()
    server.accept_scheme1("alice", "DEMO", ["DEMO"])
    return server


@FUZZ
@given(WIRE)
def test_welcome_parsing(line: bytes) -> None:
    try:
        parse_welcome(line)
    except RemoteProtocolError:
        pass


@FUZZ
@given(WIRE)
def test_server_session_before_login(data: bytes) -> None:
    server = ServerSession()
    server.receive_data(data)
    _drain(server)


@FUZZ
@given(st.lists(WIRE, max_size=4))
def test_server_session_scheme1_plain_lines(chunks: list[bytes]) -> None:
    server = _scheme1()
    for chunk in chunks:
        server.receive_data(chunk)
        if not _drain(server):
            break


@FUZZ
@given(st.lists(st.one_of(WIRE, st.binary(max_size=200).map(lambda b: b"MP-0 " + b)),
                max_size=4), st.booleans())
def test_server_session_scheme0_encrypted_lines(payloads: list[bytes], raw: bool) -> None:
    """Encrypted with the session's real key (so decryption succeeds and the decoded text
    reaches the message parser), or sent raw (base64 and cipher errors)."""
    server = _scheme0()
    car = crypto.RC4Stream(SESSION_KEY)
    for payload in payloads:
        wire = payload if raw else base64.b64encode(car.apply(payload)) + b"\r\n"
        server.receive_data(wire)
        if not _drain(server):
            break


_CODES = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00")
_DATA = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=200)


@FUZZ
@given(_CODES, _DATA)
def test_message_encode_decode_round_trip(code: str, data: str) -> None:
    """What the server sends a scheme 1 app decodes to the same message (or the encoder
    refuses it with its documented error)."""
    server = _scheme1()
    msg = Message(code, data)
    try:
        wire = server.send(msg)
    except (LocalProtocolError, ValueError):
        return
    assert wire.endswith(b"\r\n")
    assert Message.parse(wire[:-2].decode("utf-8")) == msg


@FUZZ
@given(st.text(max_size=200))
def test_message_views_of_any_data(data: str) -> None:
    """The field views every consumer uses on stored car data never raise."""
    for view in (Status, Doors, Location, TPMS, Firmware, NewTPMS):
        view.from_data(data)
    # Value parsers say ValueError; only the session decides a connection is broken.
    try:
        CommandResponse.parse(data).is_last_line()
    except ValueError:
        pass
    try:
        Message.parse(data)
    except ValueError:
        pass


_B64 = st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=80)


@FUZZ
@given(st.text(max_size=40), st.one_of(_B64, st.text(max_size=40)), _B64,
       st.text(max_size=30))
def test_provisioning_record_decode(stoken: str, sdigest: str, provisioning: str,
                                    iccid: str) -> None:
    try:
        decode_record(stoken, sdigest, provisioning, iccid)
    except ProvisioningError:
        pass


_TIMEISH = st.from_regex(r"\A[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                         r"(\.[0-9]{1,12})?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?\Z")


@FUZZ
@given(st.one_of(st.text(max_size=60), _TIMEISH), st.integers(-5, 10**7),
       st.integers(-5, 10**12))
def test_rest_parameter_parser(text: str, low: int, high: int) -> None:
    for parse in (lambda: whole_number(text, "n", low, high), lambda: since(text),
                  lambda: rfc3339_seconds(text, "since")):
        try:
            parse()
        except ParamError:
            pass
