"""Scheme 0 cryptography: HMAC-MD5 digests, the session key and the RC4 line ciphers.

MD5 and RC4 are weak, but they are what every OVMS car module in the field
speaks; the protocol cannot change them. Deployments that care use TLS.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import string

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

# The OVMS tokens are drawn from the base64 alphabet (22 chars in practice).
TOKEN_ALPHABET = string.ascii_letters + string.digits + "+/"
TOKEN_LENGTH = 22
# Both sides throw away the first 1024 bytes of each RC4 stream (RC4-drop[1024]),
# which removes the worst of RC4's early-keystream bias.
RC4_DISCARD = 1024
# The discarded keystream prefix, fed through each new stream (made once, not per stream).
_DISCARD = bytes(RC4_DISCARD)
# An HMAC-MD5 digest: 16 bytes, 22 base64 characters before the "==" padding.
DIGEST_SIZE = 16
_DIGEST_B64_CHARS = 22
_B64_CHARS = frozenset(TOKEN_ALPHABET)


# Random bytes whose base64 starts with TOKEN_LENGTH characters of 6 random bits each.
_TOKEN_BYTES = (TOKEN_LENGTH * 6 + 7) // 8


def make_token(avoid: str | None = None) -> str:
    """A fresh random token; never equal to ``avoid`` (the peer's token).

    Base64 of random bytes: every login makes one, and one system call for it (not
    one per character, as drawing each from the alphabet would) matters at
    thousands of logins a second.
    """
    while True:
        raw = secrets.token_bytes(_TOKEN_BYTES)
        token = base64.b64encode(raw).decode("ascii")[:TOKEN_LENGTH]
        if token != avoid:
            return token


def hmac_md5(secret: bytes, message: bytes) -> bytes:
    return hmac.new(secret, message, "md5").digest()


def token_digest(secret: bytes, token: str) -> str:
    """base64(HMAC-MD5(secret, token)): the digest sent next to a token (padded, as the
    public server sends it)."""
    return base64.b64encode(hmac_md5(secret, token.encode("ascii"))).decode("ascii")


def unpadded_b64(data: bytes) -> str:
    """base64 without its ``=`` padding, as Perl's ``b64digest`` writes digests."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def decode_digest(text: str) -> bytes | None:
    """The 16 bytes of a base64 HMAC-MD5 digest, with or without its ``==``; None if malformed.

    Clients built on Perl's ``b64digest`` (the official tools) leave the padding
    off, the firmware and apps send it: both are the same digest.
    """
    body = text[:-2] if text.endswith("==") else text
    if len(body) != _DIGEST_B64_CHARS or not _B64_CHARS.issuperset(body):
        return None
    return base64.b64decode(body + "==")


def digest_matches(expected: bytes, received: str) -> bool:
    """Does ``received`` (base64, padded or not) carry the ``expected`` bytes?

    The bytes are compared in constant time; a malformed ``received`` never matches.
    """
    got = decode_digest(received)
    return got is not None and hmac.compare_digest(expected, got)


def session_key(secret: bytes, server_token: str, client_token: str) -> bytes:
    """HMAC-MD5(secret, server token + client token): server token first."""
    return hmac_md5(secret, (server_token + client_token).encode("ascii"))


class RC4Stream:
    """One direction of an RC4 stream, already past the 1024-byte discard."""

    __slots__ = ("_ctx",)

    def __init__(self, key: bytes | ARC4) -> None:
        algorithm = key if isinstance(key, ARC4) else ARC4(key)
        self._ctx = Cipher(algorithm, mode=None).encryptor()
        self._ctx.update(_DISCARD)

    @classmethod
    def pair(cls, key: bytes) -> tuple[RC4Stream, RC4Stream]:
        """Two independent streams from one key (a session's receive and send sides).

        They share the key's algorithm object, which each cipher context keeps:
        one fewer per connection.
        """
        algorithm = ARC4(key)
        return cls(algorithm), cls(algorithm)

    def apply(self, data: bytes) -> bytes:
        """Encrypt or decrypt (RC4 is symmetric), advancing the stream."""
        return self._ctx.update(data)
