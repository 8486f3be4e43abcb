"""The Node.js ovms-client library: its v2 app login and command flow.

It logs in as an app with scheme 0 and a padded base64 digest (Node's
``digest('base64')`` keeps the ``=``), reads the replay up to ``T``, pings with
``A`` and sends commands as ``C<number>,<params>``, matching each ``c`` answer by
its command number. It worked before issue 10; this keeps it working.
"""

from __future__ import annotations

from tests.conftest import T_NEVER, RelayUnderTest
from tests.http_helpers import S_MSG, scripted_car
from tests.raw_v2 import RawScheme0


async def test_ovms_client_login_and_command(relay: RelayUnderTest) -> None:
    """ovms-client: login (padded digest), replay, ping, a command answered by the car."""
    car = await scripted_car(relay, messages=[("S", S_MSG)])
    async with car:
        app = await RawScheme0.login(relay.handle.v2_port, "DEMO", "DEMO", "A", padded=True)
        replay = await app.receive_until("T")
        assert replay[0] == "Z1" and f"S{S_MSG}" in replay
        assert (await car.receive()).text() == "Z1"

        await app.send_text("A")
        assert await app.receive_until("a") == ["a"]

        await app.send_text("C7,range")
        command = await car.receive()
        assert command.text() == "C7,range"
        await car.send("c", "7,0,Range: 85 km")
        answers = await app.receive_until("c")
        assert answers[-1] == "c7,0,Range: 85 km"
        await app.aclose()


async def test_ovms_client_command_to_an_offline_car(relay: RelayUnderTest) -> None:
    """ovms-client: with no car connected the server answers the command itself (result
    1) instead of leaving the library's promise waiting."""
    app = await RawScheme0.login(relay.handle.v2_port, "TESTCAR", "NETPASS", "A", padded=True)
    assert await app.receive_until("T") == ["Z0", T_NEVER]
    await app.send_text("C20,1234")
    answer = (await app.receive_until("c"))[-1]
    assert answer.startswith("c20,1,")
    await app.aclose()
