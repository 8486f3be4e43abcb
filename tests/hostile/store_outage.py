"""What must keep answering while the database's writes are stuck or failing."""

from __future__ import annotations

import httpx

from tests.conftest import OWNER, PASSWORD, RelayUnderTest


async def logins_and_reads(relay: RelayUnderTest) -> tuple[httpx.Response, httpx.Response]:
    """New app logins for DEMO and TESTCAR (one with nothing cached) get their ``Z``, and
    the REST vehicle list and status answer 200; returns the vehicle list and the answer
    to a historical read, which follows the stuck writes (200, or 503 at the deadline)."""
    for vehicleid in ("DEMO", "TESTCAR"):
        app = await relay.app(vehicleid)
        assert [m.code for m in await app.drain()][:1] == ["Z"]
        await app.aclose()
    url = f"http://127.0.0.1:{relay.handle.http_port}"
    creds = {"username": OWNER, "password": PASSWORD}
    async with httpx.AsyncClient(base_url=url, timeout=10.0) as api:
        vehicles = await api.get("/api/vehicles", params=creds)
        assert vehicles.status_code == 200, vehicles.text
        status = await api.get("/api/status/DEMO", params=creds)
        assert status.status_code == 200, status.text
        historical = await api.get("/api/historical/DEMO", params=creds)
    return vehicles, historical
