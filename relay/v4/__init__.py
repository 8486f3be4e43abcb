"""The connected-car API v4 (issue 6), without I/O: pure functions the HTTP layer calls.

- ``jsonparse``: strict JSON (duplicate keys are errors) and the error classes.
- ``datapaths``: named data paths -> car message fields, with units.
- ``expr``: the ``bool.exp`` language of monitors.
- ``durations``: ISO 8601 durations.
- ``monitors``: monitor validation, evaluation, batching, retries, callbacks.
- ``trips``: trips derived from the ignition/position stream.
- ``hal``: HAL objects and pages, RFC 3339 times, GeoJSON, status, actions, alerts.

Nothing here imports trio or touches sockets, files or the clock.
"""

from relay.v4.jsonparse import ApiError, DuplicateKey, InvalidRequest, NotSupported

__all__ = ["ApiError", "DuplicateKey", "InvalidRequest", "NotSupported"]
