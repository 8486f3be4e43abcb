"""Bad input closes only the offending connection; everyone else keeps working."""

from __future__ import annotations

import base64

import pytest
import trio

from protocol import MAX_LINE_LENGTH, ClientType
from tests.conftest import T_NEVER, RelayUnderTest, StartRelay
from tests.settle import pinged, settle
from tools.v2client import LoginRefused, V2Client

S_MSG = "55,K,0,0,done,standard,105,85"


async def assert_still_working(relay: RelayUnderTest, car: V2Client, app: V2Client) -> None:
    await car.send("S", S_MSG)
    # The car may also have peer-count changes from the test's other connections.
    _, seen = await settle(car, app)
    assert seen == ["S" + S_MSG, "T0"]


@pytest.fixture
async def pair(relay: RelayUnderTest) -> tuple[V2Client, V2Client]:
    car = await relay.car()
    app = await relay.app()
    await settle(app, car)
    return car, app


async def closed_without_answer(stream: trio.SocketStream, timeout: float = 5) -> bool:
    with trio.move_on_after(timeout):
        received = b""
        try:
            while chunk := await stream.receive_some(4096):
                received += chunk
        except trio.BrokenResourceError:
            pass
        return received == b""
    return False


async def test_wrong_digest(relay: RelayUnderTest, pair: tuple[V2Client, V2Client]) -> None:
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.CAR, carpass="not-the-carpass")
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, carpass="not-the-carpass")
    await assert_still_working(relay, *pair)


async def test_unknown_vehicle(relay: RelayUnderTest, pair: tuple[V2Client, V2Client]) -> None:
    with pytest.raises(LoginRefused):
        await relay.connect("NOSUCHCAR", ClientType.CAR, carpass="x")
    await assert_still_working(relay, *pair)


@pytest.mark.parametrize("line", [
    b"garbage\r\n",
    b"MP-C 5 token digest DEMO\r\n",
    b"MP-Q 0 token digest DEMO\r\n",
    b"MP-C 0 onlytoken\r\n",
    b"\xff\xfe\x00binary\r\n",
])
async def test_garbage_first_line(
    relay: RelayUnderTest, pair: tuple[V2Client, V2Client], line: bytes
) -> None:
    stream = await relay.raw()
    await stream.send_all(line)
    assert await closed_without_answer(stream)
    await assert_still_working(relay, *pair)


async def test_line_that_does_not_decrypt(
    relay: RelayUnderTest, pair: tuple[V2Client, V2Client]
) -> None:
    intruder = await relay.car("TESTCAR")
    await pinged(intruder)
    # valid base64, but not RC4 of "MP-0 ..." under this session's key
    await intruder.stream.send_all(base64.b64encode(b"MP-0 Shello") + b"\r\n")
    assert await intruder.closed_by_server(5)
    bad_b64 = await relay.car("TESTCAR")
    await pinged(bad_b64)
    await bad_b64.stream.send_all(b"!!!not base64!!!\r\n")
    assert await bad_b64.closed_by_server(5)
    await assert_still_working(relay, *pair)


async def test_over_long_line(relay: RelayUnderTest, pair: tuple[V2Client, V2Client]) -> None:
    app2 = await relay.app()
    await pinged(app2)
    await app2.stream.send_all(b"A" * (MAX_LINE_LENGTH + 10))
    assert await app2.closed_by_server(5)
    # also before login
    stream = await relay.raw()
    await stream.send_all(b"M" * (MAX_LINE_LENGTH + 10))
    assert await closed_without_answer(stream)
    await assert_still_working(relay, *pair)


async def test_long_but_legal_historical_record(
    relay: RelayUnderTest, pair: tuple[V2Client, V2Client]
) -> None:
    car, _app = pair
    cells = ",".join(f"{3.9 + i / 1000:.3f}" for i in range(400))
    await car.send("h", f"7,0,*-BuD-Cells,1,3600,{cells}")
    assert (await car.receive()).text() == "h7"


async def test_command_from_car_is_ignored(
    relay: RelayUnderTest, pair: tuple[V2Client, V2Client]
) -> None:
    car, app = pair
    await car.send("C", "20,1234")
    assert (await settle(car, app))[1] == []
    await assert_still_working(relay, car, app)


async def test_malformed_records_do_not_close(
    relay: RelayUnderTest, pair: tuple[V2Client, V2Client]
) -> None:
    car, app = pair
    await car.send("h", "notenoughfields")
    await car.send("H", "x,y")
    await car.send("E", "")
    await app.send("C", "notanumber")
    await app.send("p", "short")
    await assert_still_working(relay, car, app)


async def test_scheme1_refused_on_plain_port_by_default(relay: RelayUnderTest) -> None:
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, username="demo", password="demopass")


async def test_scheme1_with_allow_plain_login(start_relay: StartRelay) -> None:
    relay = await start_relay(allow_plain_login=True)
    app = await relay.connect("*", ClientType.APP, username="demo", password="demopass")
    assert app.welcome is not None
    assert app.welcome.vehicleids == ("DEMO", "TESTCAR")
    assert await pinged(app) == ["Z0", T_NEVER]
    car = await relay.car()
    assert await pinged(car) == ["Z1"]
    await app.send("C", "20,1234")
    assert (await car.receive()).text() == "C20,1234"
    with pytest.raises(LoginRefused):
        await relay.connect("DEMO", ClientType.APP, username="demo", password="wrong")
    with pytest.raises(LoginRefused):
        await relay.connect("OTHERCAR", ClientType.APP, username="demo", password="demopass")


async def test_welcome_timeout(start_relay: StartRelay) -> None:
    relay = await start_relay(welcome_timeout=0.3)
    stream = await relay.raw()
    await stream.send_all(b"MP-C 0 abc")  # never completed
    assert await closed_without_answer(stream, timeout=5)


async def test_ap_c_unknown_key_answers_ap_x(relay: RelayUnderTest) -> None:
    stream = await relay.raw()
    await stream.send_all(b"AP-C 0 nosuchkey\r\n")
    with trio.fail_after(5):
        assert await stream.receive_some(100) == b"AP-X\r\n"


async def test_app_flooding_a_stalled_car_is_dropped_not_the_car(
    start_relay: StartRelay,
) -> None:
    relay = await start_relay(outbox_size=20)
    car = await relay.car()  # never reads from here on: its socket buffers fill up
    app = await relay.app()
    await pinged(app)
    payload = "x" * 16_000
    with trio.move_on_after(20):
        try:
            for _ in range(2_000):  # ~32 MB: far more than the kernel buffers hold
                await app.send("C", f"7,{payload}")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
    assert await app.closed_by_server(10)
    assert relay.handle.hub.car_connected("DEMO")
    await car.aclose()


async def test_trickled_welcome_shares_one_timeout(start_relay: StartRelay) -> None:
    """Sniffing (for WebSocket) and the v2 welcome share one deadline."""
    relay = await start_relay(welcome_timeout=0.3)
    stream = await relay.raw()
    closed = False
    with trio.move_on_after(10):
        try:
            # Enough bytes for the sniffer at once, then one byte every 0.05 s: a
            # welcome line that would complete only after 30 s.
            await stream.send_all(b"MP-C 0 ")
            for _ in range(600):
                await trio.sleep(0.05)
                await stream.send_all(b"a")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            closed = True
    assert closed or await closed_without_answer(stream, timeout=1)


async def test_server_written_alert_is_not_car_activity(relay: RelayUnderTest) -> None:
    """The "authentication failed" notice is logged as a historical record, but the
    car sent nothing: an app still gets the ``T`` of a vehicle that never reported
    (3020399 s, the public server's value), not ``T0``."""
    with pytest.raises(LoginRefused):
        await relay.connect("TESTCAR", ClientType.CAR, carpass="wrong")
    with trio.fail_after(10):
        while not await relay.handle.store.historical_summary("TESTCAR"):
            await trio.sleep(0.05)
    app = await relay.app("TESTCAR")
    assert await pinged(app) == ["Z0", T_NEVER]
