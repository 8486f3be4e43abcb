"""Timeouts and the car ping rule, with short configured timeouts on a real relay."""

from __future__ import annotations

import trio
import trio.testing

from tests.conftest import StartRelay


async def test_silent_app_is_closed_but_a_pinging_one_stays(
        start_relay: StartRelay, mock_clock: trio.testing.MockClock) -> None:
    """Trio's clock stands still (a MockClock) and moves 0.1 s only once the relay has
    answered the chatty app's ping: however slow the machine, chatty is never 0.4 s
    silent on the relay's clock, and the silent app is."""
    relay = await start_relay(app_timeout=0.4)
    car = await relay.car()
    silent = await relay.app()
    chatty = await relay.app()
    for app in (silent, chatty):
        await app.receive_until("T")  # registered: their silence counts from here
    for _ in range(8):
        await chatty.send("A")
        await chatty.receive_until("a")
        mock_clock.jump(0.1)
    await chatty.send("A")  # 0.8 s on: still served
    await chatty.receive_until("a")
    mock_clock.rate = 1.0  # the bounds below in real seconds again
    assert await silent.closed_by_server(2)
    texts = [m.text() for m in await car.receive_until("Z")]
    while texts[-2:] != ["Z2", "Z1"]:  # the app count rose to 2, then fell to 1
        texts += [m.text() for m in await car.receive_until("Z")]


async def test_silent_car_is_closed_and_apps_told(start_relay: StartRelay) -> None:
    relay = await start_relay(car_timeout=0.4)
    car = await relay.car()
    app = await relay.app()
    await app.receive_until("T")  # its login replay, however slowly it comes
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
