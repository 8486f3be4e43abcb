"""``ovms-relay serve``: demo provisioning, config file, one-line errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from protocol import ClientType
from relay.config import Config, ConfigError, load_toml
from tests.conftest import sqlite_only
from tools.v2client import V2Client


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


async def read_until(proc: subprocess.Popen[str], pattern: str) -> tuple[list[str], re.Match[str]]:
    assert proc.stdout is not None
    lines: list[str] = []
    with trio.fail_after(20):
        while True:
            line = await trio.to_thread.run_sync(proc.stdout.readline)
            assert line, f"server exited early: {lines!r}"
            lines.append(line)
            match = re.search(pattern, line)
            if match:
                return lines, match


async def test_demo_creates_account_and_a_car_can_log_in(empty_db: str) -> None:
    proc = serve("--db", empty_db, "--demo")
    try:
        lines, match = await read_until(proc, r"v2 protocol on [\d.]+:(\d+)")
        text = "".join(lines)
        carpass = re.search(r"carpass[^:]*: (\S+)", text)
        assert carpass, text
        car = await V2Client.connect("127.0.0.1", int(match.group(1)), "DEMO",
                                     client_type=ClientType.CAR, carpass=carpass.group(1))
        assert (await car.receive()).text() == "Z0"
        await car.aclose()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    # A second --demo run leaves the existing account alone.
    proc = serve("--db", empty_db, "--demo")
    try:
        lines, _ = await read_until(proc, r"v2 protocol on")
        assert "nothing created" in "".join(lines)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


@sqlite_only("a file that is not a database")
@pytest.mark.parametrize("make_bad", ["text", "directory"])
def test_unreadable_database_is_one_line_error(tmp_path: Path, make_bad: str) -> None:
    bad = tmp_path / "bad.db"
    if make_bad == "text":
        bad.write_text("this is not a database\n" * 100)
    else:
        bad.mkdir()
    proc = serve("--db", str(bad))
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert err.startswith("ovms-relay: error: ")
    assert len(err.strip().splitlines()) == 1


def test_port_in_use_names_the_port_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """Issue 10 item 13: the error names the port; no new database, no demo passwords."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--db", str(tmp_path / "x.db"), "--demo",
             "--host", "127.0.0.1", "--v2-port", str(port), "--http-port", "0"],
            capture_output=True, text=True, timeout=20,
        )
    assert proc.returncode != 0
    # log lines may precede it, but the error is one line and there is no traceback
    assert proc.stderr.strip().splitlines()[-1] == (
        f"ovms-relay: error: cannot listen for the v2 protocol on 127.0.0.1:{port}: "
        "Address already in use")
    assert "Traceback" not in proc.stderr
    assert "password" not in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_missing_certificate_is_named(tmp_path: Path) -> None:
    proc = serve("--db", str(tmp_path / "x.db"), "--tls-cert", str(tmp_path / "cert.pem"),
                 "--tls-key", str(tmp_path / "key.pem"))
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1] == (
        f"ovms-relay: error: TLS certificate file not found: {tmp_path / 'cert.pem'}")
    assert not (tmp_path / "x.db").exists()


@sqlite_only("one server per SQLite file (relay.dblock)")
async def test_database_from_environment_and_one_server_per_file(tmp_path: Path) -> None:
    """Issue 10 item 14: serve honours OVMS_RELAY_DB; a second server on it is refused."""
    path = tmp_path / "env.db"
    env = {**os.environ, "OVMS_RELAY_DB": str(path)}
    first = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines, _ = await read_until(first, r"v2 protocol on")
        assert f"database {path}" in lines[-1]
        second = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
             "--http-port", "0"], capture_output=True, text=True, timeout=20, env=env)
        assert second.returncode == 1
        assert second.stderr.strip() == (
            f"ovms-relay: error: database {path} is in use by another ovms-relay server "
            f"(pid {first.pid})")
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(10) == 0


def test_config_file_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "relay.toml"
    path.write_text('[relay]\nv2_port = 7000\ncar_timeout = 60\nallow_plain_login = true\n')
    config = Config().updated(load_toml(path))
    assert (config.v2_port, config.car_timeout, config.allow_plain_login) == (7000, 60.0, True)
    assert config.updated({"v2_port": 7100}).v2_port == 7100
    with pytest.raises(ConfigError, match="unknown setting"):
        Config().updated({"no_such_thing": 1})
    with pytest.raises(ConfigError, match="must be a number"):
        Config().updated({"v2_port": "x"})
    path.write_text("v2_port = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_toml(tmp_path / "missing.toml")


async def test_in_memory_database_leaves_no_lock_file(tmp_path: Path) -> None:
    """``--db :memory:`` is this process's alone: no ``:memory:.lock`` in the working
    directory (a lock file is for a database file another server could open)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0", "--db", ":memory:"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        await read_until(proc, r"v2 protocol on")
        assert sorted(p.name for p in tmp_path.iterdir()) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == []
