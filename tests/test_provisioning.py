"""Auto-provisioning: record computation (sans-IO), ovms-admin, and AP-C against a real relay."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest
import trio

from protocol import crypto
from protocol.provisioning import (
    ProvisioningError,
    apkey_for_vin,
    create_record,
    decode_record,
    normalize_iccid,
    parameter_text,
    record_key,
)
from tests.conftest import StartRelay
from tests.pg_server import run_sql
from tools import admin

VIN = "5YJSA1H21EFP12345"
ICCID = "89445012345678901234"
PARAMS = "DEMO s3cret ovms.example.org"


# --------------------------------------------------------------------------- sans-IO


def test_round_trip_with_the_right_iccid() -> None:
    record = create_record(VIN, ICCID, PARAMS)
    assert record.apkey == VIN
    assert decode_record(record.stoken, record.sdigest, record.provisioning, ICCID) == PARAMS


def test_fixed_token_gives_the_documented_construction() -> None:
    """Recomputed step by step, independently of create_record's code path."""
    stoken = "AbCdEfGhIjKlMnOpQrStUv"
    record = create_record(VIN, ICCID, PARAMS, stoken=stoken)
    key = hmac.new(ICCID.encode(), stoken.encode(), hashlib.md5).digest()
    # Issue 10 item 2: unpadded, as the official generator writes it (its checker
    # compares the text).
    assert record.sdigest == base64.b64encode(key).decode().rstrip("=")
    rc4 = crypto.RC4Stream(key)  # RC4 with the first 1024 keystream bytes dropped
    assert base64.b64decode(record.provisioning) == rc4.apply(PARAMS.encode())
    # The worked example of docs/auto-provisioning.md.
    assert record.sdigest == "E0us/zVCnUienn7FLYwNuA"
    assert record.provisioning == "9vB8APtnN3BoEBakEQSBCpaNFkWQkT9pIMvkzg=="
    # Deterministic for a given token: the same record twice.
    assert create_record(VIN, ICCID, PARAMS, stoken=stoken) == record


def test_tokens_are_random_and_wire_safe() -> None:
    a = create_record(VIN, ICCID, PARAMS)
    b = create_record(VIN, ICCID, PARAMS)
    assert a.stoken != b.stoken and a.provisioning != b.provisioning
    for field in (a.stoken, a.sdigest, a.provisioning):
        assert field and " " not in field and field.isascii()


def test_wrong_iccid_is_detected() -> None:
    record = create_record(VIN, ICCID, PARAMS)
    with pytest.raises(ProvisioningError, match="does not match"):
        decode_record(record.stoken, record.sdigest, record.provisioning, "89445012345678901235")


def test_tampered_payload_does_not_decode_silently() -> None:
    record = create_record(VIN, ICCID, PARAMS)
    with pytest.raises(ProvisioningError, match="base64"):
        decode_record(record.stoken, record.sdigest, "not base64!", ICCID)


def test_iccid_normalization() -> None:
    assert normalize_iccid("8944 5012 3456 7890 1234") == ICCID
    assert normalize_iccid(ICCID + "F") == ICCID
    assert record_key(ICCID + "f", "t") == record_key(ICCID, "t")
    for bad in ("", "1234", "8944501234567890123X", "8" * 23):
        with pytest.raises(ProvisioningError):
            normalize_iccid(bad)


def test_apkey_from_vin_and_parameter_text() -> None:
    assert apkey_for_vin(" 5yjsa1h21efp12345 ") == VIN
    with pytest.raises(ProvisioningError):
        apkey_for_vin("VIN WITH SPACE")
    assert parameter_text(["DEMO", "s3cret", "ovms.example.org"]) == PARAMS
    for bad in ([], ["a", ""], ["two words"]):
        with pytest.raises(ProvisioningError):
            parameter_text(bad)
    with pytest.raises(ProvisioningError):
        create_record("two words", ICCID, PARAMS)


def test_unicode_parameters_round_trip() -> None:
    record = create_record(VIN, ICCID, "Zoë ☃")
    assert decode_record(record.stoken, record.sdigest, record.provisioning, ICCID) == "Zoë ☃"


# --------------------------------------------------------------------------- ovms-admin


def admin_create(target: str, *extra: str) -> int:
    return admin.run(["--db", target, "provision", "create", "--vin", VIN.lower(),
                      "--iccid", ICCID, *extra, "--", *PARAMS.split()])


def stored(target: str, apkey: str) -> tuple[str, str, str]:
    [row] = run_sql(target, "SELECT stoken, sdigest, provisioning FROM provisioning "
                    "WHERE apkey=?", apkey)
    return (row[0], row[1], row[2])


def test_admin_provision_create(empty_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    db_path = empty_db
    assert admin_create(db_path) == 0
    out = capsys.readouterr().out
    assert VIN in out and ICCID not in out and "s3cret" not in out
    assert decode_record(*stored(db_path, VIN), ICCID) == PARAMS
    assert admin_create(db_path) == 1  # one record per apkey
    assert "already exists" in capsys.readouterr().err
    assert admin_create(db_path, "--apkey", "module-7") == 0
    assert decode_record(*stored(db_path, "module-7"), ICCID) == PARAMS
    assert admin.run(["--db", db_path, "provision", "create", "--vin", VIN,
                      "--iccid", "123", "--apkey", "x", "--", "p"]) == 1
    assert "ICCID" in capsys.readouterr().err


# --------------------------------------------------------------------------- over the wire


async def read_line(stream: trio.SocketStream) -> bytes:
    data = b""
    with trio.fail_after(10):
        while not data.endswith(b"\r\n"):
            chunk = await stream.receive_some(4096)
            assert chunk, f"closed after {data!r}"
            data += chunk
    return data


async def test_module_provisions_itself(start_relay: StartRelay, tmp_path: Path) -> None:
    relay = await start_relay()
    assert admin_create(relay.db) == 0  # written while the relay runs
    stream = await relay.raw()
    await stream.send_all(f"AP-C 0 {VIN}\r\n".encode())
    line = (await read_line(stream)).decode().rstrip("\r\n")
    head, scheme, stoken, sdigest, payload = line.split(" ")
    assert (head, scheme) == ("AP-S", "0")
    # What the module does with the answer: check the server knows its ICCID, decrypt.
    assert decode_record(stoken, sdigest, payload, ICCID) == PARAMS
    await stream.send_all(f"AP-C 0 {VIN}\r\n".encode())
    assert await read_line(stream) == b"AP-X\r\n"  # one answer per connection
    await stream.aclose()
