"""The message model: one code character plus data, and typed views of the common codes.

Every code is a ``Message``; ``S``, ``D``, ``L``, ``W``, ``Y`` and ``F`` also have
attrs views with named fields. Views are tolerant in both directions the protocol
needs: fields the car did not send are ``None`` and fields we do not know yet are
kept in ``extra``, so ``to_data()`` reproduces what arrived.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast

import attrs

from protocol import fields, values

# Text in messages is UTF-8 in practice; surrogateescape keeps any other byte
# exactly as received so a relayed message is never altered.
ENCODING = "utf-8"
ERRORS = "surrogateescape"


# No field of any message may hold these: a line is one message, and a CR or LF
# inside one would end it early on a plain (scheme 1) or WebSocket connection,
# where the rest reads as further messages the sender never had the right to send.
LINE_BREAKS = frozenset("\r\n")


def line_break_in(text: str) -> bool:
    return "\r" in text or "\n" in text


@attrs.frozen(slots=True)
class Message:
    code: str
    data: str = ""

    @classmethod
    def parse(cls, text: str) -> Message:
        """Split one decoded line into code and data; ValueError if it has no code."""
        if not text:
            raise ValueError("empty message")
        return cls(text[0], text[1:])

    def problem(self) -> str | None:
        """Why this message cannot go on the wire as one line, or None if it can."""
        if len(self.code) != 1:
            return "message code must be one character"
        if line_break_in(self.code) or line_break_in(self.data):
            return "message holds a CR or LF"
        return None

    def text(self) -> str:
        return self.code + self.data

    def fields(self) -> list[str]:
        return self.data.split(",") if self.data else []


@attrs.frozen(slots=True)
class CommandResponse:
    """A car's ``c<number>,<result>[,...]`` answer."""

    number: int
    result: int
    rest: tuple[str, ...]

    OK: ClassVar[int] = 0

    @classmethod
    def parse(cls, data: str) -> CommandResponse:
        """``<number>[,<result>[,...]]``; ValueError if number or result is not a count."""
        parts = data.split(",")
        number = _number(parts[0])
        result = _number(parts[1]) if len(parts) > 1 else 0
        if number is None:
            raise ValueError("command response without a command number")
        if result is None:
            raise ValueError("command response without a numeric result")
        return cls(number, result, tuple(parts[2:]))

    def is_last_line(self) -> bool:
        """For the multi-line answers: is this the final line?

        The car's lists (commands 1, 3) are ``c<n>,0,<index>,<count>,...`` with
        index from 0 and end at index count-1; the server's own answers (30, 31,
        32) are ``c<n>,0,<k>,<n>,...`` with k from 1 to n, as on the public
        server. Any list ends with a non-zero result; single-line commands are
        always last.
        """
        listed = self.number in MULTILINE_COMMANDS or self.number in SERVER_COMMANDS
        if not listed or self.result != 0:
            return True
        index, count = _number(self.rest[0]) if self.rest else None, None
        if len(self.rest) > 1:
            count = _number(self.rest[1])
        if index is None or count is None:
            return True
        if self.number in SERVER_COMMANDS:
            return index >= count
        return index >= count - 1


@attrs.frozen
class HistoricalRecord:
    """A car's historical record, checked against the ranges of ``protocol.values``.

    ``H<type>,<recordnumber>,<lifetime_s>,<data>`` is stamped with the arrival
    time; ``h<ackcode>,<timediff_s>,<type>,<recordnumber>,<lifetime_s>,<data>``
    with arrival time + timediff, and wants ``h<ackcode>`` back once stored.
    """

    htype: str
    recordnumber: int
    timestamp: int
    expires: int
    data: str
    ackcode: str | None = None

    @classmethod
    def from_message(cls, msg: Message, now: int) -> HistoricalRecord:
        """Parse an ``H`` or ``h`` received at ``now`` (unix seconds).

        Raises ValueError with the reason for a malformed record or a number out of
        range: such a record is dropped (and an ``h`` not acknowledged).
        """
        ackcode: str | None = None
        if msg.code == "H":
            parts = msg.data.split(",", 3)
            if len(parts) < 4:
                raise ValueError("H record needs type,recordnumber,lifetime,data")
            htype, number, lifetime, data = parts
            timestamp = now
        elif msg.code == "h":
            parts = msg.data.split(",", 5)
            if len(parts) < 6:
                raise ValueError("h record needs ackcode,timediff,type,recordnumber,lifetime,data")
            ackcode, timediff, htype, number, lifetime, data = parts
            diff = values.parse_int(
                timediff, -values.MAX_TIMESTAMP, values.MAX_TIMESTAMP, "timediff")
            timestamp = values.check_timestamp(now + diff, "record time (now + timediff)")
        else:
            raise ValueError(f"not a historical record: code {msg.code!r}")
        recordnumber = values.parse_recordnumber(number)
        expires = timestamp + values.parse_lifetime(lifetime)
        return cls(htype, recordnumber, timestamp, expires, data, ackcode)


# The car's list commands: answered with several lines, index from 0.
MULTILINE_COMMANDS = frozenset({1, 3})

# Commands the server answers itself (never forwarded to the car), k from 1 to n.
SERVER_COMMANDS = frozenset({30, 31, 32})


def _count(text: str) -> int | None:
    """A non-negative number as modules write it (ASCII digits, no leading zero), else None.

    ``str.isdigit`` alone accepts ``"²"`` (which ``int`` rejects) and unbounded digit
    strings (which ``int`` refuses past 4300 digits); both arrive from peers.
    """
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    return int(text)


def _number(text: str) -> int | None:
    """Up to 9 ASCII digits (leading zeros allowed) as an int, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    return int(text)


def command_number(data: str) -> int | None:
    return _number(data.split(",", 1)[0])


V = TypeVar("V", bound="FieldView")


class FieldView:
    """Base of the typed views: built from a ``protocol.fields`` layout by ``_view``.

    A view's attributes are the layout's field names (raw text, ``None`` when the
    message was shorter) plus ``extra``, the values past the described fields.
    """

    CODE: ClassVar[str]
    LAYOUT: ClassVar[fields.Layout]
    extra: tuple[str, ...]

    if TYPE_CHECKING:
        # The fields come from the layout at run time; to the type checker every
        # one of them is optional text.
        def __init__(self, **values: Any) -> None: ...
        def __getattr__(self, name: str) -> str | None: ...

    @classmethod
    def from_data(cls: type[V], data: str) -> V:
        values = data.split(",") if data else []
        names = cls.LAYOUT.names()
        kwargs: dict[str, Any] = dict(zip(names, values, strict=False))
        kwargs["extra"] = tuple(values[len(names) :])
        return cls(**kwargs)

    @classmethod
    def from_message(cls: type[V], msg: Message) -> V:
        if msg.code != cls.CODE:
            raise ValueError(f"{cls.__name__} needs code {cls.CODE!r}, got {msg.code!r}")
        return cls.from_data(msg.data)

    def values(self) -> list[str | None]:
        return [getattr(self, name) for name in self.LAYOUT.names()]

    def to_data(self) -> str:
        # Fields are positional: trailing unset fields are left out, but an unset
        # field before a set one (or before ``extra``) is written empty, not dropped.
        values = self.values()
        extra: list[str] = list(self.extra)
        if not extra:
            while values and values[-1] is None:
                values.pop()
        return ",".join(["" if v is None else v for v in values] + extra)

    def to_message(self) -> Message:
        return Message(self.CODE, self.to_data())

    def as_dict(self) -> dict[str, str | None]:
        return dict(zip(self.LAYOUT.names(), self.values(), strict=True))


def _view(name: str, layout: fields.Layout, doc: str) -> type[FieldView]:
    """An attrs class with one optional text attribute per field of ``layout``."""
    attributes: dict[str, Any] = {f: attrs.field(default=None) for f in layout.names()}
    attributes["extra"] = attrs.field(default=())
    cls = attrs.make_class(name, attributes, bases=(FieldView,), frozen=True, slots=True,
                           class_body={"CODE": layout.code, "LAYOUT": layout,
                                       "__doc__": doc, "__module__": __name__})
    return cast("type[FieldView]", cls)


Status = _view("Status", fields.STATUS, "Status (``S``).")
Doors = _view("Doors", fields.DOORS, "Doors and environment (``D``).")
Location = _view("Location", fields.LOCATION, "Location (``L``).")
TPMS = _view("TPMS", fields.TPMS, "Old-style TPMS (``W``): pressures in psi.")
Firmware = _view("Firmware", fields.FIRMWARE, "Firmware (``F``).")


@attrs.frozen
class WheelSeries:
    """One counted list of a ``Y`` message and the validity flag that follows it."""

    values: tuple[str, ...] = ()
    validity: str | None = None


@attrs.frozen
class NewTPMS:
    """New-style TPMS (``Y``): counted lists, pressures in kPa.

    Layout: n, names...; n, pressures..., validity; n, temperatures..., validity;
    n, health..., validity; n, alerts..., validity; [n, sensor indices..., validity].
    A message cut short simply leaves the later series empty.
    """

    CODE: ClassVar[str] = fields.NEW_TPMS.code
    SERIES: ClassVar[tuple[str, ...]] = fields.NEW_TPMS.series

    names: tuple[str, ...] | None = None
    pressure: WheelSeries = WheelSeries()
    temperature: WheelSeries = WheelSeries()
    health: WheelSeries = WheelSeries()
    alert: WheelSeries = WheelSeries()
    mapping: WheelSeries | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def from_data(cls, data: str) -> NewTPMS:
        values = data.split(",") if data else []
        names = _counted(values, 0)
        if names is None:
            return cls(extra=tuple(values))
        pos = 1 + len(names)
        layout, _ = _series_layout(values, pos, len(cls.SERIES))
        # A trailing "0" with no flag is indistinguishable from an absent series:
        # leave it in ``extra`` so that to_data() reproduces it.
        while layout and not layout[-1][0] and layout[-1][1] is None:
            layout.pop()
        series: dict[str, WheelSeries] = {}
        for name, (items, validity, end) in zip(cls.SERIES, layout, strict=False):
            series[name] = WheelSeries(items, validity)
            pos = end
        return cls(
            names=names,
            pressure=series.get("pressure", WheelSeries()),
            temperature=series.get("temperature", WheelSeries()),
            health=series.get("health", WheelSeries()),
            alert=series.get("alert", WheelSeries()),
            mapping=series.get("mapping"),
            extra=tuple(values[pos:]),
        )

    @classmethod
    def from_message(cls, msg: Message) -> NewTPMS:
        if msg.code != cls.CODE:
            raise ValueError(f"NewTPMS needs code 'Y', got {msg.code!r}")
        return cls.from_data(msg.data)

    def to_data(self) -> str:
        if self.names is None:
            return ",".join(self.extra)
        out: list[str] = [str(len(self.names)), *self.names]
        all_series = [self.pressure, self.temperature, self.health, self.alert]
        present = [bool(s.values) or s.validity is not None for s in all_series]
        if self.mapping is not None:
            all_series.append(self.mapping)
            present.append(True)
        # Series are positional: an empty one before a present one must still be written.
        last = max((i for i, p in enumerate(present) if p), default=-1)
        for s in all_series[: last + 1]:
            out += [str(len(s.values)), *s.values]
            if s.validity is not None:
                out.append(s.validity)
        return ",".join(out + list(self.extra))

    def to_message(self) -> Message:
        return Message(self.CODE, self.to_data())


_Series = tuple[tuple[str, ...], str | None, int]


def _counted(values: list[str], pos: int) -> tuple[str, ...] | None:
    """The counted list starting at ``pos`` (``n, item1..itemN``), or None if it does not fit."""
    n = _count(values[pos]) if pos < len(values) else None
    if n is None or pos + 1 + n > len(values):
        return None
    return tuple(values[pos + 1 : pos + 1 + n])


def _series_layout(values: list[str], pos: int, remaining: int) -> tuple[list[_Series], int]:
    """Split ``values[pos:]`` into up to ``remaining`` counted series, each optionally
    followed by a validity flag; returns the layout and where it ends.

    Modules in the field do not all send every validity flag (the reference demo
    car omits the one after the pressures), so each flag is tried present and
    absent, and the layout that accounts for the most values wins (present on a tie).
    """
    if remaining == 0:
        return [], pos
    items = _counted(values, pos)
    if items is None:
        return [], pos
    end = pos + 1 + len(items)
    best_layout, best_end = _series_layout(values, end, remaining - 1)
    best: list[_Series] = [(items, None, end), *best_layout]
    if end < len(values):
        layout, layout_end = _series_layout(values, end + 1, remaining - 1)
        if layout_end >= best_end:
            best, best_end = [(items, values[end], end + 1), *layout], layout_end
    return best, best_end
