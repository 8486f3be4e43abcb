"""Issue 10 items 1 and 2: digests without base64 padding, as the official Perl tools send them.

Perl's ``Digest::HMAC->b64digest`` leaves the ``==`` off. The official demo car
script (``MP-C``), the command and status scripts (``MP-A`` / ``MP-B``) and the
auto-provisioning checker all work that way; the public server decodes the
digest and compares the 16 bytes, so both forms log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import pytest
import trio

from protocol.provisioning import create_record, decode_record
from relay import db
from relay.push.dispatcher import HISTORY_TYPE
from tests.conftest import RelayUnderTest
from tests.raw_v2 import Closed, RawScheme0, closed_without_answer, welcome_digest


def b64digest(secret: str, text: str) -> str:
    """What Perl's Digest::HMAC b64digest returns (no padding), done independently."""
    raw = hmac.new(secret.encode(), text.encode(), hashlib.md5).digest()
    return base64.b64encode(raw).decode().rstrip("=")


async def test_perl_demo_car_and_scripts_log_in_unpadded(relay: RelayUnderTest) -> None:
    """The demo car script (MP-C), the status script (MP-A) and the command script
    (MP-B), each with an unpadded digest, relay to each other."""
    port = relay.handle.v2_port
    car = await RawScheme0.login(port, "DEMO", "DEMO", "C", padded=False)
    assert await car.drain() == ["Z0"]
    app = await RawScheme0.login(port, "DEMO", "DEMO", "A", padded=False)
    batch = await RawScheme0.login(port, "DEMO", "DEMO", "B", padded=False)
    assert (await app.receive_until("T"))[0] == "Z1"
    assert (await batch.receive_until("T"))[0] == "Z1"
    await car.send_text("S80,K,220,70,charging")
    assert await app.receive_until("T") == ["S80,K,220,70,charging", "T0"]
    assert await batch.receive_until("T") == ["S80,K,220,70,charging", "T0"]
    await batch.send_text("C20,1234")
    assert (await car.receive_until("C"))[-1] == "C20,1234"


def test_unpadded_form_is_what_perl_sends() -> None:
    token = "abcdefghijklmnopqrstuv"
    assert welcome_digest("DEMO", token, padded=False) == b64digest("DEMO", token)
    assert len(b64digest("DEMO", token)) == 22


async def test_malformed_digest_is_not_a_failed_authentication(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture
) -> None:
    """Only a well-formed wrong digest counts as a failed authentication: it alone
    pushes "Vehicle authentication failed"; a malformed one is logged as malformed."""
    store = relay.handle.store
    with caplog.at_level(logging.INFO):
        stream = await relay.raw()
        await stream.send_all(b"MP-C 0 abcdefghijklmnopqrstuv not-a-digest TESTCAR\r\n")
        assert await closed_without_answer(stream)
        # Had the malformed one counted, this success would push "...successful".
        car = await RawScheme0.login(relay.handle.v2_port, "TESTCAR", "NETPASS", padded=False)
        await car.aclose()
        with pytest.raises(Closed):
            await RawScheme0.login(relay.handle.v2_port, "TESTCAR", "wrong", padded=False)

        async def alerts() -> list[str]:
            return [r.data for r in await store.historical_records("TESTCAR", HISTORY_TYPE)]

        with trio.fail_after(10):
            while not await alerts():
                await trio.sleep(0.02)
    # Alerts are logged in the order they were raised: this is all there is.
    assert await alerts() == ["A,Vehicle authentication failed (127.0.0.1)"]
    assert "digest for vehicle 'TESTCAR' is malformed" in caplog.text
    assert "refused car login for vehicle TESTCAR: digest does not match the carpass" in (
        caplog.text)


@pytest.mark.parametrize(
    "digest", ["I19P/bXxwPgQEGdpIIzapg=", "I19P/bXxwPgQEGdpIIzap", "I19P/bXxwPgQEGdpIIzapg===",
               "I19P-bXxwPgQEGdpIIzapg", "I19P/bXxwPgQEGdpIIzapgAA", "x" * 1000],
)
async def test_malformed_digests_close_without_answer(relay: RelayUnderTest, digest: str) -> None:
    stream = await relay.raw()
    await stream.send_all(f"MP-A 0 abcdefghijklmnopqrstuv {digest} DEMO\r\n".encode())
    assert await closed_without_answer(stream)


async def test_auto_provisioning_record_as_the_official_checker_reads_it(
    relay: RelayUnderTest,
) -> None:
    """Issue 10 item 2: the record's server digest is written unpadded (the official
    generator's form) and the official checker's string comparison accepts it."""
    iccid, vin = "89445012345678901234", "5YJSA1H21EFP12345"
    record = create_record(vin, iccid, "DEMO s3cret relay.example.org")
    conn = db.connect(relay.db)
    try:
        db.add_provision(conn, record.apkey, record.stoken, record.sdigest, record.provisioning)
    finally:
        conn.close()
    stream = await relay.raw()
    await stream.send_all(f"AP-C 0 {vin}\r\n".encode())
    answer = b""
    with trio.fail_after(5):
        while not answer.endswith(b"\r\n"):
            answer += await stream.receive_some(1000)
    head, scheme, stoken, sdigest, provisioning = answer.decode().rstrip("\r\n").split(" ")
    assert (head, scheme) == ("AP-S", "0")
    assert sdigest == b64digest(iccid, stoken)  # the checker's `eq`
    # Reading accepts both forms.
    for form in (sdigest, sdigest + "=="):
        assert decode_record(stoken, form, provisioning, iccid) == "DEMO s3cret relay.example.org"
