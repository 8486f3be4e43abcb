"""Auto-provisioning records: what the server stores for ``AP-C 0 <apkey>`` (sans-IO).

The OVMS auto-provisioning protection scheme 0 rests on two things both the car
module and its owner can read off the hardware: the vehicle's VIN and the ICCID
of the module's SIM card. The VIN (or another key) names the record; the ICCID
is the shared secret and never goes over the wire. docs/auto-provisioning.md
has the full description; in short::

    apkey        = the VIN, upper case (or any key the module is configured to send)
    secret       = the ICCID as ASCII digits
    stoken       = 22 random base64-alphabet characters
    key          = HMAC-MD5(secret, stoken)                      (16 bytes)
    sdigest      = base64(key) without its "==" padding (as the official generator
                   writes it; the official checker compares the text)
    provisioning = base64(RC4-drop1024(key).encrypt(parameter text, UTF-8))

and the server answers ``AP-S 0 <stoken> <sdigest> <provisioning>``. The module
recomputes the digest to check it is talking to a server that knows its ICCID,
then decrypts with the same key. The parameter text is the module's parameters,
in order, separated by single spaces.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from typing import Final

import attrs

from protocol import crypto

# ITU-T E.118: an ICCID is 19 or 20 digits (18 on some old cards). Modules read it
# from the SIM as digits, some with the padding nibble 'F' of the BCD encoding left
# on the end; that 'F' is dropped so both readings give the same secret.
ICCID_MIN_DIGITS: Final = 18
ICCID_MAX_DIGITS: Final = 22
# An ``AP-S`` line is split on spaces and every field must be non-empty.
_SEPARATOR: Final = " "
ENCODING: Final = "utf-8"


class ProvisioningError(ValueError):
    """Input that cannot make (or data that does not decode to) a provisioning record."""


@attrs.frozen
class ProvisioningRecord:
    """The three fields of ``AP-S 0 <stoken> <sdigest> <provisioning>``, keyed by ``apkey``."""

    apkey: str
    stoken: str
    sdigest: str
    provisioning: str


def normalize_iccid(iccid: str) -> str:
    """The ICCID as the digits the module reads (spaces/dashes and a trailing 'F' dropped)."""
    digits = "".join(iccid.split()).replace("-", "").upper().removesuffix("F")
    if not (digits.isascii() and digits.isdigit()):
        raise ProvisioningError("ICCID must be digits (e.g. 8944501234567890123)")
    if not ICCID_MIN_DIGITS <= len(digits) <= ICCID_MAX_DIGITS:
        raise ProvisioningError(
            f"ICCID must have {ICCID_MIN_DIGITS} to {ICCID_MAX_DIGITS} digits, not {len(digits)}"
        )
    return digits


def apkey_for_vin(vin: str) -> str:
    """The apkey a module sends for a VIN: the VIN itself, upper case."""
    key = vin.strip().upper()
    if not key or not key.isascii() or not key.isalnum():
        raise ProvisioningError("VIN must be letters and digits (17 for a modern car)")
    return key


def check_apkey(apkey: str) -> str:
    """An apkey given directly: one non-empty, printable ASCII word (it is a wire field)."""
    if not apkey or not apkey.isascii() or not apkey.isprintable() or _SEPARATOR in apkey:
        raise ProvisioningError("apkey must be one word of printable ASCII")
    return apkey


def parameter_text(parameters: Iterable[str]) -> str:
    """The module's parameters in order, space separated (none may be empty or hold spaces)."""
    values = list(parameters)
    if not values:
        raise ProvisioningError("at least one parameter is needed")
    for index, value in enumerate(values):
        if not value or any(ch.isspace() for ch in value):
            raise ProvisioningError(
                f"parameter #{index} must be non-empty and without spaces: {value!r}"
            )
    return _SEPARATOR.join(values)


def record_key(iccid: str, stoken: str) -> bytes:
    """HMAC-MD5(ICCID, stoken): the digest (before base64) and the RC4 key."""
    return crypto.hmac_md5(normalize_iccid(iccid).encode("ascii"), stoken.encode("ascii"))


def create_record(
    apkey: str, iccid: str, parameters: str, *, stoken: str | None = None
) -> ProvisioningRecord:
    """A record for ``apkey`` whose payload only the holder of ``iccid`` can read.

    ``stoken`` is random unless given (tests give one for reproducible vectors).
    """
    check_apkey(apkey)
    if stoken is None:
        stoken = crypto.make_token()
    elif not stoken or not stoken.isascii() or not stoken.isprintable() or " " in stoken:
        raise ProvisioningError("server token must be one word of printable ASCII")
    if not parameters:
        raise ProvisioningError("the provisioning text must not be empty")
    key = record_key(iccid, stoken)
    cipher = crypto.RC4Stream(key)
    payload = cipher.apply(parameters.encode(ENCODING))
    return ProvisioningRecord(
        apkey=apkey,
        stoken=stoken,
        sdigest=crypto.unpadded_b64(key),
        provisioning=base64.b64encode(payload).decode("ascii"),
    )


def decode_record(stoken: str, sdigest: str, provisioning: str, iccid: str) -> str:
    """What a module does with ``AP-S 0 <stoken> <sdigest> <provisioning>``: check, decrypt.

    Raises ProvisioningError if the digest does not match this ICCID (wrong server or
    wrong SIM) or the payload is not base64 / UTF-8.
    """
    key = record_key(iccid, stoken)
    if crypto.decode_digest(sdigest) is None:
        raise ProvisioningError("server digest is not base64 of 16 bytes")
    if not crypto.digest_matches(key, sdigest):
        raise ProvisioningError("server digest does not match this ICCID")
    try:
        payload = base64.b64decode(provisioning, validate=True)
    except (binascii.Error, ValueError):
        raise ProvisioningError("provisioning payload is not base64") from None
    try:
        return crypto.RC4Stream(key).apply(payload).decode(ENCODING)
    except UnicodeDecodeError:
        raise ProvisioningError("provisioning payload does not decrypt to text") from None


__all__ = [
    "ProvisioningError",
    "ProvisioningRecord",
    "apkey_for_vin",
    "check_apkey",
    "create_record",
    "decode_record",
    "normalize_iccid",
    "parameter_text",
    "record_key",
]
