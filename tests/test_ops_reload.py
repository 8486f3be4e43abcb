"""Issue 15, SIGHUP: the config file's reloadable settings change in a running server
without dropping connections; others are reported as needing a restart; a bad file
changes nothing."""

from __future__ import annotations

import logging
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import trio

from protocol import ClientType
from relay.config import Config
from relay.reload import reload
from tests.conftest import RelayUnderTest
from tests.test_cli_serve import read_until
from tools.v2client import V2Client

BASE = 'db = "{db}"\nhost = "127.0.0.1"\nv2_port = 0\nhttp_port = 0\n'


class Lines:
    """stderr of a subprocess, read by a thread, waited for from trio."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert proc.stderr is not None
        stream = proc.stderr
        threading.Thread(target=lambda: [self._queue.put(line) for line in stream],
                         daemon=True).start()

    async def until(self, text: str) -> str:
        with trio.fail_after(20):
            while True:
                try:
                    line = await trio.to_thread.run_sync(self._queue.get, True, 0.5)
                except queue.Empty:
                    continue
                self.seen.append(line)
                if text in line:
                    return line


async def burst_until_refused(port: int, tries: int) -> int | None:
    """How many REST calls pass before the first 429 (None: none refused)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(tries):
            if (await client.get("/api/vehicles")).status_code == 429:
                return i
    return None


@pytest.mark.trio
async def test_sighup_reloads_without_dropping_the_car(tmp_path: Path, relay_db: str) -> None:
    """Issue 15 (SIGHUP): log level and api_rate_burst change; the car stays connected."""
    db = relay_db
    conf = tmp_path / "relay.toml"
    conf.write_text(BASE.format(db=db) + 'log_level = "INFO"\napi_rate_burst = 120\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--config", str(conf)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        stderr = Lines(proc)
        _, match = await read_until(proc, r"v2 protocol on \S+:(\d+), REST API on port (\d+)")
        v2_port, http_port = int(match.group(1)), int(match.group(2))
        car = await V2Client.connect("127.0.0.1", v2_port, "DEMO",
                                     client_type=ClientType.CAR, carpass="DEMO")
        async with car:
            assert await burst_until_refused(http_port, 10) is None
            conf.write_text(BASE.format(db=db).replace("v2_port = 0", "v2_port = 7999")
                            + 'log_level = "DEBUG"\napi_rate_burst = 3\n')
            proc.send_signal(signal.SIGHUP)
            line = await stderr.until("reload: configuration reloaded")
            assert "changed: log_level, api_rate_burst" in line
            assert any("setting v2_port changed: needs a restart" in line
                       for line in stderr.seen)
            # The earlier calls used part of the quota: at most the new burst is left.
            assert await burst_until_refused(http_port, 10) in (0, 1, 2, 3)
            # The car's connection survived: it still gets answers.
            await car.send("A")
            assert (await car.receive_until("a"))[-1].code == "a"
            # A broken file changes nothing and is one error line.
            conf.write_text("log_level = [")
            proc.send_signal(signal.SIGHUP)
            line = await stderr.until("reload: configuration not changed")
            assert "ERROR" in line and "not valid TOML" in line
            await car.send("A")
            assert (await car.receive_until("a"))[-1].code == "a"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0


@pytest.mark.trio
async def test_reload_applies_each_reloadable_setting(
    start_relay: object, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15 (SIGHUP): each reloadable part changes in place; a bad value keeps all."""
    relay: RelayUnderTest = await start_relay()  # type: ignore[operator]
    handle, config = relay.handle, relay.config
    root = logging.getLogger()
    level = root.level
    new = config.updated({
        "log_level": "WARNING", "api_rate_burst": 5, "api_rate_per_minute": 7,
        "api_rate_max": 9, "api_rate_exempt": "10.0.0.9", "webhook_allow": ["http://x.test/"],
        "login_fail_max": 3, "login_account_fail_max": 4, "api_trusted_proxies": "10.0.0.1",
        "car_timeout": 5.0,
    })
    try:
        with caplog.at_level(logging.INFO, logger="relay.reload"):
            running = reload(handle, config, lambda: new)
    finally:
        level_after = root.level
        root.setLevel(level)
    api = handle.services.http_api
    assert level_after == logging.WARNING
    assert (api.limiter.burst, api.limiter.per_period, api.limiter.cap) == (5, 7, 9)  # type: ignore[attr-defined]
    assert api.limiter.exempt == {"10.0.0.9"}  # type: ignore[attr-defined]
    assert api.trusted_proxies == {"10.0.0.1"}  # type: ignore[attr-defined]
    guard = handle.services.login_guard
    assert (guard.limits.address_failures, guard.limits.account_failures) == (3, 4)
    assert guard.exempt == {"10.0.0.9"}
    assert handle.services.push is not None
    assert handle.services.push.policy.allow == ("http://x.test/",)
    assert handle.v4.policy is handle.services.push.policy
    assert running.api_rate_burst == 5 and running.car_timeout == config.car_timeout
    assert [r.getMessage() for r in caplog.records if "needs a restart" in r.getMessage()] == [
        "reload: setting car_timeout changed: needs a restart"]

    caplog.clear()
    bad = new.updated({"log_level": "LOUD", "api_rate_burst": 1})
    assert reload(handle, running, lambda: bad) is running
    assert api.limiter.burst == 5  # type: ignore[attr-defined]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "unknown log_level" in errors[0].getMessage()


def test_reloadable_names_are_settings() -> None:
    from relay.reload import RELOADABLE
    assert RELOADABLE <= set(Config.field_names())


@pytest.mark.trio
async def test_reload_loads_a_renewed_certificate(start_relay: object, tmp_path: Path) -> None:
    """Issue 15 (SIGHUP, Let's Encrypt renewal): new TLS connections get the new
    certificate from the same file names."""
    import ssl

    from relay.tls import generate_self_signed

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    first = generate_self_signed()
    cert.write_bytes(first[0])
    key.write_bytes(first[1])
    relay: RelayUnderTest = await start_relay(  # type: ignore[operator]
        tls_cert=str(cert), tls_key=str(key), v2_tls_port=0, https_port=0)

    async def served_cert() -> bytes:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        port = relay.handle.v2_tls_port
        assert port is not None
        stream = await trio.open_ssl_over_tcp_stream("127.0.0.1", port, ssl_context=context)
        await stream.do_handshake()
        der = stream.getpeercert(binary_form=True)
        await stream.aclose()
        assert der is not None
        return bytes(der)

    before = await served_cert()
    second = generate_self_signed()
    cert.write_bytes(second[0])
    key.write_bytes(second[1])
    reload(relay.handle, relay.config, lambda: relay.config)
    after = await served_cert()
    assert after != before
    assert after == ssl.PEM_cert_to_DER_cert(second[0].decode())
