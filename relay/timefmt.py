"""The protocol's timestamp text: UTC ``YYYY-MM-DD HH:MM:SS``.

Formatting only; every time a peer sends is parsed by ``protocol.values``.
"""

from __future__ import annotations

import datetime as dt

from protocol.values import TIME_FORMAT

FORMAT = TIME_FORMAT


def utc_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(FORMAT)
