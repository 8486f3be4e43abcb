"""Cluster mode's message bus: relay processes share car/app traffic and peer counts
over NATS (``serve --bus nats://...``). See docs/cluster-bus.md.

``open_hub`` is what the server calls: the in-process ``Hub`` without a bus, else a
``BusHub`` with its NATS bridge and tasks running until the block ends, and the
store told what it shares with other nodes (latest messages, claimed work rows).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from relay.config import Config
from relay.hub import GroupLimits, Hub

if TYPE_CHECKING:
    from relay.store import Store

log = logging.getLogger("relay.bus")


def default_node_id() -> str:
    """Host name and process id: unique on a machine, readable in log lines."""
    return f"{socket.gethostname()}-{os.getpid()}"


@asynccontextmanager
async def open_hub(config: Config, store: Store | None = None) -> AsyncIterator[Hub]:
    limits = GroupLimits.from_config(config)
    if not config.bus:
        yield Hub(limits)
        return
    from relay.bus.bridge import NatsBridge
    from relay.bus.bushub import CAR_ARRIVED, CAR_LEFT, BusHub, BusSettings
    from relay.bus.subjects import Subjects

    node = config.node_id or default_node_id()
    bridge = NatsBridge(config.bus, name=node)
    hub = BusHub(bridge, node, subjects=Subjects(config.bus_prefix), group_limits=limits,
                 settings=BusSettings(config.bus_heartbeat, config.bus_timeout,
                                      config.bus_republish, config.bus_login_wait))
    bridge.on_message = hub.on_bus_message
    bridge.on_state = hub.on_bus_state
    hub.subscribe_cluster()
    if store is not None:
        # Only the node holding a car knows its latest messages as they are.
        store.share_latest()
        hub.on_notice(CAR_ARRIVED, store.car_arrived)
        hub.on_notice(CAR_LEFT, store.car_left)
        store.claims.node = node  # whose pending retries are whose
    async with trio.open_nursery() as nursery:
        # The bridge outlives a cancellation of the server until the bye is out: cancelled
        # with everything else, it stopped its NATS thread first, so the bye was never
        # sent and the flush waited out its timeout.
        bridge_scope: trio.CancelScope = await nursery.start(_shielded, bridge.run)
        try:
            await nursery.start(hub.run)
            yield hub
        finally:
            with trio.CancelScope(shield=True):
                hub.bye()
                await bridge.flush(1.0)
            bridge_scope.cancel()
            nursery.cancel_scope.cancel()


async def _shielded(run: Callable[..., Awaitable[None]], *,
                    task_status: trio.TaskStatus[trio.CancelScope]) -> None:
    """``run`` (nursery start protocol) cancelled only through the scope handed back."""
    with trio.CancelScope(shield=True) as scope:
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            task_status.started(scope)
