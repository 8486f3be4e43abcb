"""The last line of defence of every listener: one connection's failure ends that connection.

trio.serve_listeners runs each connection's handler in the listener's nursery, so an
exception that leaves a handler cancels the listener and, through run_relay's nursery,
the whole server. Whatever a peer sends (or a bug it triggers), the handler ends in
``connection_failed``: one warning line naming the listener, the peer and the exception
type, the traceback at DEBUG, and the caller closes only that connection's stream.
"""

from __future__ import annotations

import logging

log = logging.getLogger("relay.boundary")


def connection_failed(listener: str, address: str, exc: Exception) -> None:
    """Log an unexpected exception that ended one connection (the caller closes it).

    One line at WARNING: a peer that can trigger it at will must not fill the log with
    tracebacks (the log filters also rate-limit it); the traceback goes to DEBUG.
    """
    log.warning("%s addr=%s: connection closed after an internal error (%s)",
                listener, address, type(exc).__name__)
    log.debug("%s addr=%s: traceback of the internal error", listener, address, exc_info=exc)


__all__ = ["connection_failed"]
