"""Every HTTP route of the server in one table: the REST API's and API v4's.

Assembled here, by the server, so neither API knows of the other: ``relay.http``
serves whatever routes it is given and any ``relay.webapi.JsonApi`` beside them,
``relay.v4`` describes itself as one against its engine.
"""

from __future__ import annotations

from relay.http.api import OPENAPI_ROUTE
from relay.http.jsonapi import json_api_routes
from relay.http.routes import ROUTES, Route
from relay.v4.engine import V4Engine
from relay.v4.routes import v4_api


def all_routes(v4: V4Engine | None) -> tuple[Route, ...]:
    """The REST API's routes, then API v4's (docs/api-v4.md), then the OpenAPI document."""
    return (*ROUTES, *json_api_routes(v4_api(v4)), OPENAPI_ROUTE)
