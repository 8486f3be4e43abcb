"""``ovms-admin``: manage owners, vehicles, API tokens and provisioning records.

Works directly on the relay's database, a SQLite file or a ``postgresql://`` URL
(safe while the server runs: the server re-reads vehicles and owners after its
cache TTL). Output is one line per
item, tab-separated, for scripts; errors are one line on stderr::

    ovms-admin: error: <reason>

Exit status: 0 on success, 1 on an error, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from protocol import provisioning
from relay import db, permits, tls
from tools import backup, import_perl, migrate, mqtt_passwd
from tools.clikit import Parser, UsageError

PROG = "ovms-admin"
DEFAULT_DB = "ovms-relay.db"


def _fmt_time(value: float | None) -> str:
    if value is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


def _row(*fields: Any) -> str:
    return "\t".join("-" if f is None else str(f) for f in fields)


def _read_password(value: str | None) -> str:
    """The password given, ``-`` for the first line of stdin, or asked for at a terminal."""
    if value is None:
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\r\n")
        first = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != first:
            raise db.AdminError("the two passwords differ")
        return first
    if value != "-":
        return value
    return sys.stdin.readline().rstrip("\r\n")


# --------------------------------------------------------------------------- commands


def _owner_add(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.add_owner(conn, args.name, _read_password(args.password), args.permissions)
    print(f"owner {args.name} added")


def _owner_list(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    for o in db.list_owners(conn):
        status = "active" if o["status"] > 0 else "disabled"
        print(_row(o["name"], status, o["permissions"], o["vehicles"], _fmt_time(o["created"])))


def _owner_passwd(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.set_password(conn, args.name, _read_password(args.password))
    print(f"owner {args.name} password changed")


def _owner_delete(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.delete_owner(conn, args.name)
    print(f"owner {args.name} deleted")


def _owner_rename(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.rename_owner(conn, args.old, args.new)
    print(f"owner {args.old} renamed to {args.new}")


def _vehicle_add(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    vid = db.add_vehicle(conn, args.vehicleid, args.owner, args.carpass, args.type)
    print(f"vehicle {vid} added for owner {args.owner}")


def _vehicle_list(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    for v in db.list_vehicles(conn, args.owner):
        print(_row(v["vehicleid"], v["owner"], v["vtype"], _fmt_time(v["lastupdate"]),
                   v["name"]))


def _vehicle_show(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    """One vehicle with its carpass: what the module and the app are configured with."""
    vehicle = db.get_vehicle(conn, db.normalize_vehicleid(args.vehicleid))
    if vehicle is None:
        raise db.AdminError(f"no vehicle {args.vehicleid.upper()!r}")
    print(_row(vehicle["vehicleid"], vehicle["owner"], vehicle["vtype"], vehicle["carpass"],
               _fmt_time(vehicle["lastupdate"]), vehicle["name"]))


def _vehicle_name(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    name = db.set_vehicle_name(conn, args.vehicleid, args.name)
    vid = args.vehicleid.upper()
    print(f"vehicle {vid} named {name}" if name else f"vehicle {vid} name cleared")


def _vehicle_delete(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.delete_vehicle(conn, args.vehicleid)
    print(f"vehicle {args.vehicleid.upper()} deleted")


def _vehicle_carpass(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.set_carpass(conn, args.vehicleid, args.carpass)
    print(f"vehicle {args.vehicleid.upper()} car password changed")


def _token_add(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    try:
        permits.parse(args.permit)
    except permits.UnknownPermit as exc:
        raise db.AdminError(str(exc)) from None
    print(db.add_token(conn, args.owner, args.application, args.purpose, args.permit))


def _token_list(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    for t in db.list_tokens(conn, args.owner):
        print(
            _row(
                t["token_hash"],
                t["application"] or "-",
                t["purpose"] or "-",
                t["permit"],
                _fmt_time(t["created"]),
                _fmt_time(t["lastused"]),
            )
        )


def _token_delete(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.delete_token(conn, args.owner, args.token)
    print(f"token deleted for owner {args.owner}")


def _provision_add(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.add_provision(
        conn,
        args.apkey,
        args.stoken,
        args.sdigest,
        args.provisioning,
        owner=args.owner,
        vehicleid=args.vehicle,
    )
    print(f"provisioning record {args.apkey} added")


def _provision_create(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    """Compute a record from VIN, ICCID and parameters (docs/auto-provisioning.md)."""
    try:
        apkey = (provisioning.check_apkey(args.apkey) if args.apkey
                 else provisioning.apkey_for_vin(args.vin))
        text = provisioning.parameter_text(args.parameters)
        record = provisioning.create_record(apkey, args.iccid, text)
    except provisioning.ProvisioningError as exc:
        raise db.AdminError(str(exc)) from None
    db.add_provision(conn, record.apkey, record.stoken, record.sdigest, record.provisioning,
                     owner=args.owner, vehicleid=args.vehicle)
    # The ICCID and the parameters (they usually hold passwords) are not echoed.
    print(f"provisioning record {record.apkey} created ({len(args.parameters)} parameters)")


def _write_new(path: str, data: bytes, mode: int, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise db.AdminError(f"{path} exists (use --force to overwrite)") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _selfsigned(conn: db.AdminConnection | None, args: argparse.Namespace) -> None:
    hosts = args.host or ["localhost"]
    # Checked up front so a refusal never leaves a new key next to an old certificate.
    existing = [path for path in (args.cert, args.key) if os.path.exists(path)]
    if existing and not args.force:
        raise db.AdminError(f"{existing[0]} exists (use --force to overwrite)")
    cert_pem, key_pem = tls.generate_self_signed(hosts, days=args.days)
    _write_new(args.key, key_pem, 0o600, args.force)  # the key is for the server's eyes only
    _write_new(args.cert, cert_pem, 0o644, args.force)
    print(f"self-signed certificate for {', '.join(hosts)} ({args.days} days) written to "
          f"{args.cert}, key to {args.key}")


def _provision_list(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    for p in db.list_provisions(conn):
        print(_row(p["apkey"], p["owner"], p["vehicleid"], _fmt_time(p["created"])))


def _provision_delete(conn: db.AdminConnection, args: argparse.Namespace) -> None:
    db.delete_provision(conn, args.apkey)
    print(f"provisioning record {args.apkey} deleted")


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description="Administer the ovms-relay database.")
    parser.add_argument(
        "--db",
        default=os.environ.get("OVMS_RELAY_DB") or DEFAULT_DB,
        metavar="PATH|URL",
        help="SQLite database file or postgresql://USER[:PW]@HOST[:PORT]/DB "
             "(default: $OVMS_RELAY_DB or %(default)s)",
    )
    groups = parser.add_subparsers(
        dest="group",
        metavar="{owner,vehicle,token,provision,selfsigned,import-perl,backup,restore,"
                "migrate,mqtt-passwd}")
    groups.required = True

    def commands(name: str, help_text: str) -> argparse._SubParsersAction[Any]:
        sub = groups.add_parser(name, help=help_text)
        actions = sub.add_subparsers(dest="command", metavar="COMMAND")
        actions.required = True
        return actions

    def command(
        actions: argparse._SubParsersAction[Any],
        name: str,
        func: Callable[[db.AdminConnection, argparse.Namespace], None],
        help_text: str,
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        return p

    owner = commands("owner", "owners (accounts)")
    p = command(owner, "add", _owner_add, "add an owner")
    p.add_argument("name")
    p.add_argument("--password", required=True, help="password, or - to read it from stdin")
    p.add_argument("--permissions", default="*")
    command(owner, "list", _owner_list, "list owners")
    p = command(owner, "passwd", _owner_passwd, "set an owner's password")
    p.add_argument("name")
    p.add_argument("--password", help="the new password, or - to read it from stdin "
                   "(default: ask at the terminal, else read stdin)")
    p = command(owner, "delete", _owner_delete, "delete an owner with its vehicles and data")
    p.add_argument("name")
    p = command(owner, "rename", _owner_rename,
                "rename an owner (vehicles, tokens, subscriptions follow)")
    p.add_argument("old")
    p.add_argument("new")

    vehicle = commands("vehicle", "vehicles")
    p = command(vehicle, "add", _vehicle_add, "add a vehicle")
    p.add_argument("vehicleid")
    p.add_argument("--owner", required=True)
    p.add_argument("--carpass", required=True)
    p.add_argument(
        "--type", default="CAR", type=str.upper, choices=db.VEHICLE_TYPES, help="CAR or SERVER"
    )
    p = command(vehicle, "list", _vehicle_list,
                "list vehicles (id, owner, type, last update, name)")
    p.add_argument("--owner")
    p = command(vehicle, "show", _vehicle_show,
                "show a vehicle with its carpass (id, owner, type, carpass, last update, name)")
    p.add_argument("vehicleid")
    p = command(vehicle, "delete", _vehicle_delete, "delete a vehicle and its data")
    p.add_argument("vehicleid")
    p = command(vehicle, "carpass", _vehicle_carpass, "change a vehicle's car password")
    p.add_argument("vehicleid")
    p.add_argument("carpass")
    p = command(vehicle, "name", _vehicle_name,
                f"set a vehicle's display name (at most {db.MAX_VEHICLE_NAME} characters, "
                "'' clears it)")
    p.add_argument("vehicleid")
    p.add_argument("name")

    token = commands("token", "API tokens")
    p = command(token, "add", _token_add, "create a token (printed once)")
    p.add_argument("--owner", required=True)
    p.add_argument("--application", default="")
    p.add_argument("--purpose", default="")
    p.add_argument("--permit", default="auth",
                   help=f"comma-separated rights (default %(default)s): {', '.join(permits.KNOWN)}")
    p = command(token, "list", _token_list, "list an owner's tokens (by hash)")
    p.add_argument("--owner", required=True)
    p = command(token, "delete", _token_delete, "delete a token (plain token or its hash)")
    p.add_argument("--owner", required=True)
    p.add_argument("token")

    provision = commands("provision", "provisioning records")
    p = command(provision, "add", _provision_add, "add a provisioning record")
    p.add_argument("apkey")
    p.add_argument("--stoken", required=True)
    p.add_argument("--sdigest", required=True)
    p.add_argument("--provisioning", required=True)
    p.add_argument("--owner")
    p.add_argument("--vehicle")
    p = command(provision, "create", _provision_create,
                "compute and add a record from VIN, ICCID and parameters")
    p.add_argument("--vin", required=True, help="the vehicle's VIN (the module's default apkey)")
    p.add_argument("--iccid", required=True, help="ICCID of the module's SIM (the secret)")
    p.add_argument("--apkey", help="key the module sends instead of the VIN")
    p.add_argument("--owner")
    p.add_argument("--vehicle")
    p.add_argument("parameters", nargs="+", metavar="PARAM",
                   help="the module's parameters in order (put -- before them)")
    command(provision, "list", _provision_list, "list provisioning records")
    p = command(provision, "delete", _provision_delete, "delete a provisioning record")
    p.add_argument("apkey")

    p = groups.add_parser("selfsigned", help="create a self-signed TLS certificate (testing)")
    p.add_argument("--cert", required=True, metavar="FILE", help="certificate file to write")
    p.add_argument("--key", required=True, metavar="FILE", help="private key file to write")
    p.add_argument("--host", action="append", metavar="NAME",
                   help="host name or IP address it is for (repeatable; default localhost)")
    p.add_argument("--days", type=int, default=365, help="validity (default %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    # No database involved: run() skips opening one.
    p.set_defaults(func=_selfsigned, no_db=True)
    import_perl.add_commands(groups)
    backup.add_commands(groups)
    migrate.add_commands(groups)
    mqtt_passwd.add_commands(groups, _read_password)

    return parser


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return status


def run(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc), 2)
    conn: db.AdminConnection | None = None
    try:
        if not getattr(args, "no_db", False):
            conn = db.connect(args.db)
        args.func(conn, args)
    except (db.AdminError, db.DatabaseError) as exc:
        return _fail(str(exc), 1)
    except sqlite3.Error as exc:
        return _fail(f"database error: {exc}", 1)
    except OSError as exc:
        return _fail(exc.strerror or str(exc), 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # last resort: still one line, no traceback
        return _fail(f"{type(exc).__name__}: {exc}", 1)
    finally:
        if conn is not None:
            conn.close()
    return 0


def main(argv: Sequence[str] | None = None) -> NoReturn:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
