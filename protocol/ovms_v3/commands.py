"""v2 command numbers to a v3 module's shell commands, and its output to ``c`` answers.

A v2 app sends ``C<number>[,params]``; a v3 module runs a shell command line it
receives on ``client/<id>/command/<n>`` and answers with the command's output.
``COMMANDS`` says, per v2 number, which shell command does what a module's own
v2 server does for that number, and what each parameter may be. The module runs
the payload as if typed on its console (a line break would start a second
command), so every parameter is checked against its kind and nothing else ever
reaches it; command 7 (a shell command line from the owner's app) may hold any
printable text but no control character.

Numbers not in ``COMMANDS`` are answered ``c<n>,2`` (unsupported), as a module's
v2 server answers numbers it does not know; ``UNSUPPORTED_COMMANDS`` names those
the v2 protocol defines and why a v3 module cannot do them over MQTT.
"""

from __future__ import annotations

import enum
import re
import string
from collections.abc import Sequence
from typing import Final

import attrs

from protocol.messages import Message

# Result codes of a ``c`` answer (PROTOCOL.md section 4).
OK: Final = 0
FAILED: Final = 1
UNSUPPORTED: Final = 2

# The longest command line sent for command 7: a console line, not a script.
MAX_TEXT_COMMAND: Final = 200
# The longest answer text: a shell command's output can be long (``metrics list``
# is kilobytes); apps show a few lines, and the v2 line must stay well inside the
# 32 KB line limit once encrypted and base64-encoded.
MAX_ANSWER: Final = 4000
# Lines of the module's output are joined with this: a v2 message is one line and
# may hold no CR or LF (a module's own v2 server sends CR, which the relay refuses).
LINE_JOIN: Final = " | "


class Param(enum.Enum):
    """What one parameter may be; ``shell`` gives the text for the shell command."""

    PIN = "pin"  # 1..16 letters or digits
    AMPS = "amps"  # a whole number of amps, 1..999
    MODE = "mode"  # a charge mode number: 0 standard, 1 storage, 3 range, 4 performance
    BUTTON = "button"  # a homelink button, 0..2 in v2, 1..3 on the shell
    SWITCH = "switch"  # 1 on, 0 off
    LINE = "line"  # command 7: the rest of the command, commas included

    def shell(self, text: str) -> str | None:
        """The shell text of parameter ``text``, or None if it is not of this kind."""
        text = text.strip()
        if self is Param.PIN:
            return text if re.fullmatch(r"[A-Za-z0-9]{1,16}", text) else None
        if self is Param.AMPS:
            return text if re.fullmatch(r"[1-9][0-9]{0,2}", text) else None
        if self is Param.MODE:
            return CHARGE_MODE_NAMES.get(text)
        if self is Param.BUTTON:
            return str(int(text) + 1) if text in ("0", "1", "2") else None
        if self is Param.SWITCH:
            return {"1": "on", "0": "off"}.get(text)
        ok = 0 < len(text) <= MAX_TEXT_COMMAND and text.isascii() and text.isprintable()
        return text if ok else None


CHARGE_MODE_NAMES: Final = {"0": "standard", "1": "storage", "3": "range", "4": "performance"}


@attrs.frozen
class Command:
    """v2 command ``number``: ``shell`` with ``{0}``, ``{1}``... replaced by the shell
    text of the parameters ``params`` says it takes."""

    number: int
    title: str
    shell: str
    params: tuple[Param, ...] = ()

    def __attrs_post_init__(self) -> None:
        used = {name for _, name, _, _ in string.Formatter().parse(self.shell) if name}
        if used != {str(n) for n in range(len(self.params))}:
            raise ValueError(f"command {self.number}: {self.shell!r} does not use its "
                             f"{len(self.params)} parameters as {{0}}..")


COMMANDS: Final[tuple[Command, ...]] = (
    Command(5, "reboot the module", "module reset"),
    Command(6, "charge alert (status text)", "stat"),
    Command(7, "shell command", "{0}", (Param.LINE,)),
    Command(10, "set charge mode", "charge mode {0}", (Param.MODE,)),
    Command(11, "start charge", "charge start"),
    Command(12, "stop charge", "charge stop"),
    Command(15, "set charge current", "charge current {0}", (Param.AMPS,)),
    Command(18, "wake up the car", "wakeup"),
    Command(19, "wake up the temperature subsystem", "wakeup"),
    Command(20, "lock", "lock {0}", (Param.PIN,)),
    Command(21, "valet mode on", "valet {0}", (Param.PIN,)),
    Command(22, "unlock", "unlock {0}", (Param.PIN,)),
    Command(23, "valet mode off", "unvalet {0}", (Param.PIN,)),
    Command(24, "homelink", "homelink {0}", (Param.BUTTON,)),
    Command(25, "cooldown", "charge cooldown"),
    Command(26, "climate control", "climatecontrol {0}", (Param.SWITCH,)),
)
BY_NUMBER: Final = {c.number: c for c in COMMANDS}
# Commands whose answer is the shell output itself, always with result 0.
TEXT_ANSWERS: Final = frozenset({6, 7})

UNSUPPORTED_COMMANDS: Final = {
    1: "feature list: v3 modules keep features as configuration, not numbered features",
    2: "set feature: as 1",
    3: "parameter list: as 1",
    4: "set parameter: as 1",
    16: "charge mode and current together: send 10, then 15",
    17: "charge timer: no shell command for it on v3 modules",
    40: "send SMS: v3 modules do not send SMS for the server",
    41: "USSD: answered asynchronously by the modem, which MQTT does not carry",
    49: "raw modem command: not available on v3 modules",
}


def shell_command(number: int, params: Sequence[str]) -> str | None:
    """The shell command line for v2 command ``number`` with ``params`` (the
    comma-separated values after the number), or None when the number has no v3
    equivalent or a parameter is missing or not of its kind (``refusal`` then
    gives the answer)."""
    command = BY_NUMBER.get(number)
    if command is None:
        return None
    if command.params == (Param.LINE,):
        params = [",".join(params)]  # a shell line may hold commas
    if len(params) < len(command.params):
        return None
    texts = [kind.shell(text) for kind, text in zip(command.params, params, strict=False)]
    if any(t is None for t in texts):
        return None
    return command.shell.format(*texts)


def refusal(number: int, params: Sequence[str]) -> Message:
    """The ``c`` answer when ``shell_command`` gave None: unsupported, or failed with
    the reason for a missing or bad parameter."""
    command = BY_NUMBER.get(number)
    if command is None:
        return unsupported(number)
    wanted = " ".join(p.value for p in command.params)
    return Message("c", f"{number},{FAILED},{command.title} needs: {wanted}")


def unsupported(number: int) -> Message:
    """``c<n>,2``: the answer to a number with no v3 equivalent (``refusal`` also
    tells a bad parameter from an unsupported command, and is the one to use)."""
    return Message("c", f"{number},{UNSUPPORTED}")


def result_of(output: str) -> int:
    """OK, FAILED or UNSUPPORTED from a shell command's output.

    The vehicle commands print ``Error: ...`` when they fail, and ``Error: ...
    functionality not available`` (or ``... not implemented``) when the vehicle
    cannot do it; the shell answers an unknown command with ``Unrecognised
    command``.
    """
    first = output.strip().lower()
    if "unrecognised command" in first or "unrecognized command" in first:
        return UNSUPPORTED
    if first.startswith("error"):
        if "not available" in first or "not implemented" in first:
            return UNSUPPORTED
        return FAILED
    return OK


def one_line(text: str, limit: int = MAX_ANSWER, *, keep_commas: bool = False) -> str:
    """``text``'s non-empty lines joined with LINE_JOIN, commas as ';' (the field
    separator, as a module's v2 server writes them) unless ``keep_commas``, runs of
    white space as one space, other control characters dropped, cut to ``limit``."""
    if not keep_commas:
        text = text.replace(",", ";")
    lines = (" ".join("".join(c for c in word if c.isprintable()) for word in line.split())
             for line in text.splitlines())
    joined = LINE_JOIN.join(line for line in lines if line)
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def answer(number: int, response_text: str) -> Message:
    """The ``c`` answer to v2 command ``number`` from the module's output text:
    ``c<n>,0`` on success, ``c<n>,1,<output>`` or ``c<n>,2,<output>`` otherwise;
    ``c<n>,0,<output>`` always for the commands whose output is the point (6, 7)."""
    text = one_line(response_text)
    if number in TEXT_ANSWERS:
        # A module's v2 server answers these 0 with whatever the command printed.
        return Message("c", f"{number},{OK},{text}" if text else f"{number},{OK}")
    result = result_of(response_text)
    if result == OK:
        return Message("c", f"{number},{OK}")
    return Message("c", f"{number},{result},{text}" if text else f"{number},{result}")


__all__ = ["BY_NUMBER", "CHARGE_MODE_NAMES", "COMMANDS", "FAILED", "LINE_JOIN",
           "MAX_ANSWER", "MAX_TEXT_COMMAND", "OK", "TEXT_ANSWERS", "UNSUPPORTED",
           "UNSUPPORTED_COMMANDS",
           "Command", "Param", "answer", "one_line", "refusal", "result_of",
           "shell_command", "unsupported"]
