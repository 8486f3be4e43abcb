"""``serve --workers N``: shared ports, restart after a crash, drain on SIGTERM, no orphans."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from protocol import ClientType
from relay.config import Config, ConfigError
from relay.listen import open_tcp_listeners, reserve_port
from relay.supervisor import Backoff, Supervisor, check_workers, worker_config
from tests.conftest import VEHICLES, make_db
from tests.supervised_server import PATIENCE, Supervised, alive, gone
from tools.v2client import V2Client


def test_backoff_doubles_while_a_worker_dies_young_and_resets_after_a_healthy_run() -> None:
    backoff = Backoff(base=0.5, maximum=4.0, healthy_after=60.0)
    assert [backoff.delay(1.0) for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(600.0) == 0.5
    assert backoff.delay(0.1) == 1.0


def test_more_than_one_worker_needs_postgresql_and_the_bus() -> None:
    check_workers(Config(workers=1))  # one worker on SQLite is fine
    with pytest.raises(ConfigError, match="PostgreSQL"):
        check_workers(Config(workers=2, db="relay.db"))
    with pytest.raises(ConfigError, match="--bus"):
        check_workers(Config(workers=2, db="postgresql://relay@127.0.0.1/relay"))
    with pytest.raises(ConfigError):
        check_workers(Config(workers=-1))


def test_a_worker_listens_with_reuse_port_and_nothing_else_changes() -> None:
    config = Config(workers=3, node_id="relay1", demo=True)
    assert worker_config(config, None) is config
    first, third = worker_config(config, 0), worker_config(config, 2)
    assert third.reuse_port and third.workers == 0
    assert (first.node_id, third.node_id) == ("relay1-w0", "relay1-w2")
    assert first.demo and not third.demo
    assert not config.reuse_port


async def test_reuse_port_lets_two_listeners_share_a_port_and_both_accept() -> None:
    first = await open_tcp_listeners(0, host="127.0.0.1", reuse_port=True)
    port = first[0].socket.getsockname()[1]
    second = await open_tcp_listeners(port, host="127.0.0.1", reuse_port=True)
    try:
        # Connections are spread by the 4-tuple's hash: enough of them reach both.
        clients = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(64)]
        accepted = []
        for listeners in (first, second):
            with trio.move_on_after(PATIENCE):
                accepted.append(await listeners[0].accept())
        assert len(accepted) == 2
        for stream in [*clients, *accepted]:
            await stream.aclose()
    finally:
        for listener in [*first, *second]:
            await listener.aclose()


async def test_without_reuse_port_a_taken_port_is_refused() -> None:
    first = await open_tcp_listeners(0, host="127.0.0.1", reuse_port=True)
    port = first[0].socket.getsockname()[1]
    try:
        with pytest.raises(OSError) as failure:
            await open_tcp_listeners(port, host="127.0.0.1")
        assert failure.value.errno == errno.EADDRINUSE
    finally:
        await first[0].aclose()


async def test_a_reserved_port_refuses_connections_until_a_worker_listens_on_it() -> None:
    port, held = reserve_port("127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        listeners = await open_tcp_listeners(port, host="127.0.0.1", reuse_port=True)
        client = await trio.open_tcp_stream("127.0.0.1", port)
        await client.aclose()
        await listeners[0].aclose()
    finally:
        for sock in held:
            sock.close()


def test_two_plain_processes_cannot_take_the_same_port(tmp_path: Path) -> None:
    """Default servers keep failing on a port in use: SO_REUSEPORT is only for workers."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--db", ":memory:",
             "--v2-port", str(port), "--http-port", "0"],
            capture_output=True, text=True, timeout=PATIENCE, cwd=tmp_path)
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


async def relays(v2_port: int) -> None:
    """A car and an app log in on ``v2_port`` and a message goes from one to the other."""
    car = await V2Client.connect("127.0.0.1", v2_port, "DEMO", client_type=ClientType.CAR,
                                 carpass=VEHICLES["DEMO"])
    app = await V2Client.connect("127.0.0.1", v2_port, "DEMO", client_type=ClientType.APP,
                                 carpass=VEHICLES["DEMO"])
    try:
        await car.receive_until("Z")  # Z1 once the app is there
        await car.send("S", "80,K,220,0,charging")
        assert any(m.code == "S" for m in await app.receive_until("S"))
    finally:
        await car.aclose()
        await app.aclose()


async def connect_when_back(port: int) -> None:
    """Wait until ``port`` accepts connections again."""
    with trio.fail_after(PATIENCE):
        while True:
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    path = tmp_path / "relay.db"
    make_db(path)
    return path


async def test_one_worker_on_sqlite_serves_and_sigterm_drains_with_no_orphans(
    db_file: Path,
) -> None:
    server = Supervised("--workers", "1", "--db", str(db_file))
    try:
        v2_port, _ = await server.ports()
        [worker] = await server.worker_pids()
        await relays(v2_port)
        server.signal(signal.SIGTERM)
        assert await server.wait() == 0
        await server.wait_for(r"worker 0 \(pid \d+\) stopped, exit code 0")
        # The worker drained, and its lines name it.
        assert "[w0] relay: received SIGTERM, shutting down" in server.text
        assert not alive(worker)
    finally:
        server.stop()


async def test_a_killed_worker_is_restarted_on_the_same_port(db_file: Path) -> None:
    server = Supervised("--workers", "1", "--db", str(db_file))
    try:
        v2_port, http_port = await server.ports()
        [first] = await server.worker_pids()
        await server.wait_for(r"worker 0 \(pid \d+\) is listening")
        os.kill(first, signal.SIGKILL)
        await server.wait_for(r"worker 0 \(pid \d+\) exited with code -9 .*restarting it")
        _, second = await server.worker_pids(2)
        assert second != first
        await server.wait_for(r"worker 0 \(pid \d+\) is listening", count=2)
        await connect_when_back(http_port)
        await relays(v2_port)
    finally:
        server.stop()


async def test_a_worker_exits_when_its_supervisor_is_killed(db_file: Path) -> None:
    server = Supervised("--workers", "1", "--db", str(db_file))
    try:
        [worker] = await server.worker_pids()
        await server.wait_for(r"worker 0 \(pid \d+\) is listening")
        server.proc.kill()
        await server.wait_for(r"the supervisor \(parent process\) is gone")
        await gone(worker)
    finally:
        server.stop()


async def test_sighup_is_forwarded_to_the_workers(db_file: Path) -> None:
    server = Supervised("--workers", "1", "--db", str(db_file))
    try:
        await server.wait_for(r"worker 0 \(pid \d+\) is listening")
        server.signal(signal.SIGHUP)
        await server.wait_for("received SIGHUP, reloading the configuration")
        server.signal(signal.SIGINT)
        assert await server.wait() == 0
    finally:
        server.stop()


async def test_a_worker_that_cannot_start_stops_the_server_with_its_error(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.db"
    bad.write_text("this is not a database\n" * 100)
    server = Supervised("--workers", "1", "--db", str(bad))
    try:
        assert await server.wait() == 1
        assert "ovms-relay: error: " in server.text
        assert "failed to start" in server.text
        assert len(await server.worker_pids()) == 1
        assert "restarting" not in server.text
    finally:
        server.stop()


def test_two_workers_without_the_bus_is_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "serve", "--workers", "2", "--host", "127.0.0.1",
         "--db", str(tmp_path / "relay.db"), "--v2-port", "0", "--http-port", "0"],
        capture_output=True, text=True, timeout=PATIENCE)
    assert result.returncode == 1
    assert result.stderr.startswith("ovms-relay: error: --workers 2 needs ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "relay.db").exists()


async def test_a_crash_looping_worker_is_restarted_with_growing_delays(
    tmp_path: Path, autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture,
) -> None:
    """The real supervisor loop on trio's MockClock: a worker that listens and then
    exits at once, every time, is restarted after 0.5, 1, 2, 4 ... s."""
    worker = tmp_path / "crashing-worker"
    worker.write_text(
        f"#!{sys.executable}\n"
        "import socket, sys\n"
        "fd = int(sys.argv[sys.argv.index('--supervisor-fd') + 1])\n"
        "socket.socket(fileno=fd).sendall(b'r')\n"
        "sys.exit(3)\n")
    worker.chmod(0o755)
    supervisor = Supervisor(["serve"], 1, python=str(worker))
    caplog.set_level("INFO", logger="relay.supervisor")

    def restarts() -> list[str]:
        return [r.getMessage() for r in caplog.records if "restarting it in" in r.getMessage()]

    class StopAfterFour(logging.Handler):
        """Stops the supervisor as it logs its fourth restart. Not a task polling with
        sleeps: on the autojumping clock every such sleep moves time on while the worker
        starts in real time, and a slow start then looks like a healthy run (> 60 s),
        which rightly resets the delay."""

        seen = 0

        def emit(self, record: logging.LogRecord) -> None:
            if "restarting it in" in record.getMessage():
                self.seen += 1
                if self.seen == 4:
                    supervisor.stop()

    stopper = StopAfterFour(level=logging.WARNING)
    logging.getLogger("relay.supervisor").addHandler(stopper)
    try:
        assert await supervisor.run() == 0
    finally:
        logging.getLogger("relay.supervisor").removeHandler(stopper)
    delays = [m.rsplit("in ", 1)[1] for m in restarts()[:4]]
    assert delays == ["0.5 s", "1.0 s", "2.0 s", "4.0 s"]
    assert all("exited with code 3" in m for m in restarts())
