"""Timeouts and the car ping rule, with short configured timeouts on a real relay."""

from __future__ import annotations

import trio

from tests.conftest import StartRelay


async def test_silent_app_is_closed_but_a_pinging_one_stays(start_relay: StartRelay) -> None:
    relay = await start_relay(app_timeout=0.4)
    car = await relay.car()
    silent = await relay.app()
    chatty = await relay.app()
    await car.drain()
    for _ in range(8):
        await chatty.send("A")
        await trio.sleep(0.1)
    assert await silent.closed_by_server(2)
    msgs = [m.text() for m in await chatty.drain(0.05)]
    assert "a" in msgs
    assert "Z1" in [m.text() for m in await car.drain()]  # app count fell from 2 to 1


async def test_silent_car_is_closed_and_apps_told(start_relay: StartRelay) -> None:
    relay = await start_relay(car_timeout=0.4)
    car = await relay.car()
    app = await relay.app()
    await app.drain(0.05)
    assert await car.closed_by_server(3)
    assert [m.text() for m in await app.drain()] == ["Z0"]


async def test_quiet_car_is_pinged(start_relay: StartRelay) -> None:
    relay = await start_relay(car_ping_after=0.3, car_ping_every=10)
    car = await relay.car()
    assert (await car.receive()).text() == "Z0"
    assert (await car.receive(timeout=3)).text() == "A"
    await car.send("a")
    # at most one ping per car_ping_every
    assert [m.text() for m in await car.drain(0.6)] == []


async def test_silent_batch_client_is_closed(start_relay: StartRelay) -> None:
    relay = await start_relay(batch_timeout=0.3)
    batch = await relay.batch()
    assert await batch.closed_by_server(3)
