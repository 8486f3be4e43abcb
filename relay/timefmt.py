"""The protocol's timestamp format: UTC ``YYYY-MM-DD HH:MM:SS``."""

from __future__ import annotations

import datetime as dt

from relay.params import since

FORMAT = "%Y-%m-%d %H:%M:%S"


def utc_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(FORMAT)


def parse_since(text: str) -> int | None:
    """A v2 ``since`` argument: UTC timestamp text (date alone allowed) or unix seconds,
    range-checked by ``relay.params.since`` (its ``ParamError`` is a ``ValueError``)."""
    return since(text.strip())
