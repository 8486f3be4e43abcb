"""The HTTP client every outbound request goes through (push services, webhooks, callbacks).

One set of rules for all of them: no proxy or certificate settings taken from the
environment (``trust_env=False``), redirects never followed (a redirect would take a
checked URL somewhere unchecked), a bounded connection pool. httpx logs each
request's URL; ``relay.logsafe`` turns those into ``scheme://host/#hash``.
"""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx

from relay import __version__

# Sent with every outbound request (receivers and services see who calls).
USER_AGENT = f"ovms-relay/{__version__}"


@functools.cache
def _tls_context(http2_only: bool) -> ssl.SSLContext:
    """httpx's own default (certifi's authorities, the environment ignored), made once
    per process: loading the bundle costs ~50 ms and a relay opens three clients
    (every test's relay did too). Shared by connections as an SSLContext is meant to be;
    one per ALPN setting, which the connection pool sets on it."""
    return ssl.create_default_context(cafile=certifi.where())


def open_client(*, timeout: float, max_connections: int, http2_only: bool = False,
                transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """A client to use as ``async with``; ``transport`` is for tests."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        http1=not http2_only,
        http2=http2_only,
        limits=httpx.Limits(max_connections=max(1, max_connections)),
        verify=_tls_context(http2_only),
        transport=transport,
    )
