"""``ovms-relay serve --workers N``: a parent process that keeps N workers serving.

Every worker is ``python -m relay`` with the parent's own arguments plus a few
appended (later flags win): the ports the parent reserved (port 0 becomes one
real port all workers share), its index and the descriptor of a socket pair
to the parent. Workers open their listeners with SO_REUSEPORT, so the kernel
spreads connections over them.

The socket pair carries two events: the worker writes one byte once it listens
(a worker that dies before that on its first start is a configuration or
startup error, and the whole server stops with its exit code instead of
restarting it forever), and the worker sees end-of-file when the parent is gone
(even after ``kill -9``), which it treats as SIGTERM: no orphan keeps serving.

Signals: SIGTERM and SIGINT are forwarded to every worker, which drain as a
single server does; the parent waits for them (SIGKILL after ``drain_timeout``)
and exits 0. SIGHUP is forwarded: each worker reloads its configuration.
A worker that exits otherwise is restarted after a delay that doubles while it
keeps dying young (:class:`Backoff`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Sequence

import attrs
import trio

from relay.config import Config, ConfigError
from relay.listen import can_reuse_port, reserve_port
from relay.store.engines import is_postgres

log = logging.getLogger("relay.supervisor")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
READY = b"r"


def check_workers(config: Config) -> None:
    """Refuse, with one line, a worker count the rest of the configuration cannot serve."""
    if config.workers < 0:
        raise ConfigError("workers must be 0 (no supervisor) or more")
    if config.workers > 1:
        if not is_postgres(config.db):
            raise ConfigError(
                f"--workers {config.workers} needs a PostgreSQL database (--db postgresql://...)"
                " and --bus: an SQLite file has one server at a time (docs/cluster.md)")
        if not config.bus:
            raise ConfigError(
                f"--workers {config.workers} needs --bus nats://HOST:PORT: workers share "
                "cars and apps over the bus (docs/cluster.md)")
    if not can_reuse_port():
        raise ConfigError("--workers needs SO_REUSEPORT, which this system does not have")


@attrs.define
class Backoff:
    """Restart delays of one worker: doubling while it keeps dying young, so a crash
    loop costs a start every ``maximum`` seconds, not a spinning core."""

    base: float = 0.5
    maximum: float = 30.0
    # A worker that ran this long was healthy: its next restart is quick again.
    healthy_after: float = 60.0
    _next: float = attrs.field(init=False, default=0.0)

    def delay(self, ran_for: float) -> float:
        """Seconds to wait before restarting a worker that ran ``ran_for`` seconds."""
        if ran_for >= self.healthy_after or self._next == 0.0:
            self._next = self.base
        delay = self._next
        self._next = min(self.maximum, self._next * 2)
        return delay


@attrs.define
class Reserved:
    """Ports the parent holds for its workers, and the flags that hand them down."""

    flags: list[str]
    sockets: list[socket.socket]

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def reserve_ports(config: Config) -> Reserved:
    """Bind every listener's port for the workers (see ``relay.listen.reserve_port``)."""
    http_host = config.http_host or config.host
    wanted = [("--v2-port", config.host, config.v2_port),
              ("--http-port", http_host, config.http_port)]
    if config.tls_cert and config.tls_key:
        wanted += [("--v2-tls-port", config.host, config.v2_tls_port),
                   ("--https-port", http_host, config.https_port)]
    reserved = Reserved(flags=[], sockets=[])
    try:
        for flag, host, port in wanted:
            try:
                bound, sockets = reserve_port(host, port)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {host}:{port} ({flag[2:]}): "
                                  f"{exc.strerror or exc}") from None
            reserved.sockets += sockets
            reserved.flags += [flag, str(bound)]
    except BaseException:
        reserved.close()
        raise
    return reserved


@attrs.define
class Supervisor:
    """Runs ``count`` workers of ``argv`` (the ``serve`` arguments) until told to stop."""

    argv: Sequence[str]
    count: int
    drain_timeout: float = 60.0
    python: str = sys.executable
    exit_code: int = 0
    _stopping: bool = False
    _stopped: trio.Event = attrs.field(factory=trio.Event)
    _procs: dict[int, trio.Process] = attrs.field(factory=dict)

    def command(self, index: int, fd: int) -> list[str]:
        return [self.python, "-m", "relay", *self.argv,
                "--workers", "0", "--worker-index", str(index), "--supervisor-fd", str(fd)]

    async def run(self) -> int:
        with trio.open_signal_receiver(*STOP_SIGNALS, signal.SIGHUP) as signals:
            async with trio.open_nursery() as outer:
                outer.start_soon(self._forward_signals, signals)
                async with trio.open_nursery() as workers:
                    for index in range(self.count):
                        workers.start_soon(self._keep_running, index)
                outer.cancel_scope.cancel()
        log.info("all workers stopped")
        return self.exit_code

    async def _forward_signals(self, signals: AsyncIterator[int]) -> None:
        async for signum in signals:
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                log.info("received SIGHUP, forwarding it to %d workers", len(self._procs))
                self._send_all(signum)
                continue
            log.info("received %s, stopping %d workers", name, len(self._procs))
            self.stop(signum)

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Forward ``signum`` to every worker and restart none (a repeated stop signal
        is forwarded again: a worker still draining takes it as a hurry-up)."""
        if not self._stopping:
            self._stopping = True
            self._stopped.set()
            trio.lowlevel.spawn_system_task(self._kill_stragglers)
        self._send_all(signum)

    def _send_all(self, signum: int) -> None:
        for proc in list(self._procs.values()):
            if proc.returncode is None:
                proc.send_signal(signum)

    async def _kill_stragglers(self) -> None:
        await trio.sleep(self.drain_timeout)
        for index, proc in list(self._procs.items()):
            if proc.returncode is None:
                log.warning("worker %d (pid %d) still running %.0f s after the stop signal, "
                            "killing it", index, proc.pid, self.drain_timeout)
                proc.kill()

    async def _keep_running(self, index: int) -> None:
        backoff = Backoff()
        first = True
        while not self._stopping:
            started = trio.current_time()
            pid, code, was_ready = await self._run_once(index)
            ran_for = trio.current_time() - started
            if self._stopping:
                log.info("worker %d (pid %d) stopped, exit code %d", index, pid, code)
                return
            if first and not was_ready:
                log.error("worker %d (pid %d) failed to start, exit code %d; stopping the server",
                          index, pid, code)
                self.exit_code = code if code > 0 else 1
                self.stop()
                return
            first = False
            delay = backoff.delay(ran_for)
            log.warning("worker %d (pid %d) exited with code %d after %.0f s, restarting it "
                        "in %.1f s", index, pid, code, ran_for, delay)
            with trio.move_on_after(delay):
                await self._stopped.wait()  # a stop ends the wait: nothing to restart

    async def _run_once(self, index: int) -> tuple[int, int, bool]:
        """Start worker ``index`` and wait for it to exit: its pid, exit code (negative:
        the signal that ended it) and whether it ever listened."""
        mine, theirs = socket.socketpair()
        with mine:
            try:
                proc = await trio.lowlevel.open_process(
                    self.command(index, theirs.fileno()), pass_fds=(theirs.fileno(),),
                    # Its own process group: a terminal's Ctrl-C reaches the parent only,
                    # which forwards it once.
                    process_group=0)
            finally:
                theirs.close()
            self._procs[index] = proc
            log.info("worker %d started (pid %d)", index, proc.pid)
            if self._stopping:  # the stop signal came while it was being started
                proc.send_signal(signal.SIGTERM)
            link = trio.socket.from_stdlib_socket(mine)
            # One byte when it listens; end-of-file when it exits before that.
            was_ready = await link.recv(1) == READY
            if was_ready:
                log.info("worker %d (pid %d) is listening", index, proc.pid)
            code = await proc.wait()
        return proc.pid, code, was_ready


def worker_config(config: Config, index: int | None) -> Config:
    """A worker's configuration: the parent's, listening with SO_REUSEPORT under a
    node id of its own (``index`` None: not a worker, unchanged)."""
    if index is None:
        return config
    # A stable name per worker slot: a restarted worker is the same node with a new
    # restart counter, so the others drop its old entries at once (docs/cluster.md).
    base = config.node_id or socket.gethostname()
    changes: dict[str, object] = {"workers": 0, "reuse_port": True,
                                  "node_id": f"{base}-w{index}"}
    if index > 0:
        changes["demo"] = False  # one worker creates the demo account, not a race of N
    return config.updated(changes)


def run_supervisor(config: Config, argv: Sequence[str]) -> int:
    """The ``serve`` command with ``workers`` >= 1 (``argv``: its arguments, for the
    workers). Returns the process exit code."""
    check_workers(config)
    reserved = reserve_ports(config)
    try:
        flags = reserved.flags
        ports = ", ".join(f"{flag[2:]} {port}"
                          for flag, port in zip(flags[::2], flags[1::2], strict=True))
        log.info("supervising %d worker%s sharing %s", config.workers,
                 "s" if config.workers > 1 else "", ports)
        supervisor = Supervisor([*argv, *reserved.flags], config.workers)
        return trio.run(supervisor.run)
    finally:
        reserved.close()


class SupervisorLink:
    """A worker's end of the socket pair to its parent."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)

    def ready(self) -> None:
        try:
            self._sock.sendall(READY)
        except OSError:
            pass  # the parent is gone: the watcher sends the SIGTERM

    def watch_parent(self) -> None:
        """SIGTERM this process once the parent is gone.

        A thread blocked on the socket rather than a trio task: it must work from
        before ``trio.run`` starts and does not care what the event loop is doing.
        """
        threading.Thread(target=self._wait_for_eof, name="supervisor-link", daemon=True).start()

    def _wait_for_eof(self) -> None:
        try:
            while self._sock.recv(64):
                pass
        except OSError:
            pass
        log.warning("the supervisor (parent process) is gone, shutting down")
        os.kill(os.getpid(), signal.SIGTERM)
