"""``ovms-relay serve --mqtt``: the command line, the TOML setting, and what is logged."""

from __future__ import annotations

import logging
import signal
import subprocess
from pathlib import Path

import pytest
import trio

from relay import cli
from relay.config import ConfigError
from relay.mqtt.url import BrokerUrl, check_prefix
from relay.reload import reload
from tests.conftest import StartRelay, copy_db
from tests.mqtt_broker import broker_url, own_mosquitto, unique_prefix
from tests.test_cli_serve import read_until, serve


def test_url_parsing_never_shows_the_password() -> None:
    url = BrokerUrl.parse("mqtts://relay:p%40ss@broker.example:8884")
    assert (url.host, url.port, url.tls, url.username, url.password) == (
        "broker.example", 8884, True, "relay", "p@ss")
    assert "p@ss" not in repr(url) and url.redacted() == "mqtts://relay:***@broker.example:8884"
    assert BrokerUrl.parse("mqtt://h").port == 1883
    for bad in ("http://h", "mqtt://", "mqtt://u:pw@h:99999", "mqtt://h/ovms"):
        with pytest.raises(ConfigError) as caught:
            BrokerUrl.parse(bad)
        assert "pw" not in str(caught.value)
    for prefix in ("", "/ovms", "ovms/", "a/+", "a#", "a//b"):
        with pytest.raises(ConfigError):
            check_prefix(prefix)
    assert check_prefix("fleet/ovms") == "fleet/ovms"


def test_bad_mqtt_setting_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["serve", "--db", str(tmp_path / "x.db"), "--mqtt", "http://u:sekrit@h"])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("ovms-relay: error: mqtt must be a URL")
    assert "sekrit" not in err and not (tmp_path / "x.db").exists()


async def test_serve_connects_and_logs_no_password(tmp_path: Path, template_db: Path) -> None:
    db_path = tmp_path / "relay.db"
    copy_db(template_db, db_path)
    with own_mosquitto() as broker:
        proc = serve("--db", str(db_path), "--mqtt",
                     f"mqtt://ovms-relay:sekrit-pw@127.0.0.1:{broker.port}",
                     "--mqtt-prefix", "fleet")
        try:
            await read_until(proc, "v2 protocol on")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                _, err = proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "mqtt: connecting to mqtt://ovms-relay:***@127.0.0.1" in err
    assert "sekrit-pw" not in err


async def test_sighup_keeps_the_broker_settings_until_a_restart(
        start_relay: StartRelay, caplog: pytest.LogCaptureFixture) -> None:
    with broker_url() as url:
        relay = await start_relay(mqtt=url, mqtt_prefix=unique_prefix(), mqtt_persistent=False)
        gateway = relay.handle.mqtt
        assert gateway is not None
        with trio.fail_after(10):
            while not gateway.bridge.connected:
                await trio.sleep(0.02)
        new = relay.config.updated({"mqtt": "mqtt://ovms-relay:n3w-s3cret@127.0.0.1:1",
                                    "mqtt_prefix": "other", "mqtt_persistent": True,
                                    "mqtt_superuser": "broker"})
        with caplog.at_level(logging.INFO):
            running = reload(relay.handle, relay.config, lambda: new)
        assert sorted(r.getMessage() for r in caplog.records
                      if "needs a restart" in r.getMessage()) == [
            f"reload: setting {name} changed: needs a restart"
            for name in ("mqtt", "mqtt_persistent", "mqtt_prefix", "mqtt_superuser")]
        assert "n3w-s3cret" not in caplog.text
        assert (running.mqtt, running.mqtt_prefix) == (relay.config.mqtt, relay.config.mqtt_prefix)
        assert relay.handle.mqtt is gateway and gateway.bridge.connected
