"""WebSocket ``/apiv2`` on the plain (ws://) and TLS (wss://) v2 ports, with real frames."""

from __future__ import annotations

import base64
import os
from typing import Any

import attrs
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from protocol import ClientSession, ClientType
from protocol import Message as V2Message
from tests.conftest import OWNER, PASSWORD, T_NEVER, VEHICLES, RelayUnderTest, StartRelay
from tests.settle import pinged
from tests.test_tls import (
    CertFiles,
    TLSRelay,
    cert_files,
    expect,
    start_tls_relay,
)
from tools.v2client import LoginRefused, V2Client

__all__ = ["cert_files"]  # fixtures, imported for use here

S_MSG = "80,K,0,0,done"
D_MSG = "160,8,4"


@attrs.define
class Ports:
    """Where to reach the relay's v2 protocol, over ws:// or wss://."""

    relay: RelayUnderTest
    tls: TLSRelay | None

    @property
    def port(self) -> int:
        if self.tls is None:
            return self.relay.handle.v2_port
        return self.tls.tls_port

    async def tcp(self) -> trio.abc.Stream:
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        if self.tls is not None:
            tls = trio.SSLStream(stream, self.tls.context(), server_hostname="127.0.0.1",
                                 https_compatible=True)
            await tls.do_handshake()
            stream = tls
        return stream

    async def ws_client(
        self, vehicleid: str = "DEMO", client_type: ClientType = ClientType.APP, **kwargs: Any
    ) -> V2Client:
        if "username" not in kwargs:
            kwargs.setdefault("carpass", VEHICLES[vehicleid])
        ssl_context = None if self.tls is None else self.tls.context()
        return await V2Client.connect("127.0.0.1", self.port, vehicleid, client_type=client_type,
                                      ssl_context=ssl_context, websocket=True, **kwargs)


@pytest.fixture(params=["ws", "wss"])
async def ports(request: pytest.FixtureRequest, start_relay: StartRelay,
                cert_files: CertFiles) -> Ports:
    if request.param == "ws":
        return Ports(await start_relay(), None)
    tls = await start_tls_relay(start_relay, cert_files)
    return Ports(tls.relay, tls)


# --------------------------------------------------------------------------- as an app


async def test_app_over_websocket_gets_z_replay_relays_and_commands(ports: Ports) -> None:
    car = await ports.relay.car()
    await expect(car, "Z0")
    await car.send("S", S_MSG)
    await car.send("D", D_MSG)
    assert await pinged(car) == []  # both stored before the app logs in
    app = await ports.ws_client()
    replay = await pinged(app)
    assert replay[:3] == ["Z1", "S" + S_MSG, "D" + D_MSG]
    assert replay[3] in ("T0", "T1") and len(replay) == 4
    await expect(car, "Z1")  # a WebSocket app is a peer like any other
    await car.send("L", "22.27,114.18")
    await expect(app, "L22.27,114.18", "T0")
    await app.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    await car.send("c", "20,0")
    assert (await app.receive()).text() == "c20,0"
    await app.aclose()
    await expect(car, "Z0")


async def test_car_over_websocket(ports: Ports) -> None:
    car = await ports.ws_client(client_type=ClientType.CAR)
    app = await ports.relay.app()
    await expect(app, "Z1", T_NEVER)
    await expect(car, "Z0", "Z1")
    await car.send("S", S_MSG)
    await expect(app, "S" + S_MSG, "T0")


async def test_scheme1_over_websocket_only_with_tls(ports: Ports) -> None:
    if ports.tls is None:
        with pytest.raises(LoginRefused):
            await ports.ws_client(username=OWNER, password=PASSWORD)
        return
    app = await ports.ws_client(username=OWNER, password=PASSWORD)
    assert app.welcome is not None and app.welcome.vehicleids == ("DEMO", "TESTCAR")
    await expect(app, "Z0")


# --------------------------------------------------------------------------- raw frames


@attrs.define
class RawWebSocket:
    """A bare wsproto client, for frames V2Client would never send."""

    stream: trio.abc.Stream
    ws: WSConnection
    pending: list[Event] = attrs.Factory(list)

    @classmethod
    async def open(cls, ports: Ports, target: str = "/apiv2", **request: Any) -> RawWebSocket:
        client = cls(await ports.tcp(), WSConnection(ConnectionType.CLIENT))
        await client.send(Request(host="localhost", target=target, **request))
        return client

    async def send(self, event: Event) -> None:
        await self.stream.send_all(self.ws.send(event))

    async def event(self, timeout: float = 10.0) -> Event | None:
        """The next event; None when the server closed the TCP connection."""
        with trio.fail_after(timeout):
            while not self.pending:
                self.pending.extend(self.ws.events())
                if self.pending:
                    break
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    data = b""
                if not data:
                    return None
                self.ws.receive_data(data)
        return self.pending.pop(0)

    async def text(self) -> str:
        """The next whole text message."""
        parts = []
        while True:
            event = await self.event()
            assert isinstance(event, TextMessage), event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts)


async def logged_in(ports: Ports, **request: Any) -> tuple[RawWebSocket, ClientSession]:
    """A raw WebSocket app of DEMO (scheme 0), past its Z1/Z0 and T (no stored data)."""
    raw = await RawWebSocket.open(ports, **request)
    assert isinstance(await raw.event(), AcceptConnection)
    session = ClientSession(ClientType.APP, "DEMO", carpass=VEHICLES["DEMO"])
    await raw.send(TextMessage(data=session.welcome().decode().strip()))
    session.receive_data((await raw.text()).encode() + b"\r\n")
    assert session.next_event() is not None
    session.receive_data((await raw.text()).encode() + b"\r\n")
    assert session.next_event() is not None  # Z0 / Z1
    session.receive_data((await raw.text()).encode() + b"\r\n")
    assert session.next_event() == V2Message("T", T_NEVER[1:])
    return raw, session


async def test_one_line_per_text_frame_and_lines_in_binary_or_fragments(ports: Ports) -> None:
    car = await ports.relay.car()
    await expect(car, "Z0")
    raw, session = await logged_in(ports)
    await expect(car, "Z1")
    command = session.send(V2Message("C", "20,1")).strip()
    # The same line protocol: one line per frame, text or binary, whole or fragmented.
    await raw.send(TextMessage(data=command.decode()))
    assert (await car.receive()).text() == "C20,1"
    await raw.send(BytesMessage(data=session.send(V2Message("C", "20,2")).strip()))
    assert (await car.receive()).text() == "C20,2"
    line = session.send(V2Message("C", "20,3")).strip().decode()
    await raw.send(TextMessage(data=line[:5], message_finished=False))
    await raw.send(TextMessage(data=line[5:], message_finished=True))
    assert (await car.receive()).text() == "C20,3"
    # Server -> client: one text frame per line.
    await car.send("S", S_MSG)
    await car.send("D", D_MSG)
    received = []
    for _ in range(4):
        session.receive_data((await raw.text()).encode() + b"\r\n")
        received.append(session.next_event())
    assert [m.text() for m in received] == ["S" + S_MSG, "T0", "D" + D_MSG, "T0"]


async def test_ping_pong_and_clean_close(ports: Ports) -> None:
    car = await ports.relay.car()
    await expect(car, "Z0")
    raw, _ = await logged_in(ports)
    await expect(car, "Z1")
    await raw.send(Ping(payload=b"hello"))
    assert await raw.event() == Pong(payload=b"hello")
    await raw.send(CloseConnection(code=1000))
    event = await raw.event()
    assert isinstance(event, CloseConnection) and event.code == 1000
    await expect(car, "Z0")


async def test_refused_login_closes_with_a_close_frame(ports: Ports) -> None:
    raw = await RawWebSocket.open(ports)
    assert isinstance(await raw.event(), AcceptConnection)
    session = ClientSession(ClientType.APP, "DEMO", carpass="wrong")
    await raw.send(TextMessage(data=session.welcome().decode().strip()))
    event = await raw.event()
    assert isinstance(event, CloseConnection) and event.code == 1000
    assert await raw.event() is None


async def test_subprotocol_offered_is_echoed(ports: Ports) -> None:
    raw = await RawWebSocket.open(ports, subprotocols=["ovms", "other"])
    event = await raw.event()
    assert isinstance(event, AcceptConnection) and event.subprotocol == "ovms"


async def test_unknown_path_gets_404(ports: Ports) -> None:
    raw = await RawWebSocket.open(ports, target="/elsewhere")
    event = await raw.event()
    assert isinstance(event, RejectConnection) and event.status_code == 404
    assert await raw.event() == RejectData(data=b"", body_finished=True)
    assert await raw.event() is None


async def test_plain_http_get_gets_400_and_others_carry_on(ports: Ports) -> None:
    car = await ports.relay.car()
    app = await ports.ws_client()
    await expect(car, "Z0", "Z1")
    await expect(app, "Z1", T_NEVER)
    stream = await ports.tcp()
    await stream.send_all(b"GET /apiv2 HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    await car.send("S", S_MSG)
    await expect(app, "S" + S_MSG, "T0")


async def test_overlong_line_closes_only_that_websocket(ports: Ports) -> None:
    car = await ports.relay.car()
    app = await ports.ws_client()
    await expect(car, "Z0", "Z1")
    await expect(app, "Z1", T_NEVER)
    raw, _ = await logged_in(ports)
    await expect(car, "Z2")
    # A frame far beyond the 32 KiB line bound, in pieces as a sender would stream it.
    chunk = base64.b64encode(os.urandom(3 * 1024)).decode()
    try:
        for _ in range(20):
            await raw.send(TextMessage(data=chunk, message_finished=False))
    except trio.BrokenResourceError:
        pass
    while True:
        event = await raw.event()
        if event is None or isinstance(event, CloseConnection):
            break
    await expect(car, "Z1")
    await car.send("S", S_MSG)
    await expect(app, "S" + S_MSG, "T0")


async def test_incomplete_upgrade_times_out(start_relay: StartRelay) -> None:
    relay = await start_relay(welcome_timeout=0.3)
    stream = await trio.open_tcp_stream("127.0.0.1", relay.handle.v2_port)
    await stream.send_all(b"GET /apiv2 HTTP/1.1\r\nHost: x\r\n")  # headers never end
    with trio.fail_after(10):
        assert await stream.receive_some(65536) == b""


async def test_invalid_utf8_text_frame_closes_with_1007(ports: Ports) -> None:
    car = await ports.relay.car()
    await expect(car, "Z0")
    raw, _ = await logged_in(ports)
    await expect(car, "Z1")
    # A masked text frame (as a client must send) whose payload is not UTF-8.
    payload, mask = b"\xff\xfe", b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    await raw.stream.send_all(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    event = await raw.event()
    assert isinstance(event, CloseConnection) and event.code == 1007
    await expect(car, "Z0")
