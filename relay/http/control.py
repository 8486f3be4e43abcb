"""Vehicle control: the endpoints the public server answers 501, done for real.

Each sends the car a v2 command (``C<number>,<params>``) through the command
service (relay.commands), exactly as an app would, and waits (bounded by
``command_timeout``) for the car's ``c`` answer. The list commands (1 features,
3 parameters) answer in several lines, collected until the last.

Outcomes: answered with result 0: 200 with JSON; parameters the v2 line cannot
carry: 400, never sent; car not connected, or gone before answering: 409; no
answer in time: 504; car answers 1 (failed): 422 with its text; 2 (unsupported)
or 3 (unimplemented): 400 with its text.
"""

from __future__ import annotations

import re

from relay.commands import Answer, CommandFailed
from relay.http.call import Call
from relay.http.messages import BadRequest, HttpError, Response, json_response
from relay.params import since, small_index, whole_number

CHARGE_MODES = {"standard": 0, "storage": 1, "range": 3, "performance": 4}
_RESULT_TEXT = {
    1: (422, "Command failed"),
    2: (400, "Command not supported by the vehicle"),
    3: (400, "Command not implemented by the vehicle module"),
}
# A value that becomes one field of the command line: no separators, no line breaks.
FIELD_PATTERN = r"^[^,\x00-\x1f\x7f]{1,64}$"
# A trailing value that may hold commas; empty only where the parameter is optional.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]{1,1000}$"
OPTIONAL_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]{0,1000}$"
_FIELD_RE = re.compile(FIELD_PATTERN)
_TEXT_RE = re.compile(OPTIONAL_TEXT_PATTERN)


async def send_command(call: Call, vehicleid: str, number: int, args: str = "") -> Answer:
    """The command service's answer (relay.commands), its failures as HttpError."""
    try:
        return await call.api.services.commands.call(
            vehicleid, number, args, requester=call.request.conn_id,
            context=call.context(vehicleid))
    except CommandFailed as exc:
        raise HttpError(exc.status, exc.text) from None


def _check(answer: Answer) -> Answer:
    failed = next((line for line in answer.lines if line.result != 0), None)
    if failed is None:
        return answer
    status, default = _RESULT_TEXT.get(failed.result, (422, "Command failed"))
    text = ",".join(failed.rest).strip()
    raise HttpError(status, text or default)


def _single(answer: Answer) -> Response:
    text = ",".join(answer.lines[-1].rest) if answer.lines else ""
    return json_response({"command": answer.command, "result": answer.result, "text": text})


async def run(call: Call, number: int, args: str = "") -> Response:
    vehicleid = await call.vehicle()
    return _single(_check(await send_command(call, vehicleid, number, args)))


# --- parameters ---------------------------------------------------------------------------


def field(call: Call, name: str, *, required: bool = True, default: str | None = None) -> str:
    value = call.param(name, default)
    if value is None or value == "":
        if required:
            raise BadRequest(f"parameter {name} is required")
        return ""
    if not _FIELD_RE.fullmatch(value):
        raise BadRequest(f"parameter {name}: 1-64 characters, no commas or control characters")
    return value


def number(call: Call, name: str, low: int, high: int, *, required: bool = True) -> int | None:
    text = call.param(name)
    if text is None or text == "":
        if required:
            raise BadRequest(f"parameter {name} is required")
        return None
    return whole_number(text, name, low, high)


def free_text(call: Call, name: str, *, required: bool) -> str:
    """A trailing value that may hold commas (a parameter value, a text command)."""
    value = call.param(name)
    if value is None or value == "":
        if required:
            raise BadRequest(f"parameter {name} is required")
        return ""
    if not _TEXT_RE.fullmatch(value):
        raise BadRequest(f"parameter {name}: at most 1000 characters, no control characters")
    return value


# --- endpoints --------------------------------------------------------------------------------


async def charge_put(call: Call) -> Response:
    """Start charging; or set the mode and/or current; or ``action=stop``."""
    action = call.param("action", "start")
    if action not in ("start", "stop"):
        raise BadRequest("parameter action must be start or stop")
    mode_text = call.param("mode")
    current = number(call, "current", 1, 999, required=False)
    mode: int | None = None
    if mode_text is not None:
        # Exactly the documented names: anything else is a 400, not a guess.
        mode = CHARGE_MODES.get(mode_text)
        if mode is None:
            raise BadRequest("parameter mode must be standard, storage, range or performance")
    if mode is not None and current is not None:
        return await run(call, 16, f"{mode},{current}")
    if mode is not None:
        return await run(call, 10, str(mode))
    if current is not None:
        return await run(call, 15, str(current))
    if action == "start":
        return await run(call, 11)
    return await run(call, 12)


async def charge_delete(call: Call) -> Response:
    return await run(call, 12)


async def lock(call: Call) -> Response:
    return await run(call, 20, field(call, "pin"))


async def unlock(call: Call) -> Response:
    return await run(call, 22, field(call, "pin"))


async def valet_on(call: Call) -> Response:
    return await run(call, 21, field(call, "pin"))


async def valet_off(call: Call) -> Response:
    return await run(call, 23, field(call, "pin"))


async def homelink(call: Call) -> Response:
    return await run(call, 24, str(number(call, "button", 0, 2)))


async def reset(call: Call) -> Response:
    return await run(call, 5)


async def _list(call: Call, command: int, key: str) -> Response:
    vehicleid = await call.vehicle()
    answer = _check(await send_command(call, vehicleid, command))
    items = []
    for line in answer.lines:
        # c<cmd>,0,<index>,<count>,<value...>; a line whose index is not a small
        # number (a car's bug, or a hostile car) is left out.
        index = small_index(line.rest[0]) if len(line.rest) >= 2 else None
        if index is not None:
            items.append({key: index, "value": ",".join(line.rest[2:])})
    return json_response(items)


async def features_get(call: Call) -> Response:
    return await _list(call, 1, "feature")


async def features_put(call: Call) -> Response:
    feature = number(call, "feature", 0, 99)
    return await run(call, 2, f"{feature},{free_text(call, 'value', required=True)}")


async def parameters_get(call: Call) -> Response:
    return await _list(call, 3, "parameter")


async def parameters_put(call: Call) -> Response:
    parameter = number(call, "parameter", 0, 99)
    return await run(call, 4, f"{parameter},{free_text(call, 'value', required=True)}")


async def command(call: Call) -> Response:
    """Any command number with raw parameters; every answer line in ``lines``."""
    vehicleid = await call.vehicle()
    code = number(call, "command", 0, 999_999)
    assert code is not None
    args = free_text(call, "parameters", required=False)
    _check_server_args(code, args)
    answer = _check(await send_command(call, vehicleid, code, args))
    return json_response({
        "command": code,
        "result": answer.result,
        "lines": [",".join(line.rest) for line in answer.lines],
    })


def _check_server_args(code: int, args: str) -> None:
    """The ``since`` of commands 31 (``[since]``) and 32 (``type[,since]``), range-checked
    here so a bad one is a 400 rather than a store error."""
    fields = args.split(",") if args else []
    if code == 31 and fields:
        since(fields[0], "since (the first of parameters)")
    elif code == 32 and len(fields) > 1:
        since(fields[1], "since (the second of parameters)")
