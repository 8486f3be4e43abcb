"""The permit words an owner's API token may carry, and what each one grants.

A permit string is a comma-separated list of these words (case-insensitive).
``ovms-admin token add`` and ``POST /api/token`` accept only known words, so a
typo cannot mint a token that silently grants nothing.
"""

from __future__ import annotations

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


class UnknownPermit(ValueError):
    """A permit string holds a word that grants nothing known."""


def parse(permit: str) -> frozenset[str]:
    """The words of ``permit``, lower-cased; raises UnknownPermit naming what exists."""
    words = frozenset(w.strip().lower() for w in permit.split(",") if w.strip())
    unknown = sorted(words - KNOWN.keys())
    if unknown:
        raise UnknownPermit(
            f"unknown permit {', '.join(unknown)}; known permits: {', '.join(KNOWN)}")
    if not words:
        raise UnknownPermit(f"empty permit; known permits: {', '.join(KNOWN)}")
    return words
