"""Bus hub nodes in one trio run over a real NATS, and waiting for what peers receive."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from protocol import Message
from relay.bus.bridge import NatsBridge
from relay.bus.bushub import BusHub, BusSettings
from relay.bus.subjects import Subjects

WAIT = 15.0  # seconds a test waits for something that must happen (never a timing claim)


@attrs.define
class Node:
    hub: BusHub
    bridge: NatsBridge
    scope: trio.CancelScope
    crashed: bool = False

    def crash(self) -> None:
        """Stop at once without a bye, as a process killed with -9."""
        self.crashed = True
        self.scope.cancel()

    def stop(self) -> None:
        self.scope.cancel()


async def _run_node(node_name: str, url: str, prefix: str, settings: BusSettings,
                    epoch: int | None,
                    task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED) -> None:
    bridge = NatsBridge(url, name=node_name)
    hub = BusHub(bridge, node_name, subjects=Subjects(prefix), settings=settings, epoch=epoch)
    bridge.on_message = hub.on_bus_message
    bridge.on_state = hub.on_bus_state
    hub.subscribe_cluster()
    with trio.CancelScope() as scope:
        node = Node(hub, bridge, scope)
        async with trio.open_nursery() as nursery:
            await nursery.start(bridge.run)
            await nursery.start(hub.run)
            task_status.started(node)
            try:
                await trio.sleep_forever()
            finally:
                if not node.crashed:
                    with trio.CancelScope(shield=True):
                        hub.bye()
                        await bridge.flush(1.0)


@asynccontextmanager
async def cluster(url: str, prefix: str, names: list[str],
                  settings: BusSettings | None = None) -> AsyncIterator[dict[str, Node]]:
    """Nodes that all know each other; stopped (with a bye) at the end."""
    settings = settings or BusSettings()
    async with trio.open_nursery() as nursery:
        nodes = {}
        for name in names:
            nodes[name] = await nursery.start(_run_node, name, url, prefix, settings, None)
        await until(lambda: all(set(n.hub.alive_nodes()) == set(names) - {name}
                                for name, n in nodes.items()))
        yield nodes
        nursery.cancel_scope.cancel()


async def start_node(nursery: trio.Nursery, url: str, prefix: str, name: str,
                     settings: BusSettings | None = None, epoch: int | None = None) -> Node:
    node: Node = await nursery.start(_run_node, name, url, prefix,
                                     settings or BusSettings(), epoch)
    return node


async def until(condition: object, what: str = "condition") -> None:
    """Poll a callable until it is true (bounded by WAIT)."""
    assert callable(condition)
    with trio.fail_after(WAIT):
        while not condition():
            await trio.sleep(0.01)


async def expect(receive: trio.MemoryReceiveChannel[Message], text: str) -> list[str]:
    """Read until ``text`` arrives; returns what came before it."""
    seen: list[str] = []
    with trio.fail_after(WAIT):
        while True:
            msg = await receive.receive()
            if msg.text() == text:
                return seen
            seen.append(msg.text())


async def flush_all(*nodes: Node) -> None:
    """Everything the nodes published so far has reached NATS, and a round trip more
    for the receivers to have dispatched it."""
    for node in nodes:
        await node.bridge.flush()
    for node in nodes:
        await node.bridge.flush()
    await trio.sleep(0.05)
