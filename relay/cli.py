"""``ovms-relay``: the server's command line."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import trio

from relay import __version__, db
from relay.app import RelayHandle, run_relay
from relay.config import Config, ConfigError, load_toml
from relay.dblock import DatabaseInUse, DatabaseLock
from relay.gctune import tune_gc
from relay.logjson import FORMATS, formatter
from relay.logsafe import install_on_root
from relay.reload import log_level_number, reload
from relay.store.engines import is_postgres, redact
from relay.supervisor import SupervisorLink, run_supervisor, worker_config

log = logging.getLogger("relay")

DB_ENV = "OVMS_RELAY_DB"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovms-relay", description="OVMS v2 relay server")
    parser.add_argument("--version", action="version", version=f"ovms-relay {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--db", metavar="PATH|URL",
                       help="SQLite database file or postgresql://USER[:PW]@HOST[:PORT]/DB "
                            "(default: $OVMS_RELAY_DB or ovms-relay.db)")
    serve.add_argument("--bus", metavar="URL",
                       help="cluster mode: share traffic with other relays over NATS, "
                            "e.g. nats://127.0.0.1:4222")
    serve.add_argument("--node-id", metavar="NAME",
                       help="this relay's name on the bus (default: host name and pid)")
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--v2-port", type=int, metavar="N", help="v2 protocol port (default 6867)")
    serve.add_argument("--http-port", type=int, metavar="N", help="REST API port (default 6868)")
    serve.add_argument("--tls-cert", metavar="FILE",
                       help="TLS certificate (PEM); with --tls-key enables the TLS ports")
    serve.add_argument("--tls-key", metavar="FILE", help="private key of --tls-cert (PEM)")
    serve.add_argument("--v2-tls-port", type=int, metavar="N",
                       help="v2 protocol over TLS port (default 6870)")
    serve.add_argument("--https-port", type=int, metavar="N",
                       help="REST API over TLS port (default 6869)")
    serve.add_argument("--allow-plain-login", action="store_true", default=None,
                       help="accept scheme 1 (password) logins on the plain-TCP port")
    serve.add_argument("--demo", action="store_true", default=None,
                       help="create a demo account and vehicle if the database has none")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    serve.add_argument("--log-format", choices=FORMATS,
                       help="text (default) or json: one JSON object per log line")
    serve.add_argument("--webhook-allow", action="append", metavar="PREFIX",
                       help="also allow push webhook/ntfy URLs starting with PREFIX, e.g. "
                            "http://127.0.0.1:8080/ (repeatable; replaces the config file's list)")
    serve.add_argument("--console-tile-url", metavar="URL",
                       help="map tiles for the web console, e.g. "
                            "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)")
    serve.add_argument("--mqtt", metavar="URL",
                       help="serve OVMS v3 modules through this MQTT broker: "
                            "mqtt://USER:PASSWORD@HOST[:PORT] or mqtts://... (default: off)")
    serve.add_argument("--mqtt-prefix", metavar="TOPIC",
                       help="topic prefix v3 modules publish under (default ovms)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="run N worker processes sharing the ports, restarted when one "
                            "dies (more than 1 needs --bus; docs/cluster.md)")
    # Set by the supervisor on the workers it starts (relay/supervisor.py).
    serve.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    serve.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    for name, text in (("car-timeout", "seconds a silent car is kept"),
                       ("app-timeout", "seconds a silent app is kept"),
                       ("batch-timeout", "seconds a silent batch client is kept"),
                       ("welcome-timeout", "seconds to wait for a client's first line")):
        serve.add_argument(f"--{name}", type=float, metavar="S", help=text)
    return parser


def make_config(args: argparse.Namespace) -> Config:
    config = Config()
    # The same default as ovms-admin's, below the config file and --db.
    if os.environ.get(DB_ENV):
        config = config.updated({"db": os.environ[DB_ENV]})
    if args.config:
        config = config.updated(load_toml(args.config))
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in Config.field_names()
        if name != "config"
    }
    return config.updated(overrides)


def ensure_demo(path: str) -> list[str]:
    """Create the demo owner and vehicle in an empty database; lines telling their credentials.

    The lines are printed only once the server is listening: a start that fails
    must not show passwords of an account that is then removed with its database.
    """
    conn = db.connect(path)
    try:
        if db.list_owners(conn):
            return ["ovms-relay: --demo: database already has accounts; nothing created "
                    "(ovms-admin owner passwd demo resets the demo password, "
                    "ovms-admin vehicle show DEMO shows the carpass)"]
        password = secrets.token_urlsafe(9)
        carpass = secrets.token_urlsafe(9)
        db.add_owner(conn, "demo", password)
        db.add_vehicle(conn, "DEMO", "demo", carpass)
    finally:
        conn.close()
    return ["ovms-relay: demo account created",
            f"  owner: demo   password: {password}",
            f"  vehicle: DEMO   carpass (server password / module password): {carpass}"]


async def _serve(config: Config, notices: list[str], listening: Callable[[], None],
                 load: Callable[[], Config] | None = None) -> None:
    # Signals are caught from before the first listener opens: a SIGTERM right after the
    # "listening" line (a supervisor, a test) must shut down cleanly, not kill the process.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with trio.open_nursery() as nursery:
            handle: RelayHandle = await nursery.start(run_relay, config)
            listening()
            extra = "".join(
                f", {label} on port {port}"
                for label, port in (("REST API", handle.http_port),
                                    ("v2 over TLS", handle.v2_tls_port),
                                    ("REST API over TLS", handle.https_port))
                if port is not None
            )
            for line in notices:
                print(line)
            print(f"ovms-relay {__version__}: v2 protocol on {config.host}:{handle.v2_port}"
                  f"{extra}, database {redact(config.db)}", flush=True)
            async for signum in signals:
                if signum == signal.SIGHUP:
                    if load is None:
                        log.info("received SIGHUP: no configuration to reload")
                    else:
                        log.info("received SIGHUP, reloading the configuration")
                        config = reload(handle, config, load)
                    continue
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def _remove_database(path: str) -> None:
    """Undo a start that failed: the database file it created, with WAL and lock files."""
    for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
        Path(path + suffix).unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = make_config(args)
        if config.log_format not in FORMATS:
            raise ConfigError(f"log_format must be one of {', '.join(FORMATS)}")
        logging.basicConfig(level=log_level_number(config.log_level))
        for handler in logging.getLogger().handlers:
            handler.setFormatter(formatter(
                config.log_format, "" if args.worker_index is None else f"w{args.worker_index}"))
        # Peers control much of what gets logged: no credentials, control characters or
        # floods of one line reach the log (libraries' lines included).
        install_on_root()
        tune_gc()
        if args.worker_index is None and config.workers:
            return run_supervisor(config, sys.argv[1:] if argv is None else argv)
        link = None if args.supervisor_fd is None else SupervisorLink(args.supervisor_fd)
        if link is not None:
            link.watch_parent()

        def load() -> Config:
            # SIGHUP reads the file again, with the command line's flags still on top.
            return worker_config(make_config(args), args.worker_index)

        return _start(worker_config(config, args.worker_index), load,
                      on_listening=None if link is None else link.ready)
    except (ConfigError, db.DatabaseError, db.AdminError, DatabaseInUse) as exc:
        print(f"ovms-relay: error: {exc}", file=sys.stderr)
        return 1


def _start(config: Config, load: Callable[[], Config] | None = None,
           on_listening: Callable[[], None] | None = None) -> int:
    # A server (PostgreSQL) is shared by design (cluster mode); a file is one server's;
    # an in-memory database is this process's alone (no lock file to leave behind).
    is_file = not is_postgres(config.db) and config.db != ":memory:"
    is_new = is_file and not Path(config.db).exists()
    started = False

    def listening() -> None:
        nonlocal started
        started = True
        if on_listening is not None:
            on_listening()

    try:
        with DatabaseLock(config.db) if is_file else nullcontext():
            try:
                notices: list[str] = []
                if config.demo:
                    notices = ensure_demo(config.db)
                else:
                    db.connect(config.db).close()  # fail fast, with one line, on a bad database
                trio.run(_serve, config, notices, listening, load)
            finally:
                if is_new and not started:
                    _remove_database(config.db)
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, (ConfigError, db.DatabaseError, db.AdminError, OSError, ValueError)):
            _log_crash(started, leaf)
            print(f"ovms-relay: error: {_describe(leaf)}", file=sys.stderr)
            return 1
        raise
    except (ConfigError, db.DatabaseError, db.AdminError, DatabaseInUse) as exc:
        print(f"ovms-relay: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        _log_crash(started, exc)
        print(f"ovms-relay: error: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


def _log_crash(started: bool, exc: BaseException) -> None:
    """Once the server ran, an error that stops it may be a bug: keep its traceback in
    the log (the one line on stderr is for whoever started it)."""
    if started:
        log.error("server stopped by %s", type(exc).__name__, exc_info=exc)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
