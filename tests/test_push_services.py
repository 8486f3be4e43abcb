"""Expo, FCM (OAuth with a test RSA key), APNs (ES256 JWT, HTTP/2) and mail, end to end.

Each service is a real local server (tests/test_push_support.py); the relay is
configured to use it instead of the real endpoint.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from relay.push.fcm import GRANT_TYPE, SCOPE
from tests.conftest import RelayUnderTest, StartRelay
from tests.test_push_support import FakeService, FakeSmtp, Recorded, Reply
from tests.test_push_webhook import FAST, car_says, dispatcher, subscribe, wait_until

APNS_TOKEN = "ab" * 32


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def decode_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, signing input and signature (no verification)."""
    head, claims, signature = token.split(".")
    return (json.loads(_b64(head)), json.loads(_b64(claims)),
            f"{head}.{claims}".encode(), _b64(signature))


async def active_appids(relay: RelayUnderTest) -> list[str]:
    return [s.appid for s in await relay.handle.store.push_subscriptions("DEMO")]


# --------------------------------------------------------------------------- expo


async def test_expo_push_and_device_not_registered(
    start_relay: StartRelay, nursery: trio.Nursery
) -> None:
    expo = await FakeService().start(nursery)
    relay = await start_relay(expo_url=f"{expo.url}/--/api/v2/push/send", **FAST)
    path = "/--/api/v2/push/send"
    expo.script(path,
                Reply.json(200, {"data": {"status": "ok", "id": "t1"}}),
                Reply.json(200, {"data": {"status": "error", "message": "not registered",
                                          "details": {"error": "DeviceNotRegistered"}}}))
    await subscribe(relay, "e1,expo,production,DEMO,DEMO,ExponentPushToken[aaaa]",
                    "e2,expo,production,DEMO,DEMO,ExponentPushToken[bbbb]")
    car = await car_says(relay, "AParked")
    requests = await expo.wait_for(2, path)
    bodies = sorted((r.json() for r in requests), key=lambda b: b["to"])
    assert bodies[0]["to"] == "ExponentPushToken[aaaa]"
    assert bodies[0]["title"] == "Open Vehicles DEMO"
    assert bodies[0]["body"] == "Parked"
    assert bodies[0]["data"]["alerttype"] == "A"
    await wait_until(lambda: dispatcher(relay.handle).stats.dead == 1)
    assert len(await active_appids(relay)) == 1
    await car.aclose()


# --------------------------------------------------------------------------- fcm


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account(tmp_path: Path, key: rsa.RSAPrivateKey, token_uri: str) -> str:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "ovms-test", "private_key_id": "k1",
        "private_key": pem, "client_email": "relay@ovms-test.iam.gserviceaccount.com",
        "token_uri": token_uri,
    }))
    return str(path)


async def test_fcm_oauth_exchange_send_and_unregistered(
    start_relay: StartRelay, nursery: trio.Nursery, tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    fcm = await FakeService().start(nursery)
    token_uri = f"{fcm.url}/token"
    public = rsa_key.public_key()

    def token_endpoint(request: Recorded) -> Reply:
        form = parse_qs(request.body.decode())
        assert form["grant_type"] == [GRANT_TYPE]
        header, claims, signed, signature = decode_jwt(form["assertion"][0])
        try:
            public.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return Reply.json(400, {"error": "invalid_grant"})
        assert header["alg"] == "RS256"
        assert claims["iss"] == "relay@ovms-test.iam.gserviceaccount.com"
        assert claims["aud"] == token_uri and claims["scope"] == SCOPE
        assert claims["iat"] <= time.time() + 5 < claims["exp"] + 5
        return Reply.json(200, {"access_token": "ya29.test-token", "expires_in": 3599,
                                "token_type": "Bearer"})

    fcm.default = token_endpoint
    send_path = "/v1/projects/ovms-test/messages:send"
    fcm.script(send_path, Reply(200), Reply(503), Reply(200),
               Reply.json(404, {"error": {"code": 404, "status": "NOT_FOUND", "details": [
                   {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED"}]}}))
    relay = await start_relay(fcm_credentials=service_account(tmp_path, rsa_key, token_uri),
                              fcm_url=fcm.url, push_workers=1, **FAST)
    await subscribe(relay, "android1,gcm,production,DEMO,DEMO,fcm-token-1")
    car = await car_says(relay, "AFirst")
    [first] = await fcm.wait_for(1, send_path)
    assert first.headers["authorization"] == "Bearer ya29.test-token"
    message = first.json()["message"]
    assert message["token"] == "fcm-token-1"
    assert message["data"]["type"] == "A"
    assert message["data"]["title"] == "DEMO"
    assert message["data"]["message"] == "First"
    await car.send("P", "ASecond")  # 503 first, then delivered on the retry
    await fcm.wait_for(3, send_path)
    await car.send("P", "AThird")  # 404 UNREGISTERED: subscription deactivated
    await fcm.wait_for(4, send_path)
    await wait_until(lambda: dispatcher(relay.handle).stats.dead == 1)
    assert await active_appids(relay) == []
    assert len(fcm.on("/token")) == 1  # the access token was cached
    assert dispatcher(relay.handle).stats.delivered == 2
    await car.aclose()


# --------------------------------------------------------------------------- apns


async def test_apns_http2_with_es256_token(
    start_relay: StartRelay, nursery: trio.Nursery, tmp_path: Path
) -> None:
    apns = FakeService()
    await apns.start(nursery, apns.serve_h2c)
    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "AuthKey_KEY123.p8"
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    sandbox = await FakeService().start(nursery, None)  # must not be used: production token
    apns.script(f"/3/device/{'cd' * 32}", Reply.json(410, {"reason": "Unregistered"}))
    relay = await start_relay(apns_key_file=str(key_file), apns_key_id="KEY123",
                              apns_team_id="TEAM42", apns_url=apns.url,
                              apns_sandbox_url=sandbox.url, **FAST)
    await subscribe(relay, f"ios1,apns,production,DEMO,DEMO,{APNS_TOKEN}",
                    f"ios2,apns,production,DEMO,DEMO,{'cd' * 32}")
    car = await car_says(relay, "ATyre pressure low")
    requests = await apns.wait_for(2)
    [request] = [r for r in requests if r.path == f"/3/device/{APNS_TOKEN}"]
    assert request.method == "POST"
    assert request.headers[":scheme"] == "http"  # it came over HTTP/2 (pseudo-headers)
    assert request.headers["apns-topic"] == "com.openvehicles.ovms"
    assert request.headers["apns-push-type"] == "alert"
    assert request.json()["aps"]["alert"] == "DEMO\nTyre pressure low"
    scheme, token = request.headers["authorization"].split(" ")
    assert scheme == "bearer"
    header, claims, signed, signature = decode_jwt(token)
    assert header == {"alg": "ES256", "kid": "KEY123"}
    assert claims["iss"] == "TEAM42"
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    key.public_key().verify(der, signed, ec.ECDSA(hashes.SHA256()))
    await wait_until(lambda: dispatcher(relay.handle).stats.dead == 1)
    assert await active_appids(relay) == ["ios1"]
    assert sandbox.requests == []
    await car.aclose()


# --------------------------------------------------------------------------- mail


async def test_mail_via_smtp(start_relay: StartRelay, nursery: trio.Nursery) -> None:
    smtp = await FakeSmtp().start(nursery)
    relay = await start_relay(smtp_host="127.0.0.1", smtp_port=smtp.port,
                              smtp_from="relay@example.org", **FAST)
    await subscribe(relay, "m1,mail,x,DEMO,DEMO,owner@example.org",
                    "m2,mail,x,DEMO,DEMO,not-an-address")
    assert await active_appids(relay) == ["m1"]
    car = await car_says(relay, "ACharge interrupted")
    [(recipients, text)] = await smtp.wait_for(1)
    assert recipients == ["owner@example.org"]
    assert "Subject: Open Vehicles DEMO: Charge interrupted" in text
    assert "Charge interrupted" in text.split("\r\n\r\n", 1)[1]
    await car.aclose()


async def test_unconfigured_service_is_skipped(relay: RelayUnderTest) -> None:
    await subscribe(relay, "x1,apns,production,DEMO,DEMO," + APNS_TOKEN)
    car = await car_says(relay, "Ahello")
    store = relay.handle.store

    async def logged() -> bool:
        return bool(await store.historical_records("DEMO", "*-Log-Notification"))

    await wait_until(logged)
    assert dispatcher(relay.handle).stats.queued == 0
    await car.aclose()
