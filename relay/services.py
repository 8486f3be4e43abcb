"""The parts of a running relay that every listener and connection shares."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from relay.commands import CommandService
from relay.config import Config
from relay.connlog import ConnectionLog
from relay.hubapi import HubApi
from relay.loginguard import GuardLimits, LoginGuard
from relay.metrics import Metrics
from relay.router import Router
from relay.store import Store

if TYPE_CHECKING:
    from relay.push import PushDispatcher


class Services:
    """What a connection needs from the rest of the server."""

    def __init__(
        self,
        config: Config,
        hub: HubApi,
        store: Store,
        router: Router,
        nursery: trio.Nursery | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        # GET /metrics: this relay's own registry (tests run many relays in one process).
        self.metrics = metrics if metrics is not None else Metrics(process=False)
        self.hub = hub
        self.store = store
        self.router = router
        # Sending commands to cars and awaiting their answers (REST, v4, v2 apps).
        self.commands: CommandService = router.commands
        # Push delivery (None: not running); the router hands it P messages.
        self.push: PushDispatcher | None = router.push
        # Failed-login limits, one for every listener: v2 and REST count together.
        self.login_guard = LoginGuard(
            GuardLimits.from_config(config),
            exempt=config.api_rate_exempt.split(","),
        )
        # The REST API's state (sessions, rate limits), shared by the HTTP and HTTPS
        # listeners; created by relay.http.api.api_for.
        # (Typed loosely: relay.http imports this module.)
        self.http_api: object | None = None
        # Recent v2 logins per vehicle, for the web console's operator pages.
        self.connlog = ConnectionLog()
        # The server-wide nursery that owns connections' short-lived helper tasks
        # (on-demand writers, h acks): "server-owned connection tasks". One per server
        # rather than one per connection: a nursery costs ~1.8 KB, and a relay holds
        # ~19,000 mostly idle cars. Each such task is bound to its connection anyway:
        # a writer runs in a cancel scope its Outbox.close() cancels; an h ack ends
        # with its store write (bounded by store_timeout) and finds the peer closed.
        self._nursery = nursery

    @property
    def nursery(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("Services.nursery used before the server started")
        return self._nursery

    @nursery.setter
    def nursery(self, value: trio.Nursery) -> None:
        self._nursery = value
