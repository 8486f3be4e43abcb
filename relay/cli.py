"""``ovms-relay``: the server's command line."""

from __future__ import annotations

import argparse
import logging
import secrets
import signal
import sys
from typing import Any

import trio

from relay import __version__, db
from relay.app import RelayHandle, run_relay
from relay.config import Config, ConfigError, load_toml
from relay.gctune import tune_gc

log = logging.getLogger("relay")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ovms-relay", description="OVMS v2 relay server")
    parser.add_argument("--version", action="version", version=f"ovms-relay {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument("--db", metavar="PATH", help="SQLite database file (default ovms-relay.db)")
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
    serve.add_argument("--webhook-allow", action="append", metavar="PREFIX",
                       help="also allow push webhook/ntfy URLs starting with PREFIX, e.g. "
                            "http://127.0.0.1:8080/ (repeatable; replaces the config file's list)")
    serve.add_argument("--console-tile-url", metavar="URL",
                       help="map tiles for the web console, e.g. "
                            "https://tile.openstreetmap.org/{z}/{x}/{y}.png (default: none)")
    for name, text in (("car-timeout", "seconds a silent car is kept"),
                       ("app-timeout", "seconds a silent app is kept"),
                       ("batch-timeout", "seconds a silent batch client is kept"),
                       ("welcome-timeout", "seconds to wait for a client's first line")):
        serve.add_argument(f"--{name}", type=float, metavar="S", help=text)
    return parser


def make_config(args: argparse.Namespace) -> Config:
    config = Config()
    if args.config:
        config = config.updated(load_toml(args.config))
    overrides: dict[str, Any] = {
        name: getattr(args, name, None)
        for name in Config.field_names()
        if name != "config"
    }
    return config.updated(overrides)


def ensure_demo(path: str) -> None:
    """Create the demo owner and vehicle in an empty database and print their credentials."""
    conn = db.connect(path)
    try:
        if db.list_owners(conn):
            print("ovms-relay: --demo: database already has accounts; nothing created")
            return
        password = secrets.token_urlsafe(9)
        carpass = secrets.token_urlsafe(9)
        db.add_owner(conn, "demo", password)
        db.add_vehicle(conn, "DEMO", "demo", carpass)
    finally:
        conn.close()
    print("ovms-relay: demo account created")
    print(f"  owner: demo   password: {password}")
    print(f"  vehicle: DEMO   carpass (server password / module password): {carpass}")
    sys.stdout.flush()


async def _serve(config: Config) -> None:
    async with trio.open_nursery() as nursery:
        handle: RelayHandle = await nursery.start(run_relay, config)
        extra = "".join(
            f", {label} on port {port}"
            for label, port in (("REST API", handle.http_port),
                                ("v2 over TLS", handle.v2_tls_port),
                                ("REST API over TLS", handle.https_port))
            if port is not None
        )
        print(f"ovms-relay {__version__}: v2 protocol on {config.host}:{handle.v2_port}"
              f"{extra}, database {config.db}", flush=True)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = make_config(args)
        logging.basicConfig(
            level=config.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        tune_gc()
        if config.demo:
            ensure_demo(config.db)
        else:
            db.connect(config.db).close()  # fail fast, with one line, on a bad database
        trio.run(_serve, config)
    except BaseExceptionGroup as group:
        leaf = _first_leaf(group)
        if isinstance(leaf, (ConfigError, db.DatabaseError, db.AdminError, OSError, ValueError)):
            print(f"ovms-relay: error: {_describe(leaf)}", file=sys.stderr)
            return 1
        raise
    except (ConfigError, db.DatabaseError, db.AdminError) as exc:
        print(f"ovms-relay: error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"ovms-relay: error: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


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
