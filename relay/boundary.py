"""The last line of defence of every listener: one connection's failure ends that connection.

Also the plain v2 port's accept loop (``serve_self_closing``), lighter per connection
than trio.serve_listeners.

trio.serve_listeners runs each connection's handler in the listener's nursery, so an
exception that leaves a handler cancels the listener and, through run_relay's nursery,
the whole server. Whatever a peer sends (or a bug it triggers), the handler ends in
``connection_failed``: one warning line naming the listener, the peer and the exception
type, the traceback at DEBUG, and the caller closes only that connection's stream.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from typing import NoReturn

import trio

log = logging.getLogger("relay.boundary")

# accept(2) errors that mean "overloaded, try again soon" (as trio.serve_listeners).
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
ACCEPT_RETRY_AFTER = 0.1


def connection_failed(listener: str, address: str, exc: Exception) -> None:
    """Log an unexpected exception that ended one connection (the caller closes it).

    One line at WARNING: a peer that can trigger it at will must not fill the log with
    tracebacks (the log filters also rate-limit it); the traceback goes to DEBUG.
    """
    log.warning("%s addr=%s: connection closed after an internal error (%s)",
                listener, address, type(exc).__name__)
    log.debug("%s addr=%s: traceback of the internal error", listener, address, exc_info=exc)


async def close_stream(stream: trio.abc.Stream) -> None:
    """Close ``stream`` at the end of its connection's handler, shielded, unless its
    socket is closed already.

    The connection's own code closes its stream when it ends; the handler closes it
    again in case it ended early. That second close of a closed socket did nothing
    but cost a cancel scope and a trip through the scheduler, per connection.
    """
    sock = getattr(stream, "socket", None)
    if sock is not None and sock.fileno() == -1:
        return
    with trio.CancelScope(shield=True):
        await trio.aclose_forcefully(stream)


async def serve_self_closing(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    listeners: list[trio.SocketListener],
    name: str,
) -> NoReturn:
    """trio.serve_listeners for a ``handler`` that always closes its stream itself.

    trio runs each handler inside a wrapper task that closes the stream afterwards,
    and names each task with a fresh string: ~300 bytes per connection, for as long
    as it lives, which tens of thousands of idle cars do. Here the handler is the
    task (named ``name``, one shared string); it must close the stream in a
    ``finally`` of its own.
    """
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(_accept_forever, listener, handler, name, nursery)
    raise AssertionError("accept loops end only by raising")  # pragma: no cover


async def _accept_forever(
    listener: trio.SocketListener,
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    name: str,
    nursery: trio.Nursery,
) -> None:
    async with listener:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:
                if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                    raise
                log.error("accept returned %s (%s); retrying in %s s",
                          errno.errorcode[exc.errno], os.strerror(exc.errno),
                          ACCEPT_RETRY_AFTER)
                await trio.sleep(ACCEPT_RETRY_AFTER)
            else:
                nursery.start_soon(handler, stream, name=name)


__all__ = ["close_stream", "connection_failed", "serve_self_closing"]
