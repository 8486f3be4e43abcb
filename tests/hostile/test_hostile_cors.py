"""Issue 9 defect 13: CORS preflights always get an answer."""

from __future__ import annotations

import logging

import httpx
import pytest

from relay.http import api as http_api
from tests.conftest import RelayUnderTest
from tests.http_helpers import api

__all__ = ["api"]  # fixtures, imported for use here

PREFLIGHT = {"Origin": "https://example.org", "Access-Control-Request-Method": "PUT"}


async def preflight(client: httpx.AsyncClient, asked: str) -> httpx.Response:
    return await client.options("/api/lock/DEMO", headers={
        **PREFLIGHT, "Access-Control-Request-Headers": asked})


async def test_list_cut_at_200_bytes_on_whitespace_is_answered(
    api: httpx.AsyncClient
) -> None:
    """Issue 9 defect 13: 20 names of 8 bytes: byte 200 of the list is the space after a
    comma. The cut value ended in whitespace, h11 refused to send it and the connection
    closed unanswered. Now whole names up to 200 bytes are allowed."""
    names = [f"x-hdr-{i:02d}" for i in range(30)]
    asked = ", ".join(names)
    assert asked[:200].endswith(", ")
    response = await preflight(api, asked)
    assert response.status_code == 204
    allowed = response.headers["access-control-allow-headers"]
    assert allowed == ", ".join(names[:20])
    assert len(allowed) <= 200


@pytest.mark.parametrize(("asked", "allowed"), [
    ("content-type", "content-type"),
    ("Content-Type,  X-Requested-With ,authorization", "Content-Type, X-Requested-With, "
                                                       "authorization"),
    ("x-ok, bad name, x-also-ok, (comment), , ,", "x-ok, x-also-ok"),
    ("x-\u00e9t\u00e9, x-ok", "x-ok"),
    (", ,", ""),
    ("a" * 201, ""),
])
async def test_only_well_formed_names_are_echoed(
    api: httpx.AsyncClient, asked: str, allowed: str
) -> None:
    """Issue 9 defect 13: the echo is a valid header value whatever was asked."""
    response = await api.options("/api/vehicles", headers={
        **PREFLIGHT, "Access-Control-Request-Headers": asked.encode("utf-8")})
    assert response.status_code == 204
    assert response.headers["access-control-allow-headers"] == allowed


async def test_unsendable_header_becomes_500_not_silence(
    relay: RelayUnderTest, api: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 13: whatever a handler puts in a header, the client gets an answer."""
    monkeypatch.setattr(http_api, "allowed_headers", lambda _asked: b"x-a, ")
    with caplog.at_level(logging.WARNING, logger="relay.http.server"):
        response = await preflight(api, "x-a")
    assert response.status_code == 500
    assert response.text == "Internal server error\n"
    assert "unsendable 204 answer" in caplog.text
    monkeypatch.undo()
    assert (await preflight(api, "x-a")).status_code == 204
