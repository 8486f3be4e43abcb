"""The one permission model: permit strings, what each word grants, whose vehicle is whose.

A credential carries a permit string: a comma-separated list of the words in
``KNOWN`` (case-insensitive). A password login holds the account's permissions
(``*`` unless set). v2 logins (relay.v2auth), the REST API, API v4 and the MQTT
auth backend all ask ``may`` here, so a permit means the same everywhere: ``all``
is ``*``, ``V2`` is ``v2``.

``ovms-admin token add`` and ``POST /api/token`` accept only known words
(``parse``), so a typo cannot mint a token that silently grants nothing; stored
permits are read leniently (``words``): an unknown word there grants nothing.

Vehicle ids are checked here too (``vehicle_id``), for every place that takes one
from a client.
"""

from __future__ import annotations

import functools
import re

# Word -> what it grants, as shown to an administrator who used an unknown one.
KNOWN: dict[str, str] = {
    "auth": "log in to the REST API (read-only data)",
    "session": "make REST session cookies",
    "v2": "log in over the v2 protocol (scheme 1)",
    "v3": "authenticate an OVMS v3 module to the MQTT broker",
    "mqtt": "same as v3",
    "v4": "use API v4",
    "control": "send commands to the car (REST control endpoints)",
    "token.admin": "list, create and delete API tokens",
    "admin": "everything an owner can do",
    "all": "everything (same as *)",
    "*": "everything",
    "none": "nothing (a disabled token)",
}
WILDCARDS = frozenset({"*", "all"})

# What a credential may do -> the words that grant it (besides the wildcards).
# READ is granted by any permit that grants anything at all (the public server's
# rule for routes without a right).
READ = "read"
SESSION = "session"
V2_LOGIN = "v2"
V4 = "v4"
MQTT = "mqtt"
CONTROL = "control"
TOKEN_ADMIN = "token.admin"
ADMIN = "admin"  # operating the server (the web console's operator pages)
GRANTED_BY: dict[str, frozenset[str]] = {
    READ: frozenset(),
    SESSION: frozenset({"session"}),
    V2_LOGIN: frozenset({"v2"}),
    V4: frozenset({"v4"}),
    MQTT: frozenset({"v3", "mqtt"}),
    CONTROL: frozenset({"control", "admin"}),
    TOKEN_ADMIN: frozenset({"token.admin", "admin"}),
    ADMIN: frozenset({"admin"}),
}

# The longest API token (the Perl server's column is varchar(64)).
TOKEN_MAX = 64
_VEHICLE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class UnknownPermit(ValueError):
    """A permit string holds a word that grants nothing known."""


@functools.lru_cache(maxsize=1024)
def words(permit: str) -> frozenset[str]:
    """The words of a stored permit, lower-cased, ``all`` spelt ``*``; unknown ones kept
    (they grant nothing). Cached: every REST request asks, with a handful of strings."""
    found = frozenset(w.strip().lower() for w in permit.split(",") if w.strip())
    return found - {"all"} | {"*"} if "all" in found else found


def parse(permit: str) -> frozenset[str]:
    """The words of ``permit``, lower-cased; raises UnknownPermit naming what exists."""
    found = frozenset(w.strip().lower() for w in permit.split(",") if w.strip())
    unknown = sorted(found - KNOWN.keys())
    if unknown:
        raise UnknownPermit(
            f"unknown permit {', '.join(unknown)}; known permits: {', '.join(KNOWN)}")
    if not found:
        raise UnknownPermit(f"empty permit; known permits: {', '.join(KNOWN)}")
    return found


def grants_nothing(permit: str) -> bool:
    """A permit of ``none`` (or nothing) authenticates nobody, as on the public server."""
    return words(permit) <= {"none"}


def may(permit: str, action: str) -> bool:
    """May a credential holding ``permit`` do ``action`` (one of ``GRANTED_BY``)?"""
    held = words(permit)
    if held <= {"none"}:
        return False
    if "*" in held or action == READ:
        return True
    return not held.isdisjoint(GRANTED_BY[action])


def may_on(owner: str, permit: str, action: str, vehicle_owner: str | None) -> bool:
    """``may``, on a vehicle owned by ``vehicle_owner`` (None: no such vehicle)."""
    return vehicle_owner is not None and vehicle_owner == owner and may(permit, action)


def covers(held: str, wanted: str) -> bool:
    """Does ``held`` hold every right of ``wanted``? (No escalation when minting tokens;
    everyone may mint ``auth`` and ``none`` tokens.)"""
    have = words(held)
    return "*" in have or words(wanted) <= have | {"auth", "none"}


def token_candidate(secret: str) -> bool:
    """Could ``secret`` be an API token rather than a password? Ours are 64 hex
    characters; those imported from the Perl server any text of up to 64. Looking one
    up costs a SHA-256 and an indexed read, so every such secret is tried."""
    return 0 < len(secret) <= TOKEN_MAX


def vehicle_id(text: str) -> str | None:
    """``text`` upper-cased if it is a valid vehicle id (1-32 of ``[A-Za-z0-9_-]``), else
    None."""
    return text.upper() if _VEHICLE_ID_RE.fullmatch(text) else None
