"""The web console: owners and operators in a browser, served by the relay at ``/ui/``.

See docs/console.md. ``mount`` hangs it on the REST API's listeners.
"""

from __future__ import annotations

from relay.console import monitors, operators, pages
from relay.console.web import PREFIX, Console, UiRoute, route
from relay.http.api import HttpApi
from relay.v4.engine import V4Engine

ROUTES: list[UiRoute] = [
    route("GET", "/", pages.login_form, login=False),
    route("POST", "/", pages.login, login=False),
    route("POST", "/login", pages.login, login=False),
    route("POST", "/logout", pages.logout),
    route("GET", "/vehicles", pages.vehicles),
    route("GET", "/vehicles/{vehicleid}", pages.vehicle),
    route("POST", "/vehicles/{vehicleid}/control", pages.control),
    route("POST", "/vehicles/{vehicleid}/name", pages.rename),
    route("GET", "/vehicles/{vehicleid}/series", pages.series),
    route("GET", "/vehicles/{vehicleid}/monitors", monitors.list_monitors),
    route("POST", "/vehicles/{vehicleid}/monitors", monitors.create),
    route("POST", "/vehicles/{vehicleid}/monitors/delete", monitors.delete),
    route("GET", "/events", pages.events),
    route("GET", "/tokens", pages.tokens),
    route("POST", "/tokens", pages.token_create),
    route("POST", "/tokens/delete", pages.token_delete),
    route("GET", "/push", pages.push),
    route("POST", "/push/deactivate", pages.push_deactivate),
    route("GET", "/admin", operators.admin, admin=True),
    route("POST", "/admin/owners", operators.owner_create, admin=True),
    route("POST", "/admin/owners/password", operators.owner_password, admin=True),
    route("POST", "/admin/owners/delete", operators.owner_delete, admin=True),
    route("POST", "/admin/owners/rename", operators.owner_rename, admin=True),
    route("POST", "/admin/vehicles", operators.vehicle_create, admin=True),
    route("POST", "/admin/vehicles/delete", operators.vehicle_delete, admin=True),
    route("POST", "/admin/vehicles/carpass", operators.vehicle_carpass, admin=True),
    route("POST", "/admin/vehicles/name", operators.vehicle_name, admin=True),
    route("GET", "/admin/vehicles/{vehicleid}", operators.vehicle_log, admin=True),
]


def mount(api: HttpApi, engine: V4Engine | None = None) -> Console:
    """Serve the console under /ui on every listener of ``api``; ``engine`` (API v4)
    gives the message rate on the operators' status page."""
    console = Console(api, ROUTES, engine)
    api.mounts[PREFIX] = console.handle
    return console


__all__ = ["ROUTES", "Console", "mount"]
