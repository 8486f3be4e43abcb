"""TLS: v2 protocol on the TLS port with a self-signed certificate made by ``ovms-admin``."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from protocol import ClientType, Message
from relay.cli import build_parser, make_config
from relay.config import Config, ConfigError
from relay.tls import client_context, context_from_config, server_context
from tests.conftest import OWNER, PASSWORD, T_NEVER, VEHICLES, RelayUnderTest, StartRelay
from tools import admin
from tools.v2client import LoginRefused, V2Client


@attrs.frozen
class CertFiles:
    cert: Path
    key: Path


def make_cert(directory: Path, *hosts: str) -> CertFiles:
    """A self-signed pair, made the way an operator would: ``ovms-admin selfsigned``."""
    files = CertFiles(directory / "cert.pem", directory / "key.pem")
    host_args = [arg for host in hosts or ("localhost", "127.0.0.1") for arg in ("--host", host)]
    status = admin.run(["selfsigned", "--cert", str(files.cert), "--key", str(files.key),
                        *host_args])
    assert status == 0
    return files


def subdir(path: Path, name: str) -> Path:
    (path / name).mkdir()
    return path / name


@pytest.fixture
def cert_files(tmp_path: Path) -> CertFiles:
    return make_cert(tmp_path)


def texts(msgs: list[Message]) -> list[str]:
    return [m.text() for m in msgs]


async def expect(client: V2Client, *lines: str) -> None:
    """The next messages are exactly ``lines`` (without drain's quiet wait: faster)."""
    assert [(await client.receive()).text() for _ in lines] == list(lines)


@attrs.define
class TLSRelay:
    relay: RelayUnderTest
    files: CertFiles

    @property
    def tls_port(self) -> int:
        port = self.relay.handle.v2_tls_port
        assert port is not None
        return port

    def context(self) -> ssl.SSLContext:
        return client_context(str(self.files.cert))

    async def connect(
        self, vehicleid: str = "DEMO", client_type: ClientType = ClientType.APP, **kwargs: Any
    ) -> V2Client:
        if "username" not in kwargs and "carpass" not in kwargs:
            kwargs["carpass"] = VEHICLES[vehicleid]
        kwargs.setdefault("ssl_context", self.context())
        return await V2Client.connect("127.0.0.1", self.tls_port, vehicleid,
                                      client_type=client_type, **kwargs)

    async def car(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.CAR, **kwargs)

    async def app(self, vehicleid: str = "DEMO", **kwargs: Any) -> V2Client:
        return await self.connect(vehicleid, ClientType.APP, **kwargs)


async def start_tls_relay(start_relay: StartRelay, files: CertFiles, **overrides: Any) -> TLSRelay:
    relay: RelayUnderTest = await start_relay(
        tls_cert=str(files.cert), tls_key=str(files.key), v2_tls_port=0, https_port=0,
        **overrides)
    return TLSRelay(relay, files)


@pytest.fixture
async def tls_relay(start_relay: StartRelay, cert_files: CertFiles) -> TLSRelay:
    return await start_tls_relay(start_relay, cert_files)


async def settled_pair(tls_relay: TLSRelay) -> tuple[V2Client, V2Client]:
    car = await tls_relay.car()
    app = await tls_relay.app()
    await expect(car, "Z0", "Z1")
    await expect(app, "Z1", T_NEVER)
    return car, app


async def assert_still_relaying(car: V2Client, app: V2Client) -> None:
    await car.send("S", "80,K")
    await expect(app, "S80,K", "T0")
    await app.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    await car.send("c", "20,0")
    assert (await app.receive()).text() == "c20,0"


# --------------------------------------------------------------------------- login and relay


async def test_car_and_app_over_tls(tls_relay: TLSRelay) -> None:
    car, app = await settled_pair(tls_relay)
    await assert_still_relaying(car, app)
    await app.aclose()
    await expect(car, "Z0")
    await car.aclose()


async def test_tls_and_plain_clients_share_one_vehicle(tls_relay: TLSRelay) -> None:
    car = await tls_relay.car()
    plain_app = await tls_relay.relay.app()
    await expect(plain_app, "Z1", T_NEVER)
    await expect(car, "Z0", "Z1")
    await car.send("S", "55,M")
    await expect(plain_app, "S55,M", "T0")


async def test_scheme1_welcome_on_tls_refused_on_plain(tls_relay: TLSRelay) -> None:
    app = await tls_relay.app(username=OWNER, password=PASSWORD)
    assert app.welcome is not None and app.welcome.scheme == 1
    await expect(app, "Z0")
    with pytest.raises(LoginRefused):
        await tls_relay.relay.app(username=OWNER, password=PASSWORD)


async def test_relay_without_tls_config_has_no_tls_port(relay: RelayUnderTest) -> None:
    assert relay.handle.v2_tls_port is None


# --------------------------------------------------------------------------- misbehaving peers


async def test_plain_client_on_tls_port_is_dropped_alone(tls_relay: TLSRelay) -> None:
    car, app = await settled_pair(tls_relay)
    raw = await trio.open_tcp_stream("127.0.0.1", tls_relay.tls_port)
    await raw.send_all(b"MP-A 0 abcdefghijklmnopqrstuv xxxx DEMO\r\n")
    with trio.fail_after(10):
        rest = b""
        while chunk := await _receive_or_empty(raw):
            rest += chunk
    assert b"MP-S" not in rest  # at most a TLS alert, never a v2 answer
    await raw.aclose()
    await assert_still_relaying(car, app)


async def _receive_or_empty(stream: trio.abc.Stream) -> bytes:
    try:
        return await stream.receive_some(65536)
    except trio.BrokenResourceError:
        return b""


def client_hello() -> bytes:
    """The first flight of a real TLS client, produced in memory."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


async def test_aborted_handshakes_do_not_disturb_others(tls_relay: TLSRelay) -> None:
    car, app = await settled_pair(tls_relay)
    hello = client_hello()
    # Half a ClientHello, then gone; a full one, then gone; connect and leave at once.
    for data in (hello[: len(hello) // 2], hello, b""):
        raw = await trio.open_tcp_stream("127.0.0.1", tls_relay.tls_port)
        if data:
            await raw.send_all(data)
        await raw.aclose()
    await assert_still_relaying(car, app)


async def test_silent_client_times_out_in_handshake(
    start_relay: StartRelay, cert_files: CertFiles
) -> None:
    tls_relay = await start_tls_relay(start_relay, cert_files, tls_handshake_timeout=0.3)
    car, app = await settled_pair(tls_relay)
    raw = await trio.open_tcp_stream("127.0.0.1", tls_relay.tls_port)
    with trio.fail_after(10):
        assert await _receive_or_empty(raw) == b""  # the server gave up on it
    await assert_still_relaying(car, app)


async def test_client_vanishing_without_close_notify(tls_relay: TLSRelay) -> None:
    car, app = await settled_pair(tls_relay)
    other = await tls_relay.app()
    await expect(car, "Z2")
    # Drop the TCP connection under the TLS session: no close_notify is ever sent.
    assert isinstance(other.stream, trio.SSLStream)
    await other.stream.transport_stream.aclose()
    await expect(car, "Z1")
    await assert_still_relaying(car, app)


async def test_wrong_certificate_is_refused_by_the_client(
    tls_relay: TLSRelay, tmp_path: Path
) -> None:
    stranger = make_cert(subdir(tmp_path, "other"))
    with pytest.raises(trio.BrokenResourceError):
        await tls_relay.app(ssl_context=client_context(str(stranger.cert)))
    car, app = await settled_pair(tls_relay)
    await assert_still_relaying(car, app)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_below_1_2_is_refused(
    tls_relay: TLSRelay, caplog: pytest.LogCaptureFixture
) -> None:
    old = tls_relay.context()
    old.minimum_version = ssl.TLSVersion.TLSv1
    old.maximum_version = ssl.TLSVersion.TLSv1_1
    # Let this client really offer TLS 1.1 (OpenSSL 3 refuses to by default), so the
    # refusal tested is the server's.
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    caplog.set_level("INFO", logger="relay.tls")
    with pytest.raises(trio.BrokenResourceError):
        await tls_relay.app(ssl_context=old)
    assert "TLS handshake failed: UNSUPPORTED_PROTOCOL" in caplog.text
    new_enough = tls_relay.context()
    new_enough.maximum_version = ssl.TLSVersion.TLSv1_2
    app = await tls_relay.app(ssl_context=new_enough)
    assert isinstance(app.stream, trio.SSLStream)
    assert app.stream.version() == "TLSv1.2"


# --------------------------------------------------------------------------- configuration


def test_server_context_requires_tls_1_2(cert_files: CertFiles) -> None:
    context = server_context(str(cert_files.cert), str(cert_files.key))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_self_signed_certificate_passes_strict_verification(cert_files: CertFiles) -> None:
    # Python 3.13 turns VERIFY_X509_STRICT on by default; the certificate must pass it.
    client = client_context(str(cert_files.cert))
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    server = server_context(str(cert_files.cert), str(cert_files.key))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname="127.0.0.1")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for obj, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
    c.do_handshake()
    assert c.version() in ("TLSv1.2", "TLSv1.3")


def test_context_from_config(cert_files: CertFiles, tmp_path: Path) -> None:
    assert context_from_config(Config()) is None
    with pytest.raises(ConfigError, match="both"):
        context_from_config(Config(tls_cert=str(cert_files.cert)))
    with pytest.raises(ConfigError, match="not found"):
        context_from_config(Config(tls_cert=str(tmp_path / "nope.pem"),
                                   tls_key=str(cert_files.key)))
    stranger = make_cert(subdir(tmp_path, "other"))
    with pytest.raises(ConfigError, match="cannot use"):
        context_from_config(Config(tls_cert=str(cert_files.cert), tls_key=str(stranger.key)))


async def test_relay_with_half_tls_config_does_not_start(start_relay: StartRelay,
                                                         cert_files: CertFiles) -> None:
    with pytest.raises(ConfigError):
        await start_relay(tls_cert=str(cert_files.cert))


def test_cli_flags_and_config_file(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["serve", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--v2-tls-port", "16870",
         "--https-port", "16869"])
    config = make_config(args)
    assert (config.tls_cert, config.tls_key, config.v2_tls_port, config.https_port) == (
        "c.pem", "k.pem", 16870, 16869)
    toml = tmp_path / "relay.toml"
    toml.write_text('[relay]\ntls_cert = "a.pem"\ntls_key = "b.pem"\nv2_tls_port = 7870\n'
                    "tls_handshake_timeout = 5\n")
    config = make_config(build_parser().parse_args(["serve", "--config", str(toml)]))
    assert (config.tls_cert, config.tls_key, config.v2_tls_port, config.https_port,
            config.tls_handshake_timeout) == ("a.pem", "b.pem", 7870, 6869, 5.0)


def test_admin_selfsigned_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = make_cert(tmp_path, "relay.example.org")
    assert files.key.stat().st_mode & 0o077 == 0
    assert "relay.example.org" in capsys.readouterr().out
    # Refuses to overwrite (an operator's real key), unless told.
    assert admin.run(["selfsigned", "--cert", str(files.cert), "--key", str(files.key)]) == 1
    assert "exists" in capsys.readouterr().err
    assert admin.run(["selfsigned", "--cert", str(files.cert), "--key", str(files.key),
                      "--force"]) == 0
    server_context(str(files.cert), str(files.key))
