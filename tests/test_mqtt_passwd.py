"""``ovms-admin mqtt-passwd`` against a real Mosquitto: owners confined to their topics."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.conftest import StartRelay
from tests.mqtt_broker import own_mosquitto
from tests.v3_module import ScriptedModule
from tools import admin
from tools.mqtt_passwd import check_password, hash_password

# Written by mosquitto_passwd 2.0 for alice / secret.
MOSQUITTO_LINE = ("alice:$7$101$8ZPvIOmpCGvfk72v$z+ld3u+iQhQJ77IbwDfcgk3G0/PFYJLLR8xc+84lWexJ"
                  "xt3ez4bhJWcb4vwOIP/o4FP2KDFTBsDG9xXdRK7oCQ==")


def test_hash_is_mosquitto_passwds_format() -> None:
    stored = MOSQUITTO_LINE.split(":", 1)[1]
    assert check_password("secret", stored)
    assert not check_password("Secret", stored)
    mine = hash_password("secret")
    assert mine.startswith("$7$101$") and check_password("secret", mine)
    assert mine != hash_password("secret")  # salted


def test_entries_follow_the_owners(tmp_path: Path, template_db: Path,
                                   capsys: object) -> None:
    pw = tmp_path / "passwd"
    pw.write_text("ghost:$7$101$AAAA$BBBB\n")
    dbarg = ["--db", str(template_db)]
    assert admin.run([*dbarg, "mqtt-passwd", str(pw), "--owner", "demo", "--password", "a"]) == 0
    assert admin.run([*dbarg, "mqtt-passwd", str(pw), "--owner", "nobody",
                      "--password", "a"]) == 1
    assert admin.run([*dbarg, "mqtt-passwd", str(pw), "--superuser-password", "su"]) == 0
    users = [line.split(":")[0] for line in pw.read_text().splitlines()]
    assert users == ["demo", "ovms-relay"]  # ghost (no such owner) removed
    acl = (tmp_path / "passwd.acl").read_text()
    assert "user demo\ntopic readwrite ovms/demo/#" in acl
    assert "user ovms-relay\ntopic readwrite #" in acl
    assert "user other" not in acl  # no password, no entry


async def test_broker_confines_owners_and_relay_serves_them(
        tmp_path: Path, start_relay: StartRelay) -> None:
    relay = await start_relay()  # creates the database; the broker comes next
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    base = ["--db", relay.db, "mqtt-passwd", str(pw), "--acl", str(acl)]
    assert admin.run([*base, "--owner", "demo", "--password", "demo-mqtt"]) == 0
    assert admin.run([*base, "--owner", "other", "--password", "other-mqtt",
                      "--superuser-password", "relay-pw"]) == 0
    with own_mosquitto(f"password_file {pw}\nacl_file {acl}\n") as broker:
        relay2 = await start_relay(db=relay.db, mqtt=f"mqtt://ovms-relay:relay-pw@127.0.0.1:"
                                   f"{broker.port}", mqtt_prefix="ovms")
        del relay
        gateway = relay2.handle.mqtt
        assert gateway is not None
        with trio.fail_after(10):
            while not gateway.bridge.connected:
                await trio.sleep(0.02)
        # "other" may not publish as demo's vehicle: the broker drops it.
        intruder = ScriptedModule(broker.url, "ovms", "demo", "DEMO", password="other-mqtt")
        assert not await _connects(intruder)
        spoof = ScriptedModule(broker.url, "ovms", "other", "OTHERCAR", password="other-mqtt")
        await spoof.ready()
        spoof.client.publish("ovms/demo/DEMO/metric/s/v3/connected", b"yes", qos=1,
                             retain=True)
        module = ScriptedModule(broker.url, "ovms", "demo", "DEMO", password="demo-mqtt")
        await module.ready()
        module.metric("v.b.soc", "42")
        module.online()
        with trio.fail_after(10):
            while not relay2.handle.hub.car_connected("DEMO"):
                await trio.sleep(0.02)
        latest = await relay2.handle.store.latest("DEMO")
        assert latest["S"].data.startswith("42,")
        # The module can read the relay's presence; the spoofer cannot read demo's topics.
        app = await relay2.app("DEMO")
        await module.wait_for(lambda t: t.endswith("/active"))
        spoof.client.subscribe("ovms/demo/#")
        await trio.sleep(0.3)
        assert spoof.messages(lambda t: True) == []
        await app.aclose()
        for m in (spoof, module):
            m.stop()


async def _connects(module: ScriptedModule) -> bool:
    try:
        with trio.fail_after(1.5):
            await module.ready()
    except trio.TooSlowError:
        return False
    finally:
        module.stop()
    return True


async def test_mqapi_acl_follows_the_prefix(start_relay: StartRelay) -> None:
    from tests.http_helpers import client

    relay = await start_relay(mqtt_prefix="fleet")
    async with client(relay) as http:
        acl = {"username": "demo", "topic": "fleet/demo/DEMO/metric/v/b/soc", "acc": "2"}
        assert (await http.post("/mqapi/acl", data=acl)).status_code == 200
        for topic in ("ovms/demo/DEMO/metric/v/b/soc", "fleet/other/X"):
            assert (await http.post("/mqapi/acl", data={**acl, "topic": topic})
                    ).status_code == 403
        assert (await http.post("/mqapi/acl", data={"username": "de+", "acc": "2",
                                                     "topic": "fleet/de+/X"})).status_code == 403
