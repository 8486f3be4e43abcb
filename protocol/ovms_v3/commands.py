"""v2 command numbers to a v3 module's shell commands, and its output to ``c`` answers.

A v2 app sends ``C<number>[,params]``; a v3 module takes a shell command line on
``client/<id>/command/<n>`` and answers with the command's output text. ``COMMANDS``
says, per v2 number, which shell command does the same and which parameters it
takes, each checked against a pattern: the module runs the payload as typed on
its console (a line break would start a second command), so nothing but the
expected digits or words ever reaches it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from typing import Final

import attrs

from protocol.messages import Message

# Result codes of a ``c`` answer (PROTOCOL.md section 4).
OK: Final = 0
FAILED: Final = 1
UNSUPPORTED: Final = 2


class Param(enum.Enum):
    """What one parameter may be, as a full-match pattern."""

    PIN = r"[0-9]{1,12}"
    AMPS = r"[0-9]{1,3}"
    WORD = r"[A-Za-z0-9_.-]{1,32}"

    def ok(self, text: str) -> bool:
        return re.fullmatch(self.value, text) is not None


@attrs.frozen
class Command:
    """v2 command ``number``: ``shell`` with ``{0}``, ``{1}``... replaced by the checked
    parameters (``params`` says how many and what each may be)."""

    number: int
    title: str
    shell: str
    params: tuple[Param, ...] = ()


COMMANDS: Final[tuple[Command, ...]] = (
    Command(11, "start charge", "charge start"),
    Command(12, "stop charge", "charge stop"),
    Command(20, "lock", "lock {0}", (Param.PIN,)),
    Command(21, "valet mode on", "valet {0}", (Param.PIN,)),
    Command(22, "unlock", "unlock {0}", (Param.PIN,)),
    Command(23, "valet mode off", "unvalet {0}", (Param.PIN,)),
)

BY_NUMBER: Final = {c.number: c for c in COMMANDS}


def shell_command(number: int, params: Sequence[str]) -> str | None:
    """The shell command line for v2 command ``number`` with ``params`` (the
    comma-separated values after the number), or None when the command has no v3
    equivalent or a parameter is missing or not of its kind."""
    command = BY_NUMBER.get(number)
    if command is None or len(params) < len(command.params):
        return None
    checked = [p.strip() for p in params[: len(command.params)]]
    if not all(kind.ok(text) for kind, text in zip(command.params, checked, strict=True)):
        return None
    return command.shell.format(*checked)


def answer(number: int, response_text: str) -> Message:
    """The ``c`` answer to v2 command ``number`` from the module's output text."""
    text = " ".join(response_text.split())
    result = FAILED if text.lower().startswith("error") else OK
    return Message("c", f"{number},{result},{text}" if text else f"{number},{result}")


def unsupported(number: int, reason: str = "not supported by OVMS v3 modules") -> Message:
    """The ``c`` answer to a command with no v3 equivalent."""
    return Message("c", f"{number},{UNSUPPORTED},{reason}")


__all__ = ["BY_NUMBER", "COMMANDS", "FAILED", "OK", "UNSUPPORTED", "Command", "Param",
           "answer", "shell_command", "unsupported"]
