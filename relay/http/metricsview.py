"""``GET /metrics``: the relay's Prometheus metrics (relay.metrics), for allowed addresses only.

No login (scrapers rarely have one); instead the caller's address must be in
``metrics_allow``: the figures tell how busy the server is and who uses which features.
"""

from __future__ import annotations

import ipaddress

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay.config import ConfigError
from relay.http.call import Call
from relay.http.messages import Response, text_response

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(setting: str) -> tuple[Network, ...]:
    """``metrics_allow``: comma-separated addresses or networks (CIDR); a bad one fails
    the start (ConfigError) rather than every scrape."""
    try:
        return tuple(ipaddress.ip_network(part.strip(), strict=False)
                     for part in setting.split(",") if part.strip())
    except ValueError as exc:
        raise ConfigError(f"setting 'metrics_allow': {exc}") from None


def allowed(host: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


async def metrics(call: Call) -> Response:
    if not allowed(call.request.client_host, call.api.metrics_allow):
        return text_response(403, "Forbidden: this address may not read the metrics")
    body = generate_latest(call.api.services.metrics.registry)
    return Response(200, body, CONTENT_TYPE_LATEST.encode("ascii"))
