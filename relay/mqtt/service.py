"""Starting the v3 gateway from the configuration (``--mqtt``): the one entry for app.py.

paho-mqtt is an optional extra (``pip install 'ovms-relay[mqtt]'``): it is imported
only when ``--mqtt`` is given, and its absence is then a one-line start error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from relay.config import Config, ConfigError
from relay.mqtt.url import BrokerUrl, check_prefix

if TYPE_CHECKING:
    from relay.mqtt.gateway import V3Gateway
    from relay.router import Router
    from relay.wanted import WantedVehicles


def check(config: Config) -> BrokerUrl | None:
    """The broker URL, None without ``--mqtt``; ConfigError if unusable."""
    if not config.mqtt:
        return None
    check_prefix(config.mqtt_prefix)
    url = BrokerUrl.parse(config.mqtt)
    try:
        import paho.mqtt  # noqa: F401
    except ImportError:
        raise ConfigError("--mqtt needs paho-mqtt: pip install 'ovms-relay[mqtt]'") from None
    return url


async def start(config: Config, router: Router, nursery: trio.Nursery,
                wanted: WantedVehicles | None = None) -> V3Gateway | None:
    """Run the gateway in ``nursery`` (connecting in the background) when configured.

    ``wanted``: vehicles with API v4 monitors (the engine's), kept active."""
    url = check(config)
    if url is None:
        return None
    from protocol.ovms_v3.topics import subscription
    from relay.mqtt.bridge import MqttBridge
    from relay.mqtt.gateway import V3Gateway

    # Stable per prefix: the broker keeps this session's queued notifications and
    # records while the relay restarts (two relays never share a prefix).
    client_id = "ovms-relay-" + config.mqtt_prefix.replace("/", "-")
    bridge = MqttBridge(url, subscription(config.mqtt_prefix), client_id=client_id,
                        persistent=config.mqtt_persistent)
    gateway = V3Gateway(router, bridge, config.mqtt_prefix,
                        command_timeout=config.command_timeout, wanted=wanted)
    await nursery.start(gateway.run, nursery)
    return gateway
