"""``ovms-admin mqtt-passwd``: a Mosquitto password file and ACL file for v3 modules.

For a plain Mosquitto without an HTTP auth plugin (the Debian package): each
owner's modules log in to the broker as the owner and may use only
``<prefix>/<owner>/#``; the relay's own account (``--superuser``, default
``ovms-relay``) may use every topic. Owner passwords are stored hashed with
Argon2 in the relay's database, which Mosquitto cannot check, so the MQTT
password of an owner is set here (``--owner NAME --password PW``) and kept in
the password file, in the format ``mosquitto_passwd`` writes (``$7$``:
PBKDF2-SHA512, 101 iterations, 12-byte salt).

Every run rewrites both files from the database: entries of owners that no
longer exist are dropped (their modules lose access), every remaining owner's
ACL is written. The files are replaced atomically; send Mosquitto a SIGHUP to
reload them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay import db

ITERATIONS = 101
SALT_BYTES = 12
DEFAULT_SUPERUSER = "ovms-relay"
# Characters that cannot be in a topic segment (owner) or a password-file user name.
_BAD_USER = set("/+#:\n\r\0")


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = ITERATIONS) -> str:
    """``$7$<iterations>$<salt b64>$<hash b64>``, as mosquitto_passwd writes."""
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return (f"$7${iterations}${base64.b64encode(salt).decode()}$"
            f"{base64.b64encode(digest).decode()}")


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``$7$`` entry (for the tests and the curious)."""
    parts = stored.split("$")
    if len(parts) != 5 or parts[1] != "7":
        return False
    salt = base64.b64decode(parts[3])
    expected = hash_password(password, salt=salt, iterations=int(parts[2]))
    return hmac.compare_digest(expected, stored)


def read_entries(path: Path) -> dict[str, str]:
    """``user -> hash`` of an existing password file (none if it does not exist)."""
    entries: dict[str, str] = {}
    try:
        text = path.read_text()
    except FileNotFoundError:
        return entries
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if sep:
            entries[user] = stored
    return entries


def valid_user(name: str) -> bool:
    return bool(name) and not (_BAD_USER & set(name)) and name == name.strip()


def acl_text(owners: list[str], superuser: str, prefix: str) -> str:
    lines = ["# Written by ovms-admin mqtt-passwd: each owner's modules may use only",
             f"# {prefix}/<owner>/#; the relay's own account every topic.", "",
             f"user {superuser}", "topic readwrite #", ""]
    for owner in owners:
        lines += [f"user {owner}", f"topic readwrite {prefix}/{owner}/#", ""]
    return "\n".join(lines)


def _write_atomic(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _mqtt_passwd(conn: sqlite3.Connection, args: argparse.Namespace) -> None:
    read_password: Callable[[str | None], str] = args.read_password
    path = Path(args.file)
    acl_path = Path(args.acl) if args.acl else path.with_name(path.name + ".acl")
    prefix = args.prefix.strip("/")
    if not prefix or set("+#") & set(prefix):
        raise db.AdminError("--prefix must be a topic such as ovms, without + or #")
    owners = [o["name"] for o in db.list_owners(conn)]
    superuser = args.superuser
    if not valid_user(superuser):
        raise db.AdminError("--superuser cannot be an MQTT user name")
    entries = read_entries(path)
    if args.owner is not None:
        if args.owner not in owners:
            raise db.AdminError(f"unknown owner {args.owner!r}")
        if not valid_user(args.owner):
            raise db.AdminError(f"owner {args.owner!r} cannot be an MQTT user name "
                                "(it holds '/', '+', '#' or ':')")
        entries[args.owner] = hash_password(read_password(args.password))
    if args.superuser_password is not None:
        entries[superuser] = hash_password(read_password(args.superuser_password))
    kept = {user: h for user, h in entries.items()
            if user == superuser or (user in owners and valid_user(user))}
    for user in sorted(set(entries) - set(kept)):
        print(f"{user}: removed (no such owner)")
    _write_atomic(path, "".join(f"{u}:{h}\n" for u, h in sorted(kept.items())), 0o640)
    with_password = sorted(u for u in kept if u != superuser)
    _write_atomic(acl_path, acl_text(with_password, superuser, prefix), 0o644)
    without = [o for o in owners if o not in kept and valid_user(o)]
    print(f"{path}: {len(kept)} users; {acl_path}: {len(with_password)} owners")
    if superuser not in kept:
        print(f"note: no password for the relay's account {superuser!r} yet "
              "(--superuser-password)")
    if without:
        print(f"owners without an MQTT password: {', '.join(without)}")


def add_commands(groups: argparse._SubParsersAction[Any],
                 read_password: Callable[[str | None], str]) -> None:
    """Register ``mqtt-passwd`` with ``ovms-admin`` (tools/admin.py), which passes its
    one way of taking a password (flag, ``-`` for stdin, or asked at the terminal)."""
    p = groups.add_parser(
        "mqtt-passwd",
        help="write a Mosquitto password file and ACL file for OVMS v3 modules")
    p.add_argument("file", metavar="FILE", help="the password file (read, then rewritten)")
    p.add_argument("--acl", metavar="FILE", help="the ACL file (default: FILE.acl)")
    p.add_argument("--owner", metavar="NAME", help="set this owner's MQTT password")
    p.add_argument("--password", help="the owner's MQTT password, or - to read it from "
                   "stdin (default: ask at the terminal, else read stdin)")
    p.add_argument("--superuser", default=DEFAULT_SUPERUSER, metavar="NAME",
                   help="the relay's own account, allowed every topic (default %(default)s)")
    p.add_argument("--superuser-password", metavar="PW",
                   help="set the relay's account's password (- reads stdin)")
    p.add_argument("--prefix", default="ovms", help="topic prefix (default %(default)s)")
    p.set_defaults(func=_mqtt_passwd, read_password=read_password)
