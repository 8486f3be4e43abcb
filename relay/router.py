"""What happens to each message: PROTOCOL.md section 4, row by row.

The router decides; the hub delivers and the store persists. Listeners hand
every decoded message to ``from_car`` or ``from_client`` and nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import trio

from protocol import CommandResponse, HistoricalRecord, Message, values
from protocol.messages import command_number
from relay.commands import CommandService
from relay.config import Config
from relay.hubapi import HubApi, Peer
from relay.push import PushDispatcher
from relay.store import PushSubscription, Store, StoredMessage, StoreError

log = logging.getLogger("relay.router")

T0 = Message("T", "0")
PING_ACK = Message("a")


# Told of every stored car message (vehicle id, code, data); must never block.
CarMessageSink = Callable[[str, str, str], None]


class Router:
    def __init__(
        self, hub: HubApi, store: Store, config: Config, commands: CommandService, *,
        push: PushDispatcher | None = None, on_car_message: CarMessageSink | None = None,
    ) -> None:
        self.hub = hub
        self.store = store
        self.config = config
        self.commands = commands
        # None: P is only relayed, subscriptions are stored unchecked.
        self.push = push
        # API v4's engine (relay.v4.engine) in a running server; None: stored only.
        self.on_car_message = on_car_message

    # --- login replay ------------------------------------------------------------------

    async def client_login(self, peer: Peer) -> None:
        """Register an app/batch client: ``Z``, the stored messages, then ``T``."""
        latest = await self.store.latest(peer.vehicleid)
        vehicle = await self.store.get_vehicle(peer.vehicleid)
        ptoken = vehicle.ptoken if vehicle is not None else ""
        # No await from here on: the replay must reach the client before any live relay.
        self.hub.register(peer)
        for stored in sorted(latest.values(), key=_replay_order):
            if stored.paranoid:
                if stored.ptoken != ptoken:
                    continue
                self.hub.deliver(peer, Message("E", "M" + stored.code + stored.data))
            else:
                self.hub.deliver(peer, Message(stored.code, stored.data))
        # Sent even for a vehicle that never reported (as the public server does).
        age = values.update_age(time.time(), self.store.last_update(peer.vehicleid))
        self.hub.deliver(peer, Message("T", str(age)))

    # --- car -> server ------------------------------------------------------------------

    async def from_car(
        self, peer: Peer, msg: Message, nursery: trio.Nursery
    ) -> None:
        code = msg.code
        if code == "A":
            self.hub.deliver(peer, PING_ACK)
        elif code == "a":
            pass
        elif code == "c":
            try:
                CommandResponse.parse(msg.data)
            except ValueError as exc:
                log.info("%s: malformed command answer ignored: %s", peer.context(), exc)
                return
            self.hub.command_response(peer.vehicleid, msg)
        elif code == "C":
            log.info("%s: car sent a command (C%s), ignored", peer.context(), msg.data[:20])
        elif code == "P":
            self.hub.to_clients(peer.vehicleid, msg)
            if self.push is not None:
                self.push.notify(peer.vehicleid, msg.data)
        elif code == "E":
            await self._car_paranoid(peer, msg)
        elif code == "H":
            await self._historical(peer, msg)
        elif code == "h":
            # The ack waits for the commit in its own task so the car's reads go on;
            # the semaphore bounds how many a car can have in flight.
            if peer.pending_acks is None:
                peer.pending_acks = trio.Semaphore(self.config.max_pending_acks)
            await peer.pending_acks.acquire()
            nursery.start_soon(self._historical_ack, peer, msg, peer.pending_acks)
        elif code == "g":
            group, _, data = msg.data.partition(",")
            if group:
                self.hub.group_update(peer, group, data)
        else:
            await self.store.put_latest(peer.vehicleid, code, msg.data)
            if self.on_car_message is not None:
                self.on_car_message(peer.vehicleid, code, msg.data)
            if code == "F":
                version = Message("f", self.config.server_version)
                self.hub.to_clients(peer.vehicleid, msg, version, T0)
            else:
                self.hub.to_clients(peer.vehicleid, msg, T0)

    async def _car_paranoid(self, peer: Peer, msg: Message) -> None:
        kind, body = msg.data[:1], msg.data[1:]
        if kind == "T":
            if await self.store.set_paranoid_token(peer.vehicleid, body):
                log.info("%s: paranoid token changed", peer.context())
            self.hub.to_clients(peer.vehicleid, msg)
        elif kind == "M" and body:
            vehicle = await self.store.get_vehicle(peer.vehicleid)
            ptoken = vehicle.ptoken if vehicle is not None else ""
            await self.store.put_latest(
                peer.vehicleid, body[0], body[1:], paranoid=True, ptoken=ptoken
            )
            self.hub.to_clients(peer.vehicleid, msg, T0)
        else:
            log.info("%s: malformed paranoid message ignored", peer.context())

    async def _historical(self, peer: Peer, msg: Message) -> None:
        try:
            record = HistoricalRecord.from_message(msg, int(time.time()))
        except ValueError as exc:
            log.info("%s: H record ignored: %s", peer.context(), exc)
            return
        await self.store.add_historical(
            peer.vehicleid, record.htype, record.recordnumber, record.data,
            timestamp=record.timestamp, expires=record.expires,
        )

    async def _historical_ack(self, peer: Peer, msg: Message, acks: trio.Semaphore) -> None:
        try:
            try:
                record = HistoricalRecord.from_message(msg, int(time.time()))
            except ValueError as exc:
                # Not acked: a car with a broken clock keeps the record, nothing is stored.
                log.info("%s: h record %s ignored, not acked: %s",
                         peer.context(), msg.data.split(",", 1)[0][:16], exc)
                return
            ackcode = record.ackcode or ""
            try:
                await self.store.add_historical(
                    peer.vehicleid, record.htype, record.recordnumber, record.data,
                    timestamp=record.timestamp, expires=record.expires, durable=True,
                )
            except StoreError as exc:
                # Not stored, so not acked: the car keeps the record and resends it.
                log.warning("%s: h record %s not stored: %s", peer.context(), ackcode, exc)
                return
            except Exception:
                # This task runs in the server-wide nursery: a bug here must cost one
                # ack (the car resends), never the server.
                log.exception("%s: h record %s failed", peer.context(), ackcode)
                return
            # Only now is the record committed: a crash after this point loses nothing.
            self.hub.deliver(peer, Message("h", ackcode))
        finally:
            acks.release()

    # --- app / batch -> server -------------------------------------------------------------

    async def from_client(self, peer: Peer, msg: Message) -> None:
        code = msg.code
        if code == "A":
            self.hub.deliver(peer, PING_ACK)
        elif code == "a":
            pass
        elif code == "C":
            await self._client_command(peer, msg)
        elif code == "E":
            self.hub.to_car(peer.vehicleid, msg, sender=peer)
        elif code == "p":
            await self._push_subscription(peer, msg)
        elif code == "P":
            self._client_push(peer, msg)
        elif code == "G":
            if msg.data:
                self.hub.group_subscribe(peer, msg.data.split(",", 1)[0])
        else:
            log.debug("%s: client message %r ignored", peer.context(), code)

    def _client_push(self, peer: Peer, msg: Message) -> None:
        """An app's or batch client's ``P`` (the notify script): to the vehicle's other
        apps and batch clients (on every node of a cluster) and to its push
        subscriptions (from this node only: once), as a car's ``P``."""
        self.hub.to_other_clients(peer, msg)
        if self.push is not None:
            self.push.notify(peer.vehicleid, msg.data)
        log.info("%s: push notification relayed", peer.context())

    async def _client_command(self, peer: Peer, msg: Message) -> None:
        number = command_number(msg.data)
        if number is None:
            log.info("%s: command without a number ignored", peer.context())
            return
        await self.commands.from_client(peer, number, msg)

    async def _push_subscription(self, peer: Peer, msg: Message) -> None:
        parts = msg.data.split(",", 5)
        if len(parts) < 6:
            log.info("%s: malformed push subscription ignored", peer.context())
            return
        appid, pushtype, pushkeytype, vehicleid, netpass, pushkeyvalue = parts
        target = peer.vehicleid if pushkeytype == "simple" else vehicleid.upper()
        vehicle = await self.store.get_vehicle(target)
        if vehicle is None or vehicle.carpass != netpass:
            log.info("%s: push subscription for %s refused (bad netpass)", peer.context(), target)
            return
        if self.push is not None:
            refused = await self.push.check_subscription(pushtype, pushkeyvalue)
            if refused is not None:
                log.info("%s: push subscription %s (%s) refused: %s",
                         peer.context(), appid, pushtype, refused)
                return
        await self.store.add_push_subscription(
            PushSubscription(target, appid, vehicle.owner, pushtype, pushkeytype, pushkeyvalue)
        )
        log.info("%s: push subscription %s stored (%s)", peer.context(), appid, pushtype)


def _replay_order(stored: StoredMessage) -> tuple[int, str]:
    """``F`` first, then ``S``, then the rest by code (the public server's order)."""
    return ({"F": 0, "S": 1}.get(stored.code, 2), stored.code)
