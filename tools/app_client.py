"""``ovms-app``: log in to a vehicle as an app (or batch client) and show what arrives.

Prints every message decoded, one line each (``--json``: one JSON object per
line), can send commands and print their answers, subscribe to push
notifications and to groups. Meant for people and for scripts::

    ovms-app --port 6867 --vehicle DEMO --carpass PASS --duration 60
    ovms-app --vehicle DEMO --carpass PASS --command 20,1234 --json
    ovms-app --tls --vehicle DEMO --carpass PASS   # port 6870 unless --port

``--push`` alone subscribes, waits until the server has handled the subscription
and exits; with ``--group``, ``--duration`` or ``--count`` it goes on watching.

Exit status: 0 success; 1 cannot connect, login refused or connection lost;
2 usage error; 3 a command failed (result 1); 4 a command is unsupported or
unimplemented by the car (result 2 or 3); 5 no answer to a command in time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import attrs
import trio

from protocol import (
    TPMS,
    ClientType,
    CommandResponse,
    Doors,
    Firmware,
    Location,
    Message,
    NewTPMS,
    RemoteProtocolError,
    Status,
)
from tools.clikit import Parser, UsageError, fail, first_leaf, until_signal
from tools.simulation import COMMAND_NAMES
from tools.v2client import (
    LoginRefused,
    V2Client,
    add_login_arguments,
    client_ssl_context,
    describe_oserror,
    describe_tls_failure,
)

PROG = "ovms-app"
EXIT_OK, EXIT_CONNECTION, EXIT_USAGE, EXIT_FAILED, EXIT_UNSUPPORTED, EXIT_TIMEOUT = range(6)
PLAIN_PORT, TLS_PORT = 6867, 6870
RESULT_TEXT = {0: "ok", 1: "failed", 2: "unsupported", 3: "unimplemented"}

KINDS = {
    "S": "status", "D": "environment", "L": "location", "W": "tpms", "Y": "tpms",
    "F": "firmware", "V": "capabilities", "X": "power", "Z": "peers", "T": "age",
    "c": "command-response", "P": "push", "g": "group", "f": "server-version",
    "a": "ping-ack", "A": "ping", "E": "paranoid",
}


# --------------------------------------------------------------------------- decoding


def _num(value: str | None, default: float = 0.0) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _flag(value: str | None, bit: int) -> bool:
    return int(_num(value)) >> bit & 1 == 1


def fields_of(msg: Message) -> dict[str, Any]:
    """The message's fields by name (JSON-friendly); unknown codes give ``{}``."""
    code, data = msg.code, msg.data
    view: Any
    for cls in (Status, Doors, Location, TPMS, Firmware):
        if code == cls.CODE:
            view = cls.from_data(data)
            out: dict[str, Any] = dict(view.as_dict())
            if view.extra:
                out["extra"] = list(view.extra)
            return out
    if code == "Y":
        view = NewTPMS.from_data(data)
        wheels = list(view.names or ())
        series = {name: list(getattr(view, name).values) for name in
                  ("pressure", "temperature", "health", "alert")}
        return {"wheels": wheels, **series}
    if code == "c":
        resp = CommandResponse.parse(data)
        return {"number": resp.number, "name": COMMAND_NAMES.get(resp.number),
                "result": resp.result, "result_text": RESULT_TEXT.get(resp.result, "?"),
                "rest": list(resp.rest)}
    if code in ("Z", "T") and data.isdigit():
        return {"count": int(data)} if code == "Z" else {"seconds": int(data)}
    if code == "P":
        return {"alert": data[:1], "text": data[1:]}
    if code == "g":
        vehicleid, group, rest = [*data.split(",", 2), "", ""][:3]
        return {"vehicleid": vehicleid, "group": group, "data": rest}
    return {}


def describe(msg: Message) -> str:
    """One readable line: the code, then what it means."""
    try:
        return f"{msg.code}  {_describe(msg)}"
    except (RemoteProtocolError, ValueError, IndexError):
        return f"{msg.code}  {msg.data}"


def _describe(msg: Message) -> str:
    code, data = msg.code, msg.data
    if code == "S":
        s = Status.from_data(data)
        unit = "mi" if s.units == "M" else "km"
        text = (f"status: SOC {s.soc}%, ideal range {s.idealrange} {unit}, estimated "
                f"{s.estimatedrange} {unit}, charge {s.chargestate or '-'} ({s.chargemode or '-'})")
        if s.chargestate == "charging":
            text += f", {s.linevoltage} V {s.chargecurrent} A, {_num(s.chargekwh) / 10:.1f} kWh"
        return text
    if code == "D":
        d = Doors.from_data(data)
        state = ("driving" if _flag(d.doors1, 7) else
                 "charging" if _flag(d.doors1, 4) else "parked")
        return (f"environment: {state}, {'locked' if _flag(d.doors2, 3) else 'unlocked'}"
                f"{', valet' if _flag(d.doors2, 4) else ''}, speed {d.speed}, odometer "
                f"{_num(d.odometer) / 10:.1f}, ambient {d.temp_ambient} C, "
                f"battery {d.temp_battery} C, 12 V {d.vehicle12v}")
    if code == "L":
        loc = Location.from_data(data)
        return (f"location: {loc.latitude},{loc.longitude} heading {loc.direction}, "
                f"altitude {loc.altitude} m, speed {loc.speed}")
    if code == "W":
        w = TPMS.from_data(data)
        return "tyres: " + ", ".join(
            f"{name} {getattr(w, name.lower() + '_pressure')} psi "
            f"{getattr(w, name.lower() + '_temp')} C" for name in ("FL", "FR", "RL", "RR"))
    if code == "Y":
        y = NewTPMS.from_data(data)
        names = y.names or ()
        parts = []
        for i, name in enumerate(names):
            p = y.pressure.values[i] if i < len(y.pressure.values) else "?"
            t = y.temperature.values[i] if i < len(y.temperature.values) else "?"
            parts.append(f"{name} {p} kPa {t} C")
        return "tyres: " + ", ".join(parts)
    if code == "F":
        f = Firmware.from_data(data)
        return (f"firmware: {f.version}, VIN {f.vin}, type {f.vehicle_type}, "
                f"network {f.network}, signal {f.signal_quality}")
    if code == "V":
        return f"capabilities: {data}"
    if code == "Z":
        return "car connected" if data not in ("", "0") else "car not connected"
    if code == "T":
        return f"last car message {data} s ago"
    if code == "c":
        resp = CommandResponse.parse(data)
        name = COMMAND_NAMES.get(resp.number, "command")
        text = f"command {resp.number} ({name}): {RESULT_TEXT.get(resp.result, resp.result)}"
        return text + (": " + ",".join(resp.rest) if resp.rest else "")
    if code == "P":
        return f"push notification ({data[:1]}): {data[1:]}"
    if code == "g":
        vehicleid, group, rest = [*data.split(",", 2), "", ""][:3]
        return f"group {group}: {vehicleid} {rest}"
    if code == "f":
        return f"server version {data}"
    if code == "a":
        return "ping answered"
    return data


def as_json(msg: Message) -> str:
    try:
        fields = fields_of(msg)
    except (RemoteProtocolError, ValueError):
        fields = {}
    record = {"time": round(time.time(), 3), "code": msg.code,
              "kind": KINDS.get(msg.code, "other"), "data": msg.data, "fields": fields,
              "text": describe(msg)[3:]}
    return json.dumps(record, sort_keys=True)


def is_last_answer(resp: CommandResponse) -> bool:
    """The car's lists (1, 3) end at index count-1, the server's (30-32) at k == n."""
    return resp.is_last_line()


def exit_status(result: int) -> int:
    return {0: EXIT_OK, 1: EXIT_FAILED}.get(result, EXIT_UNSUPPORTED)


# --------------------------------------------------------------------------- running


class AppError(Exception):
    """Cannot connect, login refused, connection lost (one-line reason)."""


@attrs.define
class Printer:
    out: TextIO
    json: bool = False
    printed: int = 0

    def show(self, msg: Message) -> None:
        self.out.write((as_json(msg) if self.json else describe(msg)) + "\n")
        self.out.flush()
        self.printed += 1


def uses_tls(args: argparse.Namespace) -> bool:
    return bool(args.tls or args.cafile or args.insecure)  # the latter two imply --tls


async def connect(args: argparse.Namespace) -> V2Client:
    ctype = ClientType.BATCH if args.batch else ClientType.APP
    try:
        return await V2Client.connect(
            args.host, args.port, args.vehicle, client_type=ctype, carpass=args.carpass,
            username=args.username, password=args.password, timeout=args.timeout,
            ssl_context=client_ssl_context(args.tls, args.cafile, args.insecure))
    except LoginRefused:
        raise AppError(f"login refused for vehicle {args.vehicle}") from None
    except trio.TooSlowError:
        raise AppError(f"no login answer within {args.timeout:.0f} s") from None
    except OSError as exc:
        raise AppError(f"cannot connect to {args.host}:{args.port}: "
                       f"{describe_oserror(exc)}") from None
    except trio.BrokenResourceError as exc:
        raise AppError(f"TLS with {args.host}:{args.port} failed: "
                       f"{describe_tls_failure(exc)}") from None


async def receive(client: V2Client, timeout: float = math.inf) -> Message:
    try:
        return await client.receive(timeout)
    except (LoginRefused, trio.BrokenResourceError, trio.ClosedResourceError):
        raise AppError("connection closed by the server") from None
    except RemoteProtocolError as exc:
        raise AppError(f"protocol error: {exc}") from None


async def run_command(client: V2Client, command: str, printer: Printer, timeout: float) -> int:
    """Send ``C<command>``, print its answer line(s); returns the exit status."""
    number = int(command.split(",", 1)[0])
    await client.send("C", command)
    status = EXIT_OK
    with trio.move_on_after(timeout):
        while True:
            msg = await receive(client)
            if msg.code != "c":
                continue
            try:
                resp = CommandResponse.parse(msg.data)
            except ValueError:
                continue
            if resp.number != number:
                continue
            printer.show(msg)
            status = max(status, exit_status(resp.result))
            if is_last_answer(resp):
                return status
    print(f"{PROG}: error: no answer to command {number} within {timeout:.0f} s",
          file=sys.stderr)
    return EXIT_TIMEOUT


async def confirm_push(client: V2Client, appid: str, pushtype: str, printer: Printer,
                       timeout: float) -> int:
    """Wait until the server has handled the ``p`` just sent, then report it.

    The v2 protocol does not answer ``p``, but the server handles a client's lines in
    order: the answer to a ping sent after it means the subscription was handled.
    A wrong vehicle password is refused without an answer (only the server logs it).
    """
    await client.send("A", "")
    with trio.move_on_after(timeout):
        while (await receive(client)).code != "a":
            pass
        text = (f"push subscription {appid} ({pushtype}) handled by the server "
                "(stored unless the vehicle password is wrong)")
        if printer.json:
            printer.out.write(json.dumps({"time": round(time.time(), 3), "code": "p",
                                          "kind": "push-subscription", "text": text},
                                         sort_keys=True) + "\n")
        else:
            printer.out.write(f"p  {text}\n")
        printer.out.flush()
        return EXIT_OK
    print(f"{PROG}: error: no answer from the server within {timeout:.0f} s", file=sys.stderr)
    return EXIT_TIMEOUT


async def session(args: argparse.Namespace, printer: Printer) -> int:
    client = await connect(args)
    async with client:
        for group in args.group:
            await client.send("G", group)
        if args.push:
            appid, pushtype, keytype, keyvalue = args.push.split(",", 3)
            netpass = args.netpass or args.carpass
            await client.send("p", ",".join([appid, pushtype, keytype, args.vehicle.upper(),
                                             netpass, keyvalue]))
            if not (args.command or args.group or args.duration is not None
                    or args.count is not None):
                return await confirm_push(client, appid, pushtype, printer, args.timeout)
        if args.command:
            status = EXIT_OK
            for command in args.command:
                status = max(status, await run_command(client, command, printer, args.timeout))
            return status
        with trio.move_on_after(args.duration if args.duration is not None else math.inf):
            while args.count is None or printer.printed < args.count:
                printer.show(await receive(client))
    return EXIT_OK


async def _main(args: argparse.Namespace, printer: Printer) -> int:
    status = await until_signal(session, args, printer)
    return EXIT_OK if status is None else status


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog=PROG, description="Watch and command an OVMS vehicle over the v2 protocol.")
    add_login_arguments(
        p, vehicle_help="vehicle id ('*' for the account's first with scheme 1)",
        carpass_help="the vehicle password (scheme 0, as the phone app)", tls_port=True)
    p.add_argument("--batch", action="store_true",
                   help="log in as a batch client (not counted as a watching app)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--command", action="append", default=[], metavar="N[,PARAMS]",
                   help="send a command, print its answer and exit (repeatable)")
    p.add_argument("--push", metavar="APPID,TYPE,KEYTYPE,KEY",
                   help="subscribe to push notifications and exit once the server has "
                        "handled it (with --group, --duration or --count: keep watching)")
    p.add_argument("--netpass", help="vehicle password for --push (default --carpass)")
    p.add_argument("--group", action="append", default=[], metavar="NAME",
                   help="subscribe to a group's updates (repeatable)")
    p.add_argument("--duration", type=float, metavar="S", help="watch for S seconds, then exit")
    p.add_argument("--count", type=int, metavar="N", help="exit after printing N messages")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="seconds to wait for the login and each command answer (default 30)")
    return p


def _fail(message: str, status: int) -> int:
    return fail(PROG, message, status)


def _check(args: argparse.Namespace) -> str | None:
    if (args.carpass is None) == (args.username is None or args.password is None):
        return "give --carpass, or --username and --password"
    for command in args.command:
        if not command.split(",", 1)[0].isdigit():
            return f"bad --command {command!r}: it starts with the command number"
    if args.push:
        if len(args.push.split(",", 3)) != 4:
            return "--push needs APPID,TYPE,KEYTYPE,KEY"
        if not (args.netpass or args.carpass):
            return "--push needs the vehicle password (--carpass or --netpass)"
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The checked arguments, ``port`` filled in; raises UsageError."""
    args = build_parser().parse_args(argv)
    problem = _check(args)
    if problem:
        raise UsageError(problem)
    if args.port is None:
        args.port = TLS_PORT if uses_tls(args) else PLAIN_PORT
    return args


def run(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    printer = Printer(out or sys.stdout, json=args.json)
    status = EXIT_OK
    try:
        status = trio.run(_main, args, printer)
    except* AppError as group:
        status = _fail(str(first_leaf(group)), EXIT_CONNECTION)
    except* KeyboardInterrupt:
        pass
    except* BrokenPipeError:
        # The reader went away (``ovms-app ... | head``): stop quietly, like other
        # filters, and keep Python from complaining again when it flushes stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return status


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


if __name__ == "__main__":
    main()
