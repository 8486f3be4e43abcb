"""TLS: the server's SSLContext, the v2-over-TLS listener (6870) and self-signed test certificates.

Every TLS connection gets its handshake under ``tls_handshake_timeout``; a failing,
aborted or never-started handshake (a plain-TCP client on this port, a scanner, a
client that vanishes) ends that one connection with one log line and nothing else.
See docs/tls.md.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import ssl
from collections.abc import Sequence
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from relay.boundary import connection_failed
from relay.config import Config, ConfigError
from relay.listen import open_tcp_listeners
from relay.services import Services
from relay.v2conn import peer_address
from relay.websocket import serve_v2_connection

log = logging.getLogger("relay.tls")


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or newer, Python's default (modern) cipher choice.

    Raises ConfigError with a one-line reason when the files are missing or do not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # OVMS v3 modules (mbedTLS) and every current phone/browser speak TLS 1.2+;
    # 1.0/1.1 are deprecated (RFC 8996), so nothing legitimate needs them.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl's own FileNotFoundError does not say which of the two files is missing.
    for what, path in (("certificate", cert_file), ("key", key_file)):
        if not Path(path).is_file():
            raise ConfigError(f"TLS {what} file not found: {path}")
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot use TLS certificate {cert_file} with key {key_file}: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read TLS certificate or key: {exc.strerror}") from None
    return context


def context_from_config(config: Config) -> ssl.SSLContext | None:
    """The server context when TLS is configured, None when it is not (both settings empty)."""
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise ConfigError("TLS needs both tls_cert and tls_key (--tls-cert and --tls-key)")
    return server_context(config.tls_cert, config.tls_key)


async def tls_handshake(stream: trio.SSLStream[trio.SocketStream], timeout: float) -> str | None:
    """Run the server handshake; None when it completed, else a short reason to log."""
    with trio.move_on_after(timeout):
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as exc:
            # trio wraps ssl.SSLError (bad ClientHello, plain text, version too old) and
            # resets alike; the cause names which.
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                return f"TLS handshake failed: {cause.reason or cause}"
            return "connection lost during TLS handshake"
        return None
    return f"no TLS handshake within {timeout:g} s"


async def serve_v2_tls(
    services: Services,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The v2-over-TLS listener (6870): handshake, then the same v2 / WebSocket handling
    as the plain port, with scheme 1 logins allowed (nursery start protocol)."""
    timeout = services.config.tls_handshake_timeout

    async def handler(tcp: trio.SocketStream) -> None:
        # https_compatible: a peer that closes TCP without close_notify (a car losing
        # power, an app killed) is an ordinary end of stream, not a protocol error, and
        # our own close does not wait for the peer's close_notify.
        try:
            stream = trio.SSLStream(tcp, ssl_context, server_side=True, https_compatible=True)
            failure = await tls_handshake(stream, timeout)
            if failure is not None:
                log.info("addr=%s transport=tls: %s, closing", peer_address(tcp), failure)
                await trio.aclose_forcefully(tcp)
                return
        except Exception as exc:
            # The handshake's own boundary; after it, serve_v2_connection has its own.
            connection_failed("v2-tls", peer_address(tcp), exc)
            await trio.aclose_forcefully(tcp)
            return
        await serve_v2_connection(stream, services, tls=True)

    listeners = await open_tcp_listeners(port, host=host, reuse_port=services.config.reuse_port)
    task_status.started(listeners)
    await trio.serve_listeners(handler, listeners)


def generate_self_signed(
    hostnames: Sequence[str] = ("localhost",), *, days: int = 365
) -> tuple[bytes, bytes]:
    """A self-signed certificate and its private key, PEM (for tests and trials only).

    Each name becomes a subjectAltName (an IP address literal as an IP entry), so
    clients verifying the host name accept it once they trust the certificate itself.
    """
    if not hostnames:
        raise ValueError("at least one host name is needed")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    alt_names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # A little slack backwards so a client whose clock is slightly behind accepts it.
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        # An end-entity certificate that is its own issuer: clients trust it directly
        # (as a "CA file"); the key identifiers and usages keep strict X.509 checking
        # (Python 3.13's default) satisfied.
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def client_context(cafile: str) -> ssl.SSLContext:
    """A client context trusting only ``cafile`` (tools and tests against a self-signed server)."""
    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
