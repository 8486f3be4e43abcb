"""Assembling the server: store, hub, router, liveness sweeper and listeners in one nursery."""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import attrs
import trio

from protocol import ClientType
from relay import accounts, console
from relay.boundary import serve_self_closing
from relay.bus import open_hub
from relay.clock import SYSTEM_CLOCK, Clock
from relay.commands import CommandService
from relay.config import Config
from relay.endpoints import all_routes
from relay.http import HttpApi, serve_http
from relay.hub import Hub
from relay.hubapi import HubApi, Liveness
from relay.listen import open_tcp_listeners
from relay.metrics import Metrics
from relay.mqtt import service as mqtt_service
from relay.push import PushDispatcher
from relay.router import Router
from relay.services import Services
from relay.store import Store, open_store
from relay.tls import context_from_config, serve_v2_tls
from relay.usage import flush_usage
from relay.v4.engine import V4Engine
from relay.websocket import serve_v2_connection

if TYPE_CHECKING:
    from relay.mqtt.gateway import V3Gateway

log = logging.getLogger("relay")


@attrs.frozen
class RelayHandle:
    """What ``nursery.start(run_relay, config)`` hands back: the bound ports and the parts."""

    v2_port: int
    hub: Hub
    store: Store
    services: Services
    v4: V4Engine
    # Further listeners, None when not configured / not yet running.
    http_port: int | None = None
    v2_tls_port: int | None = None
    https_port: int | None = None
    # The TLS listeners' context (None without TLS): a reload loads a renewed certificate.
    ssl_context: ssl.SSLContext | None = None
    mqtt: V3Gateway | None = None  # OVMS v3 modules (--mqtt)


def bound_port(listeners: Sequence[trio.SocketListener]) -> int:
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def serve_v2(
    services: Services,
    host: str,
    port: int,
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The plain-TCP v2 listener (nursery start protocol: started with the listeners).

    Each connection is the v2 line protocol or a WebSocket upgrade on /apiv2, told
    apart by its first bytes. A partial rather than a wrapper coroutine: every idle
    connection would keep the wrapper's frame alive.
    """
    listeners = await open_tcp_listeners(port, host=host, reuse_port=services.config.reuse_port)
    task_status.started(listeners)
    handler = functools.partial(serve_v2_connection, services=services, tls=False)
    await serve_self_closing(handler, listeners, "v2 connection")


async def start_listener(
    nursery: trio.Nursery, label: str, serve: Callable[..., Awaitable[None]],
    services: Services, host: str, port: int,
) -> list[trio.SocketListener]:
    """Start one listener; a port that cannot be bound fails naming the port and its use."""
    try:
        listeners: list[trio.SocketListener] = await nursery.start(serve, services, host, port)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot listen for {label} on {host}:{port}: "
                                 f"{exc.strerror or exc}") from None
    return listeners


async def sweep_forever(
    hub: HubApi, store: Store, config: Config, clock: Clock = SYSTEM_CLOCK
) -> None:
    """Every ``sweep_interval``: close silent connections, ping quiet cars, hand over usage.

    All of it on trio's clock, so tests run it on a MockClock.
    """
    timeouts = {
        ClientType.CAR: config.car_timeout,
        ClientType.APP: config.app_timeout,
        ClientType.BATCH: config.batch_timeout,
        ClientType.SERVER: config.car_timeout,
    }
    liveness = Liveness(timeouts, config.car_ping_after, config.car_ping_every)
    while True:
        await trio.sleep(config.sweep_interval)
        hub.sweep(clock.now(), liveness)
        flush_usage(hub.peers(), store)


async def run_relay(
    config: Config, *, clock: Clock = SYSTEM_CLOCK,
    task_status: trio.TaskStatus[RelayHandle] = trio.TASK_STATUS_IGNORED,
) -> None:
    # Before anything starts: a bad certificate or key fails with one line, not mid-startup.
    ssl_context = context_from_config(config)
    mqtt_service.check(config)
    async with open_store(
        config.db, purge_interval=config.purge_interval, read_timeout=config.store_timeout,
        max_stored_codes=config.max_stored_codes, max_stored_bytes=config.max_stored_bytes,
        hash_concurrency=config.password_hash_concurrency,
    ) as store, open_hub(config, store) as hub:
        metrics = Metrics()
        metrics.watch(lambda: (peer.client_type for peer in hub.peers()),
                      lambda: store.queue_depth)
        store.stats.on_batch = metrics.store_batch_done
        commands = CommandService(hub, store, config.command_timeout)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sweep_forever, hub, store, config, clock)
            # Before the listeners: the router hands it P messages and subscriptions.
            dispatcher = PushDispatcher(config, store)
            dispatcher.on_outcome = metrics.push_outcome
            push: PushDispatcher = await nursery.start(dispatcher.run)
            # API v4: trips, telemetry, monitors and their callbacks, remote actions.
            v4: V4Engine = await nursery.start(
                V4Engine(config, store, commands, push.policy, clock=clock).run)
            v4.join(hub)
            router = Router(hub, store, config, commands, push=push,
                            on_car_message=v4.car_message)
            services = Services(config, hub, store, router, nursery, metrics)
            # OVMS v3 modules through the broker (None without --mqtt).
            mqtt = await mqtt_service.start(config, router, nursery, v4.wanted)
            services.http_api = HttpApi(services, all_routes(v4))
            accounts.listen(services)  # other nodes' account changes (a cluster)
            listeners = await start_listener(
                nursery, "the v2 protocol", serve_v2, services, config.host, config.v2_port)
            ports: dict[str, int] = {"v2_port": bound_port(listeners)}
            log.info("v2 protocol listening on %s:%d", config.host, ports["v2_port"])
            if ssl_context is not None:
                tls = functools.partial(serve_v2_tls, ssl_context=ssl_context)
                tls_listeners = await start_listener(
                    nursery, "v2 over TLS", tls, services, config.host, config.v2_tls_port)
                ports["v2_tls_port"] = bound_port(tls_listeners)
                log.info("v2 protocol over TLS listening on %s:%d",
                         config.host, ports["v2_tls_port"])
            console.mount(services.http_api, v4)
            http_host = config.http_host or config.host
            http_listeners = await start_listener(
                nursery, "the REST API", serve_http, services, http_host, config.http_port)
            ports["http_port"] = bound_port(http_listeners)
            log.info("REST API listening on %s:%d", http_host, ports["http_port"])
            if ssl_context is not None:
                https = functools.partial(serve_http, ssl_context=ssl_context)
                https_listeners = await start_listener(
                    nursery, "the REST API over TLS", https, services, http_host,
                    config.https_port)
                ports["https_port"] = bound_port(https_listeners)
                log.info("REST API over TLS listening on %s:%d", http_host, ports["https_port"])
            # Each further listener is started here and adds its bound port to ``ports``.
            handle = RelayHandle(hub=hub, store=store, services=services, v4=v4,
                                 ssl_context=ssl_context, mqtt=mqtt, **ports)
            task_status.started(handle)
