"""OVMS v3 modules through an MQTT broker: the broker side of ``protocol.ovms_v3``.

- ``url``: the ``--mqtt`` URL.
- ``bridge``: the paho-mqtt client in its own thread, bridged to trio.
- ``gateway``: v3 modules as cars in the hub: metrics to the store and the apps,
  presence, commands and their answers.
"""
