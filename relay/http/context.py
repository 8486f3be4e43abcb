"""What a REST handler may use of the API object (``relay.http.api.HttpApi``).

A typing Protocol, so that ``relay.http.call`` (imported by every handler) need not
import the API module, which imports the handlers through the route table.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

from relay.config import Config
from relay.http.authenticator import Authenticator
from relay.http.messages import Response
from relay.http.sessions import SessionTable
from relay.services import Services


class ApiState(Protocol):
    @property
    def services(self) -> Services: ...

    @property
    def config(self) -> Config: ...

    @property
    def sessions(self) -> SessionTable: ...

    @property
    def auth(self) -> Authenticator: ...

    @property  # who may read GET /metrics (relay.http.metricsview)
    def metrics_allow(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]: ...

    def openapi_response(self) -> Response: ...
