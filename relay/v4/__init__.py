"""The connected-car API v4 (issue 6), without I/O: pure functions the HTTP layer calls.

- ``jsonparse``: strict JSON (duplicate keys are errors) and the error classes.
- ``datapaths``: named data paths -> car message fields, with units.
- ``expr``: the ``bool.exp`` language of monitors.
- ``durations``: ISO 8601 durations.
- ``monitors``: monitor validation, evaluation, batching, retries, callbacks.
- ``trips``: trips derived from the ignition/position stream.
- ``hal``: HAL objects and pages, RFC 3339 times, GeoJSON, status, actions, alerts.

Those modules (and ``alerts``, ``actions``) import no trio and touch no sockets, files
or clock. The rest wires them into the server:

- ``web``: authentication (Bearer, cookie, password), JSON errors, HAL answers.
- ``resources``, ``remote``: the route handlers; ``routes``: their route table.
- ``engine``: the background component (trips, telemetry, monitors, remote actions),
  fed by the router; ``callbacks``: monitor callback delivery (on ``relay.outbound``);
  ``callback_rows``: its retries waiting in the database; ``persist``: the other SQL.
"""

from relay.v4.jsonparse import ApiError, DuplicateKey, InvalidRequest, NotSupported

__all__ = ["ApiError", "DuplicateKey", "InvalidRequest", "NotSupported"]
