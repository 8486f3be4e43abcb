"""Log lines as JSON objects, one per line, for log shippers (``--log-format json``).

The fields are the text line's: ``time`` (the same timestamp as ``%(asctime)s``),
``level``, ``logger`` and ``message``, plus ``exception`` (the traceback) and
``stack`` when the record has them. The record reaches the formatter after the
handler's filters (relay.logsafe), so the message is already redacted and escaped;
JSON encoding then keeps a traceback's line breaks inside one line.
"""

from __future__ import annotations

import json
import logging

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def __init__(self, worker: str = "") -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.worker:
            entry["worker"] = self.worker
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(log_format: str, worker: str = "") -> logging.Formatter:
    """The formatter for a ``log_format`` setting (``text`` or ``json``); ``worker``
    names the worker process (``serve --workers``) on every line."""
    if log_format == "json":
        return JsonFormatter(worker)
    if worker:
        return logging.Formatter(TEXT_FORMAT.replace(" %(name)s", f" [{worker}] %(name)s"))
    return logging.Formatter(TEXT_FORMAT)
