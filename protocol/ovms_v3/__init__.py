"""OVMS v3 modules over MQTT ("server v3"), sans-IO: topics, metric mapping, commands.

A v3 module publishes each metric on its own retained topic under
``<prefix>/<owner>/<vehicle id>/`` and runs shell commands it receives on
``client/<id>/command/<n>``. This package turns those topics and payloads into
the v2 messages the rest of the relay already understands, and the v2 commands
apps send into the module's shell commands. No broker, no sockets, no trio: the
MQTT side lives in ``relay.mqtt``.

- ``topics``: the topic scheme, parsing (with the checks against injected topics)
  and the topics and subscriptions the relay builds.
- ``metrics``: which v3 metric fills which field of which v2 message, as data.
- ``state``: one vehicle's latest metric values, and the v2 messages they make.
- ``notify``: ``notify/...`` topics as v2 ``P`` messages and historical records.
- ``commands``: v2 command numbers to shell commands, shell output to ``c`` answers.
"""
