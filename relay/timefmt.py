"""The protocol's timestamp format: UTC ``YYYY-MM-DD HH:MM:SS``."""

from __future__ import annotations

import datetime as dt

FORMAT = "%Y-%m-%d %H:%M:%S"


def utc_text(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(FORMAT)


def utc_day(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def parse_since(text: str) -> int | None:
    """A ``since`` argument: UTC timestamp text (date alone allowed) or unix seconds."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    for fmt in (FORMAT, "%Y-%m-%d"):
        try:
            parsed = dt.datetime.strptime(text, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return int(parsed.timestamp())
    raise ValueError(f"not a timestamp: {text!r}")
