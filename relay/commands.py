"""Commands to a car: send command N with parameters to vehicle V and await its answer.

One service below every API that commands a car: the REST control endpoints
(relay.http.control), API v4 remote actions (relay.v4.engine) and a v2 app's
``C`` (relay.router). Commands 30-32 are answered here from the store, as the
public server does; every other command goes to the car through the hub's
waiting list and its ``c`` answer lines come back, the list commands (1
features, 3 parameters) in several lines, collected until the last.

``call`` ends in an ``Answer`` or one of the ``CommandFailed`` outcomes, each
with the HTTP-style code REST answers and v4 records for it: the command cannot
be sent (400), the car is not connected or left before answering (409), or it
stayed silent for ``command_timeout`` seconds (504). What the car answered,
including a failure result, is the caller's to judge (``Answer.result``).
"""

from __future__ import annotations

import logging

import attrs
import trio

from protocol import SERVER_COMMANDS, CommandResponse, Message, RemoteProtocolError, values
from protocol.messages import ENCODING, ERRORS
from relay.hubapi import CommandWaiter, HubApi, Peer
from relay.store import Store, StoreError
from relay.timefmt import utc_text
from relay.usage import flush_usage

log = logging.getLogger("relay.commands")

# Answer lines one caller may collect: more than any car's feature/parameter list.
MAX_LINES = 256
# Days of usage command 30 reports (PROTOCOL.md: up to 90).
USAGE_DAYS = 90


@attrs.frozen
class Answer:
    command: int
    lines: tuple[CommandResponse, ...]

    @property
    def result(self) -> int:
        return self.lines[-1].result if self.lines else 0

    @property
    def text(self) -> str:
        """The last line's text (after the result code)."""
        return ",".join(self.lines[-1].rest) if self.lines else ""


class CommandFailed(Exception):
    """No answer from the car; ``status`` is the outcome code REST and v4 report."""

    status = 500

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Unsendable(CommandFailed):
    """The parameters cannot go on the wire as one v2 line (CR, LF, undecodable text)."""

    status = 400


class Offline(CommandFailed):
    """The car is not connected, or left before answering."""

    status = 409


class Silent(CommandFailed):
    """The car did not answer in time."""

    status = 504


def _parse(msg: Message) -> CommandResponse:
    try:
        return CommandResponse.parse(msg.data)
    except (ValueError, RemoteProtocolError):
        # An answer we cannot read still ends the wait: report it as a failure.
        return CommandResponse(-1, 1, (msg.data,))


def command_message(number: int, args: str = "") -> Message:
    """``C<number>[,args]``; Unsendable if the v2 codec would refuse it."""
    msg = Message("C", str(number) if not args else f"{number},{args}")
    problem = msg.problem()
    if problem is None:
        try:
            msg.data.encode(ENCODING, ERRORS)
        except UnicodeEncodeError:
            problem = "parameters hold text that cannot be encoded"
    if problem is not None:
        raise Unsendable(f"command {number} cannot be sent: {problem}")
    return msg


class CommandService:
    def __init__(self, hub: HubApi, store: Store, timeout: float) -> None:
        self.hub = hub
        self.store = store
        self.timeout = timeout

    async def call(self, vehicleid: str, number: int, args: str = "", *,
                   requester: str, context: str = "") -> Answer:
        """Send ``C<number>[,args]`` for ``requester`` (an id for log lines) and wait for
        the whole answer; raises a CommandFailed. ``context`` prefixes log lines."""
        ctx = context or f"{requester} vehicle={vehicleid}"
        msg = command_message(number, args)
        if number in SERVER_COMMANDS:
            replies = await self.server_command(vehicleid, number, msg.data)
            return Answer(number, tuple(_parse(m) for m in replies))
        send, receive = trio.open_memory_channel[Message](MAX_LINES)
        waiter = CommandWaiter(self.hub.new_id(f"{requester}/c"), send)
        if not self.hub.send_waiter_command(vehicleid, waiter, number, msg):
            log.info("%s: command %d refused, vehicle not connected", ctx, number)
            raise Offline("Vehicle not connected")
        log.info("%s: command %d sent to the car", ctx, number)
        lines: list[CommandResponse] = []
        try:
            with trio.move_on_after(self.timeout):
                async with receive:
                    async for answer in receive:
                        line = _parse(answer)
                        lines.append(line)
                        if line.is_last_line():
                            log.info("%s: command %d answered, result %d", ctx, number,
                                     line.result)
                            return Answer(number, tuple(lines))
            # The channel was closed (car gone) or the time ran out.
            if not self.hub.car_connected(vehicleid):
                log.info("%s: command %d unanswered, the car disconnected", ctx, number)
                raise Offline("Vehicle disconnected before answering")
            log.info("%s: command %d unanswered after %.0f s", ctx, number, self.timeout)
            raise Silent(f"No answer from the vehicle within {self.timeout:g} s")
        finally:
            # From now on an answer for this caller is discarded, as for a departed app.
            waiter.gone = True

    async def from_client(self, peer: Peer, number: int, msg: Message) -> None:
        """A v2 app's or batch client's ``C``: answered here (30-32), or relayed to the
        car with the client waiting for the answer (``c<n>,1,...`` if not connected)."""
        if number in SERVER_COMMANDS:
            try:
                replies = await self.server_command(peer.vehicleid, number, msg.data)
            except StoreError as exc:  # e.g. a full disk: an error answer, not a hang
                log.warning("%s: command %d failed: %s", peer.context(), number, exc)
                replies = [Message("c", f"{number},1,Database unavailable, try again later")]
            for reply in replies:
                self.hub.deliver(peer, reply)
            return
        if not self.hub.send_command(peer, number, msg):
            self.hub.deliver(peer, Message("c", f"{number},1,Vehicle is not connected"))

    async def server_command(self, vehicleid: str, number: int, data: str) -> list[Message]:
        """Commands 30, 31 and 32, answered from the store; k runs from 1 to n.

        A parameter out of range is answered ``c<number>,1,<reason>``.
        """
        args = data.split(",")[1:]
        if number == 30:
            flush_usage(self.hub.vehicle_peers(vehicleid), self.store)
            days = await self.store.usage(vehicleid, USAGE_DAYS)
            if not days:
                return [Message("c", "30,1,No GPRS utilisation data available")]
            return [
                Message("c", f"30,0,{k},{len(days)},{d.day},{d.car_rx},{d.car_tx},"
                             f"{d.app_rx},{d.app_tx}")
                for k, d in enumerate(days, start=1)
            ]
        try:
            if number == 31:
                since = values.parse_since(args[0]) if args else None
            else:
                htype = args[0] if args else ""
                since = values.parse_since(args[1]) if len(args) > 1 else None
        except ValueError as exc:
            return [Message("c", f"{number},1,{_reason(exc)}")]
        if number == 31:
            summary = await self.store.historical_summary(vehicleid, since)
            return [
                Message("c", f"31,0,{k},{len(summary)},{s.htype},{s.distinct_records},"
                             f"{s.total_records},{s.total_size},{_ts_text(s.first)},"
                             f"{_ts_text(s.last)}")
                for k, s in enumerate(summary, start=1)
            ] or [Message("c", "31,1,No historical data available")]
        records = await self.store.historical_records(vehicleid, htype, since) if htype else []
        return [
            Message("c", f"32,0,{k},{len(records)},{r.htype},{_ts_text(r.timestamp)},"
                         f"{r.recordnumber},{r.data}")
            for k, r in enumerate(records, start=1)
        ] or [Message("c", "32,1,No historical data available")]


def _reason(exc: ValueError) -> str:
    """An error text fit for one field of a ``c`` answer (no CR/LF; commas are fine,
    the reason is the last field)."""
    return str(exc).replace("\r", " ").replace("\n", " ")


def _ts_text(ts: float) -> str:
    # Records stored before timestamps were range-checked may lie anywhere, even
    # beyond what a date can show: clamped, they are listed instead of failing the list.
    return utc_text(values.clamp_timestamp(ts))
