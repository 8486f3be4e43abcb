"""The store's face for push notifications: subscriptions, and the pending deliveries
(group-committed like everything else, so the relay never waits on them; FIFO order
makes a later delete follow its insert; ``relay.store.claims`` decides which node
retries which).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial

from relay.store import push
from relay.store.records import PendingPush, PushSubscription
from relay.store.storebase import StoreBase
from relay.store.writequeue import Write


class PushStore(StoreBase):
    """Push subscriptions and pending deliveries."""

    async def add_push_subscription(self, sub: PushSubscription) -> None:
        await self._submit(Write("push_subscriptions", push.UPSERT_PUSH,
                                 push.subscription_params(sub, time.time())))

    async def push_subscriptions(self, vehicleid: str) -> list[PushSubscription]:
        result: list[PushSubscription] = await self._read(
            partial(push.read_push, vehicleid=vehicleid))
        return result

    async def deactivate_push_subscription(
        self, vehicleid: str, appid: str, pushkeyvalue: str
    ) -> None:
        """The push service called this token dead: stop delivering to it (until re-subscribed)."""
        await self._submit(Write("push_subscriptions", push.DEACTIVATE_PUSH,
                                 (vehicleid, appid, pushkeyvalue)))

    # Pending push deliveries: group-committed like everything else (no waiting), so
    # the relay never waits on them; FIFO order makes a later delete follow its insert.

    async def add_push_pending(self, item: PendingPush) -> None:
        await self._submit(Write("push_pending", push.INSERT_PENDING,
                                 push.pending_params(item, self.claims.stamp())))

    async def hold_push_pending(self, item: PendingPush) -> bool:
        """Before a retry: does this node still hold the item's row (``Claims.hold``)?"""
        return await self.claims.hold("push_pending", push.PENDING_KEY, push.pending_key(item))

    async def retry_push_pending(self, item: PendingPush) -> None:
        """Store the item's new ``attempts`` and ``next_try``."""
        await self._submit(Write("push_pending", push.RETRY_PENDING,
                                 (item.attempts, item.next_try, item.nid, item.vehicleid,
                                  item.appid)))

    async def delete_push_pending(self, item: PendingPush) -> None:
        await self._submit(Write("push_pending", push.DELETE_PENDING,
                                 (item.nid, item.vehicleid, item.appid)))

    async def take_push_pending(
        self, taken: Callable[[list[PendingPush]], Awaitable[None]]
    ) -> tuple[list[PendingPush], int]:
        """At start: this node's unexpired pending deliveries (``Claims.claim``) and how
        many expired ones were deleted; ``taken`` is told of those taken over later."""
        async def later(result: tuple[list[PendingPush], int]) -> None:
            if result[0]:
                await taken(result[0])

        result: tuple[list[PendingPush], int] = await self.claims.claim(
            "push_pending", push.take_pending, later)
        return result


__all__ = ["PushStore"]
