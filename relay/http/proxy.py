"""The client's address when the REST API runs behind a reverse proxy.

Rate limits and cookie-less sessions are per client address. Behind nginx or a
load balancer every request comes from the proxy, so the proxy's
``X-Forwarded-For`` names the client; but anyone can send that header, so it is
believed only from the addresses the operator lists as trusted proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping


def client_address(
    peer_host: str, headers: Mapping[bytes, bytes], trusted: Collection[str]
) -> str:
    """The first address, from the right of ``X-Forwarded-For``, that is not a
    trusted proxy; ``peer_host`` itself unless it is one."""
    if peer_host not in trusted:
        return peer_host
    forwarded = headers.get(b"x-forwarded-for")
    if not forwarded:
        return peer_host
    host = peer_host
    for entry in reversed(forwarded.decode("latin-1").split(",")):
        candidate = entry.strip()
        try:
            ipaddress.ip_address(candidate)
        except ValueError:
            return host  # garbage from further left cannot be trusted either
        host = candidate
        if host not in trusted:
            return host
    return host


def parse_trusted(setting: str) -> frozenset[str]:
    return frozenset(part.strip() for part in setting.split(",") if part.strip())
