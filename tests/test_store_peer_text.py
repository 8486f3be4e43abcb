"""Issue 11 defect (store slice): text a peer sends with bytes that are not UTF-8 (held as
lone surrogates by the v2 session) is stored and returned byte-identical, as every text
column a peer can fill; before, SQLite refused to bind it (UnicodeEncodeError): latest
writes were dropped, ``P`` lookups and history commands failed."""

from __future__ import annotations

import logging

import httpx
import pytest

from relay.store import open_store
from relay.store.engines import is_postgres
from tests.conftest import VEHICLES, RelayUnderTest, StartRelay, make_db
from tests.http_helpers import CREDS, api, assert_json
from tests.raw_v2 import RawScheme0

__all__ = ["api"]  # fixtures


@pytest.fixture
async def relay(db_target: str, start_relay: StartRelay) -> RelayUnderTest:
    """The relay on a SQLite file, then on a PostgreSQL database."""
    if is_postgres(db_target):
        make_db(db_target)
        on_postgres: RelayUnderTest = await start_relay(db=db_target)
        return on_postgres
    result: RelayUnderTest = await start_relay()
    return result

BAD = b"\xff\xfe\xe9".decode("utf-8", "surrogateescape")  # bytes invalid in UTF-8
DATA_MSG = f"D1{BAD},2"  # a known code, data with bad bytes
CODE_MSG = f"{BAD[0]}x{BAD}"  # the code itself a bad byte
HTYPE = f"*-T{BAD}"


async def _login(relay: RelayUnderTest, kind: str) -> RawScheme0:
    return await RawScheme0.login(relay.handle.v2_port, "DEMO", VEHICLES["DEMO"], kind)


async def test_undecodable_text_round_trips_through_the_store(
    relay: RelayUnderTest, api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: a car's message text with bytes invalid in UTF-8 comes back byte-identical
    to an app (live, replayed from the database), C31/C32 and REST historical answer, and
    a ``P`` naming such a vehicle id is refused like any unknown vehicle."""
    caplog.set_level(logging.WARNING, logger="relay.store")
    watcher = await _login(relay, "A")
    await watcher.drain()
    car = await _login(relay, "C")
    for text in (DATA_MSG, CODE_MSG, f"H{HTYPE},0,3600,r{BAD}0"):
        await car.send_text(text)
    # The watcher sees the two live messages: both were put (put_latest comes first).
    live = [t for t in await watcher.receive_until(CODE_MSG) if t in (DATA_MSG, CODE_MSG)]
    assert live == [DATA_MSG, CODE_MSG]
    store = relay.handle.store
    await store.flush()
    assert store.stats.dropped == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    # What the database holds (not the memory cache): a second store on the same database.
    async with open_store(relay.config.db) as other:
        stored = await other.latest("DEMO")
        records = await other.historical_records("DEMO", HTYPE)
    assert stored["D"].data == DATA_MSG[1:]
    assert stored[CODE_MSG[0]].data == CODE_MSG[1:]
    assert [r.data for r in records] == [f"r{BAD}0"]

    # An app logging in now gets the replay byte-identical.
    app = await _login(relay, "A")
    replay = await app.drain()
    assert DATA_MSG in replay and CODE_MSG in replay

    # History commands answer, with the bad bytes as they were sent.
    await app.send_text("C31")
    summary = await app.receive_until("c31,0,1,1,")
    assert any(f",{HTYPE},1,1," in line for line in summary)
    await app.send_text(f"C32,{HTYPE}")
    (answer,) = [t for t in await app.receive_until("c32") if t.startswith("c32")]
    assert answer.startswith(f"c32,0,1,1,{HTYPE},") and answer.endswith(f",0,r{BAD}0")

    # A push subscription naming a vehicle id with bad bytes: looked up, not found.
    await app.send_text(f"Papp1,ntfy,production,DE{BAD},{VEHICLES['DEMO']},https://x.example/t")
    await app.send_text("C31")
    assert (await app.receive_until("c31,0,"))[-1].startswith("c31,0,")

    # REST historical answers too.
    rows = assert_json(await api.get("/api/historical/DEMO", params=CREDS))
    assert "*-T???" in [r["h_recordtype"] for r in rows]  # REST shows bad bytes as '?'
    for connection in (watcher, car, app):
        await connection.aclose()
