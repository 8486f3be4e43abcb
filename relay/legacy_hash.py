"""Owner password hashes imported from the public (Perl) server: Drupal 7's ``$S$`` form.

The public server authenticated against Drupal, which stores ``$S$`` + one
character giving log2 of the iteration count + 8 characters of salt + 43
characters of an iterated SHA-512, all in Drupal's own base64 alphabet. Such a
hash is kept at import and checked here on the owner's next login; the store then
replaces it with the project's argon2 hash (``relay.store.Store.check_password``).
"""

from __future__ import annotations

import hashlib
import hmac

PREFIX = "$S$"
ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HASH_LENGTH = 55
SETTING_LENGTH = 12  # "$S$", the count character and 8 salt characters
# Drupal's own bounds on the iteration count's log2; anything outside is not a hash it made.
MIN_LOG2, MAX_LOG2 = 7, 30
# Drupal refuses longer passwords outright (a DoS guard on the iterated hash).
MAX_PASSWORD_BYTES = 512


def is_legacy(password_hash: str) -> bool:
    """True for a stored hash in Drupal 7's form (to be replaced at the next login)."""
    return password_hash.startswith(PREFIX)


def encode64(data: bytes) -> str:
    """Drupal's base64: each group of up to 3 bytes read little-endian, 6 bits at a time."""
    out = []
    for start in range(0, len(data), 3):
        group = data[start:start + 3]
        value = int.from_bytes(group, "little")
        # 1 byte needs 2 characters, 2 bytes 3, 3 bytes 4.
        for k in range(len(group) + 1):
            out.append(ALPHABET[(value >> (6 * k)) & 0x3F])
    return "".join(out)


def drupal7_hash(password: str, setting: str) -> str | None:
    """The hash of ``password`` under ``setting`` (the first 12 characters of a stored hash).

    None if the setting is not a valid ``$S$`` setting or the password is too long.
    """
    if len(setting) < SETTING_LENGTH or not setting.startswith(PREFIX):
        return None
    log2 = ALPHABET.find(setting[3])
    if not MIN_LOG2 <= log2 <= MAX_LOG2:
        return None
    salt = setting[4:SETTING_LENGTH]
    if len(salt) != 8:
        return None
    secret = password.encode("utf-8", "surrogateescape")
    if len(secret) > MAX_PASSWORD_BYTES:
        return None
    digest = hashlib.sha512(salt.encode("utf-8", "surrogateescape") + secret).digest()
    for _ in range(1 << log2):
        digest = hashlib.sha512(digest + secret).digest()
    return (setting[:SETTING_LENGTH] + encode64(digest))[:HASH_LENGTH]


def verify(stored: str, password: str) -> bool:
    """True if ``password`` matches the Drupal 7 hash ``stored``; never raises."""
    if not is_legacy(stored) or len(stored) != HASH_LENGTH:
        return False
    computed = drupal7_hash(password, stored[:SETTING_LENGTH])
    if computed is None:
        return False
    return hmac.compare_digest(computed.encode("ascii"), stored.encode("utf-8", "surrogateescape"))
