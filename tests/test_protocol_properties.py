"""Property-based tests of protocol/: robustness against any input, and round trips."""

from __future__ import annotations

from collections.abc import Callable

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    NEED_DATA,
    TPMS,
    ClientSession,
    ClientType,
    Doors,
    Firmware,
    LineBuffer,
    Location,
    Message,
    NewTPMS,
    ProvisionAnswer,
    ProvisionRequest,
    RefusedMessage,
    RemoteProtocolError,
    Scheme0Login,
    Scheme1Login,
    ServerSession,
    ServerWelcome,
    State,
    Status,
)
from tests import protocol_helpers

CARPASS = "DEMO"
WELCOME0 = b"MP-C 0 abcdefghijklmnopqrstuv I19P/bXxwPgQEGdpIIzapg== DEMO\r\n"

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that look a bit like the protocol, so inputs get past the first checks.
FRAGMENTS = [
    b"MP-C 0 ",
    b"MP-A 1 ",
    b"MP-B ",
    b"MP-S 0 ",
    b"AP-C 0 ",
    b"AP-X",
    b"abcdefghijklmnopqrstuv ",
    b"I19P/bXxwPgQEGdpIIzapg== ",
    b"DEMO",
    b" ",
    b"*",
    b"\r\n",
    b"\n",
    b"\r",
    b"9w0vmQYF",
    b"==",
    b"MP-0 ",
    b"\xff",
]
protocolish = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), max_size=25
).map(b"".join)
stream = st.one_of(st.binary(max_size=300), protocolish)
chunked_stream = st.lists(stream, min_size=1, max_size=6)


def feed_and_drain(
    session: ServerSession | ClientSession,
    chunks: list[bytes],
    ok: Callable[[object], bool],
) -> None:
    """Feed chunks, draining events; only RemoteProtocolError may escape."""
    for chunk in chunks:
        session.receive_data(chunk)
        try:
            for _ in range(10_000):
                event = session.next_event()
                if event is NEED_DATA:
                    break
                assert ok(event), event
        except RemoteProtocolError as exc:
            assert exc.reason
            return


def message_ok(event: object) -> bool:
    """A message that can go on as one line, or one refused for a line break inside it."""
    if isinstance(event, RefusedMessage):
        return bool(event.reason)
    return isinstance(event, Message) and event.problem() is None


def server_event_ok(event: object) -> bool:
    return isinstance(event, (Scheme0Login, Scheme1Login, ProvisionRequest)) or message_ok(event)


def client_event_ok(event: object) -> bool:
    return isinstance(event, (ServerWelcome, ProvisionAnswer)) or message_ok(event)


# --- robustness -----------------------------------------------------------------------


@FAST
@given(chunks=chunked_stream, max_len=st.sampled_from([16, 64, 32 * 1024]))
def test_server_welcome_state_survives_any_bytes(chunks: list[bytes], max_len: int) -> None:
    server = ServerSession(max_line_length=max_len)
    feed_and_drain(server, chunks, server_event_ok)
    assert server.state in (State.AWAIT_WELCOME, State.AWAIT_AUTH, State.CLOSED)


@FAST
@given(chunks=chunked_stream, max_len=st.sampled_from([64, 32 * 1024]))
def test_established_scheme0_server_survives_any_bytes(chunks: list[bytes], max_len: int) -> None:
    server = ServerSession(max_line_length=max_len)
    server.receive_data(WELCOME0)
    server.next_event()
    server.accept_scheme0(CARPASS)
    feed_and_drain(server, chunks, message_ok)


@FAST
@given(chunks=chunked_stream, max_len=st.sampled_from([64, 32 * 1024]))
def test_established_scheme1_server_survives_any_bytes(chunks: list[bytes], max_len: int) -> None:
    server = ServerSession(max_line_length=max_len)
    server.receive_data(b"MP-A 1 alice pw *\r\n")
    server.next_event()
    server.accept_scheme1("alice", "DEMO", ["DEMO"])
    feed_and_drain(server, chunks, message_ok)


@FAST
@given(chunks=chunked_stream, scheme0=st.booleans())
def test_client_survives_any_bytes(chunks: list[bytes], scheme0: bool) -> None:
    if scheme0:
        client = ClientSession(ClientType.CAR, "DEMO", carpass=CARPASS)
    else:
        client = ClientSession(ClientType.APP, "*", username="alice", password="pw")
    client.welcome()
    feed_and_drain(client, chunks, client_event_ok)


# --- message round trips ---------------------------------------------------------------


line_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
    min_size=1,
    max_size=200,
)


def established_pair(scheme0: bool) -> tuple[ClientSession, ServerSession]:
    return protocol_helpers.established_pair(scheme0, carpass="pässwörd")


@FAST
@given(texts=st.lists(line_text, min_size=1, max_size=5), scheme0=st.booleans())
def test_any_message_round_trips(texts: list[str], scheme0: bool) -> None:
    client, server = established_pair(scheme0)
    msgs = [Message.parse(t) for t in texts]
    server.receive_data(client.send_many(msgs))
    client.receive_data(server.send_many(msgs))
    for msg in msgs:
        assert server.next_event() == msg
        assert client.next_event() == msg
    assert server.next_event() is NEED_DATA
    assert client.next_event() is NEED_DATA


raw_line = st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b"\r" not in b)


@FAST
@given(raw=raw_line, scheme0=st.booleans())
def test_any_bytes_in_a_message_relay_unchanged(raw: bytes, scheme0: bool) -> None:
    """A received message re-sent by the server carries exactly the same bytes."""
    car, server = established_pair(scheme0)
    app, app_server = established_pair(scheme0)
    msg = Message.parse(raw.decode("utf-8", "surrogateescape"))
    server.receive_data(car.send(msg))
    received = server.next_event()
    assert isinstance(received, Message)
    app.receive_data(app_server.send(received))
    relayed = app.next_event()
    assert isinstance(relayed, Message)
    assert relayed.text().encode("utf-8", "surrogateescape") == raw


# --- view round trips --------------------------------------------------------------------

field = st.one_of(
    st.integers(min_value=0, max_value=6).map(str),
    st.sampled_from(["", "1", "0", "01", "²", "FL", "200.0"]),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters=","),
        max_size=6,
    ),
)
field_list = st.lists(field, max_size=60)


@FAST
@given(fields=field_list)
def test_views_round_trip_any_fields(fields: list[str]) -> None:
    data = ",".join(fields)
    for cls in (Status, Doors, Location, TPMS, Firmware):
        view = cls.from_data(data)
        assert view.to_data() == data
        assert cls.from_data(view.to_data()) == view
        assert cls.from_message(view.to_message()) == view
        names = [f.name for f in attrs.fields(cls) if f.name != "extra"]
        values = data.split(",") if data else []
        assert view.as_dict() == {
            n: (values[i] if i < len(values) else None) for i, n in enumerate(names)
        }


@FAST
@given(fields=field_list)
def test_new_tpms_round_trips_any_fields(fields: list[str]) -> None:
    data = ",".join(fields)
    y = NewTPMS.from_data(data)
    assert y.to_data() == data
    assert NewTPMS.from_data(y.to_data()) == y


counts = st.integers(min_value=0, max_value=4)


@st.composite
def tpms_layouts(draw: st.DrawFn) -> str:
    """Well-formed Y data, with each validity flag present or not."""
    n = draw(counts)
    out = [str(n), *(f"W{i}" for i in range(n))]
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        k = draw(counts)
        out += [
            str(k),
            *draw(st.lists(st.sampled_from(["0", "1", "27", "200.5"]), min_size=k, max_size=k)),
        ]
        if draw(st.booleans()):
            out.append(draw(st.sampled_from(["0", "1"])))
    return ",".join(out)


@FAST
@given(data=tpms_layouts())
def test_new_tpms_round_trips_layouts(data: str) -> None:
    y = NewTPMS.from_data(data)
    assert y.names is not None
    assert y.to_data() == data


# --- framing -------------------------------------------------------------------------


def reference_lines(data: bytes, max_len: int) -> tuple[list[bytes], bool]:
    """What a LineBuffer must produce: the complete lines, and whether it must refuse."""
    *complete, pending = data.split(b"\n")
    lines: list[bytes] = []
    for line in complete:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > max_len:
            return lines, True
        lines.append(line)
    excess = len(pending) - max_len
    over = excess > 1 or (excess == 1 and not pending.endswith(b"\r"))
    return lines, over


def run_linebuffer(chunks: list[bytes], max_len: int) -> tuple[list[bytes], bool]:
    lb = LineBuffer(max_len)
    lines: list[bytes] = []
    try:
        for chunk in chunks:
            lb.feed(chunk)
            while (line := lb.next_line()) is not None:
                lines.append(line)
    except RemoteProtocolError:
        return lines, True
    return lines, False


line_bytes = st.lists(
    st.one_of(st.sampled_from([b"\r\n", b"\n", b"\r", b"x", b"yy"]), st.binary(max_size=10)),
    max_size=40,
).map(b"".join)


@FAST
@given(
    data=line_bytes,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
    max_len=st.sampled_from([4, 8, 32 * 1024]),
)
def test_linebuffer_split_invariance(data: bytes, cuts: list[int], max_len: int) -> None:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = run_linebuffer([data], max_len)
    split = run_linebuffer(chunks, max_len)
    byte_by_byte = run_linebuffer([data[i : i + 1] for i in range(len(data))], max_len)
    assert whole == split == byte_by_byte == reference_lines(data, max_len)
