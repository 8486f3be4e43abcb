"""A real Mosquitto for the MQTT tests, and a topic prefix of their own per test.

Found in this order: ``$OVMS_TEST_MQTT`` (an ``mqtt://[USER:PW@]HOST[:PORT]`` URL of a
running broker), or one started here (``mosquitto -c`` with a generated
configuration on a free port in a temporary directory). Tests that restart the
broker, or need its password and ACL files, always start their own. Without a
broker, the tests are skipped with one line saying what is missing, or fail if
``OVMS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from tools.bench_server import free_port

MOSQUITTO_PATHS = "/usr/sbin:/usr/local/sbin:/usr/bin:/usr/local/bin"


def unavailable(reason: str) -> None:
    if os.environ.get("OVMS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"Mosquitto required (OVMS_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"no Mosquitto: {reason} (apt-get install mosquitto)")


def reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def unique_prefix() -> str:
    """A topic prefix no other test (or run) uses on a shared broker."""
    return f"t{uuid.uuid4().hex[:10]}"


@attrs.define
class Mosquitto:
    """A mosquitto process this test started; ``restart`` keeps its port."""

    binary: str
    directory: Path
    port: int
    extra: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def config(self) -> str:
        lines = [f"listener {self.port} 127.0.0.1", "persistence false",
                 "log_dest none"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto", who cannot read tmp files
        if "password_file" not in self.extra:
            lines.append("allow_anonymous true")
        return "\n".join(lines) + "\n" + self.extra

    def start(self) -> None:
        conf = self.directory / "mosquitto.conf"
        conf.write_text(self.config())
        self.proc = subprocess.Popen([self.binary, "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while not reachable("127.0.0.1", self.port, 0.5):
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err.strip()[:300]}")
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not start listening within 15 s")
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=MOSQUITTO_PATHS)


@contextmanager
def own_mosquitto(extra: str = "") -> Iterator[Mosquitto]:
    """A mosquitto started for this test (``extra``: more configuration lines)."""
    binary = mosquitto_binary()
    if binary is None:
        unavailable("the mosquitto binary is not installed")
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="ovms-mosquitto-") as tmp:
        broker = Mosquitto(binary, Path(tmp), free_port(), extra)
        try:
            broker.start()
        except RuntimeError as exc:
            unavailable(str(exc))
        try:
            yield broker
        finally:
            broker.stop()


@contextmanager
def broker_url() -> Iterator[str]:
    """``$OVMS_TEST_MQTT``, or a mosquitto started here; skip/fail without either."""
    explicit = os.environ.get("OVMS_TEST_MQTT")
    if explicit:
        from relay.mqtt.url import BrokerUrl

        url = BrokerUrl.parse(explicit)
        if not reachable(url.host, url.port):
            unavailable(f"OVMS_TEST_MQTT={url.redacted()} does not answer")
        yield explicit
        return
    with own_mosquitto() as broker:
        yield broker.url
