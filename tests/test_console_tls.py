"""Issue 14: the web console over HTTPS marks its session cookie Secure."""

from __future__ import annotations

from tests.conftest import OWNER, PASSWORD, StartRelay
from tests.test_tls import CertFiles, cert_files, start_tls_relay
from tests.test_tls_https import https

__all__ = ["cert_files"]  # fixtures, imported for use here


async def test_console_cookie_is_secure_over_https(start_relay: StartRelay,
                                                   cert_files: CertFiles) -> None:
    tls_relay = await start_tls_relay(start_relay, cert_files)
    async with https(tls_relay) as client:
        assert (await client.get("/ui/")).status_code == 200
        answer = await client.post("/ui/", data={"username": OWNER, "password": PASSWORD})
        assert answer.status_code == 303
        cookie = answer.headers["set-cookie"]
        assert "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert (await client.get("/ui/vehicles")).status_code == 200
