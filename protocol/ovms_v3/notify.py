"""``notify/...`` topics as v2 messages: push texts (``P``) and historical records.

``notify/info|alert|error/<subtype>`` carries a notification's text. A module's v2
server sends info and alert texts as ``PI<text>`` and ``PA<text>`` (commas as ';',
line breaks as CR) and an error as ``PE<payload>``, whose payload is already
``<vehicle type>,<error code>,<error data>``. The relay never sends a CR inside a
message, so lines are joined as in the ``c`` answers (``commands.one_line``).

``notify/data/<subtype>/<id>/<-age>`` carries one historical record,
``<type>,<recno>,<lifetime>,<data>``: what ``h<id>,<-age>,...`` carries over v2.
"""

from __future__ import annotations

from typing import Final

import attrs

from protocol import values
from protocol.messages import HistoricalRecord, Message
from protocol.ovms_v3.commands import one_line
from protocol.ovms_v3.topics import Kind, V3Topic

# A notification's text is a few lines of a shell command's output (``stat``); push
# services take about 4 KB.
MAX_NOTIFY: Final = 4096
# A historical record's data is one line of at most a few hundred bytes.
MAX_RECORD: Final = 2048

_LETTERS: Final = {"info": "I", "alert": "A", "error": "E"}


@attrs.frozen
class Refused:
    reason: str


def push_message(topic: V3Topic, payload: bytes) -> Message | Refused:
    """The ``P`` message of a ``notify/info|alert|error`` topic."""
    if topic.kind is not Kind.NOTIFY:
        return Refused(f"not a text notification: {topic.kind.value}")
    text = _text(payload, MAX_NOTIFY)
    if isinstance(text, Refused):
        return text
    if topic.notify_type == "error":
        return Message("P", "E" + one_line(text, MAX_NOTIFY, keep_commas=True))
    return Message("P", _LETTERS[topic.notify_type] + one_line(text, MAX_NOTIFY))


@attrs.frozen
class DataRecord:
    """A ``notify/data`` record as the v2 ``h`` message carries it."""

    entry: int  # the module's notification id (the v2 ack code)
    age: int  # seconds between the record's making and its publication
    htype: str
    recordnumber: int
    lifetime: int
    data: str

    def to_message(self) -> Message:
        """``h<entry>,<-age>,<type>,<recno>,<lifetime>,<data>``."""
        return Message("h", f"{self.entry},{-self.age},{self.htype},{self.recordnumber},"
                            f"{self.lifetime},{self.data}")

    def record(self, now: int) -> HistoricalRecord:
        """The record to store, received at ``now``; ValueError if out of range."""
        return HistoricalRecord.from_message(self.to_message(), now)


def data_record(topic: V3Topic, payload: bytes) -> DataRecord | Refused:
    """The record of a ``notify/data`` topic and its payload."""
    if topic.kind is not Kind.DATA or topic.number is None or topic.age is None:
        return Refused(f"not a data notification: {topic.kind.value}")
    text = _text(payload, MAX_RECORD)
    if isinstance(text, Refused):
        return text
    text = text.split("\n", 1)[0].rstrip("\r")
    parts = text.split(",", 3)
    if len(parts) < 4:
        return Refused("record needs type,recordnumber,lifetime,data")
    htype, number, lifetime, data = parts
    if not htype or not htype.isprintable() or len(htype) > 64:
        return Refused("record type is empty, too long or has control characters")
    if not data.isprintable():
        return Refused("record data has control characters")
    try:
        recordnumber = values.parse_recordnumber(number)
        life = values.parse_lifetime(lifetime)
    except ValueError as error:
        return Refused(str(error))
    return DataRecord(topic.number, topic.age, htype, recordnumber, life, data)


def _text(payload: bytes, limit: int) -> str | Refused:
    if len(payload) > limit:
        return Refused(f"payload of {len(payload)} bytes is over {limit}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return Refused("payload is not UTF-8")
    if "\x00" in text:
        return Refused("payload holds a NUL")
    return text


__all__ = ["MAX_NOTIFY", "MAX_RECORD", "DataRecord", "Refused", "data_record", "push_message"]
