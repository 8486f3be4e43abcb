"""Starting the v3 gateway from the configuration (``--mqtt``): the one entry for app.py.

paho-mqtt is an optional extra (``pip install 'ovms-relay[mqtt]'``): it is imported
only when ``--mqtt`` is given, and its absence is then a one-line start error.
"""

from __future__ import annotations

import re
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
    session_id = "ovms-relay-" + config.mqtt_prefix.replace("/", "-")
    client_id, persistent, settle = "ovms-relay", config.mqtt_persistent, 0.0
    node = getattr(router.hub, "node", None)
    if config.bus and isinstance(node, str):
        # Every node of a cluster has a session of its own (the broker would close
        # one of two with the same id), and a client id of its own in the modules'
        # command topics, so an answer finds the node that sent the command.
        client_id = "ovms-relay-" + re.sub(r"[^A-Za-z0-9_-]", "_", node)
        session_id += "-" + client_id
        # A node id made up at each start (no --node-id) would leave a persistent
        # session behind in the broker at every restart.
        persistent = persistent and bool(config.node_id)
        # Until the other nodes answered the hello: which cars they hold.
        settle = max(config.bus_login_wait, 1.0)
    bridge = MqttBridge(url, subscription(config.mqtt_prefix), client_id=session_id,
                        persistent=persistent)
    gateway = V3Gateway(router, bridge, config.mqtt_prefix, client_id=client_id,
                        command_timeout=config.command_timeout, wanted=wanted,
                        settle=settle)
    await nursery.start(gateway.run, nursery)
    return gateway
