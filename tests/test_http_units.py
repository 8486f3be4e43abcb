"""REST API parts on their own: rate limiter, sessions, rights, field shapes, hub waiters."""

from __future__ import annotations

import trio

from protocol import ClientType, Message
from relay import permits
from relay.http import formatting
from relay.http.ratelimit import RateLimiter
from relay.http.routes import ROUTES, RouteTable
from relay.http.sessions import SessionTable
from relay.hub import CommandWaiter, Hub, Peer
from relay.store import StoredMessage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_burst_refill_and_cap() -> None:
    clock = Clock()
    limiter = RateLimiter(120, 60, 240, clock=clock)
    assert all(limiter.allow("a") for _ in range(120))
    assert not limiter.allow("a")
    assert limiter.allow("b")  # per address
    clock.now += 59.9
    assert not limiter.allow("a")
    clock.now += 0.1  # one whole period since the first request: +60
    assert sum(limiter.allow("a") for _ in range(100)) == 60
    clock.now += 600  # ten periods, capped at 240
    assert sum(limiter.allow("a") for _ in range(300)) == 240
    clock.now += 1000
    assert limiter.forget_idle() == 2 and len(limiter) == 0


def test_rate_limiter_off_and_exempt() -> None:
    assert all(RateLimiter(0, 60, 240).allow("a") for _ in range(500))
    limiter = RateLimiter(1, 60, 240, exempt=["10.0.0.1", " "], clock=Clock())
    assert all(limiter.allow("10.0.0.1") for _ in range(10))
    assert limiter.allow("x") and not limiter.allow("x")


def make_car(hub: Hub, vehicleid: str = "V") -> trio.MemoryReceiveChannel[Message]:
    send, receive = trio.open_memory_channel[Message](100)
    hub.register(Peer(conn_id="car", owner="o", vehicleid=vehicleid,
                      client_type=ClientType.CAR, outbox=send, cancel_scope=trio.CancelScope()))
    return receive


def drain(receive: trio.MemoryReceiveChannel[Message]) -> list[str]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait().text())
        except trio.WouldBlock:
            return out


def test_sessions_register_expire_and_end() -> None:
    hub, clock = Hub(), Clock()
    car = make_car(hub)
    drain(car)
    table = SessionTable(hub, idle_timeout=10, clock=clock)
    session = table.create("o", "*", "h")
    assert table.get(session.sid) is session
    assert table.connect(session, "V") is True
    implicit = table.implicit("o", "h", "*", create=True)
    assert implicit is not None and implicit is not session
    assert table.connect(implicit, "V") is False
    assert hub.app_count("V") == 2 and drain(car) == ["Z1", "Z2"]
    clock.now += 5
    assert table.get(session.sid) is session  # used: lives on
    clock.now += 6
    assert table.expire() == 1  # the implicit one, unused for 11 s
    assert drain(car) == ["Z1"]
    clock.now += 11
    assert table.get(session.sid) is None
    assert hub.app_count("V") == 0 and drain(car) == ["Z0"]
    assert len(table) == 0


def test_rights() -> None:
    assert permits.may("*", permits.TOKEN_ADMIN)
    assert permits.may("auth, Token.Admin", permits.TOKEN_ADMIN)
    assert not permits.may("auth,v2", permits.TOKEN_ADMIN)
    assert permits.may("auth", permits.READ)
    assert permits.grants_nothing("none") and permits.grants_nothing("")
    assert not permits.grants_nothing("auth")


def test_flags_read_numbers_as_perl_does() -> None:
    values = ["160", "x", "8.9", "", "-1", "9" * 5000]
    assert formatting.flag(values, 0, 0x80) == 128
    assert formatting.flag(values, 1, 0xFF) == 0
    assert formatting.flag(values, 2, 0x08) == 8
    assert formatting.flag(values, 3, 0x01) == 0
    assert formatting.flag(values, 4, 0x04) == 4
    assert formatting.flag(values, 5, 0x01) == 0
    assert formatting.flag(values, 9, 0x01) == 0
    assert formatting.fields("a,,b,,") == ["a", "", "b"]


def test_odd_y_messages_do_not_break_tpms() -> None:
    for data in ("", "x", "2,A", "2,A,B,9", "1,FL,1,nan", "1,FL,1,1e999,1"):
        latest = {"Y": StoredMessage("Y", data, 1.0, False, "")}
        result = formatting.tpms(latest, now=2.0)
        assert result["m_msgage_y"] == 1


def test_router_matches_templates() -> None:
    router = RouteTable(ROUTES)
    match = router.match("GET", "/api/historical/DEMO/%2A-Test")
    assert match is not None and match.args == {"vehicleid": "DEMO", "type": "*-Test"}
    assert router.match("GET", "/api/vehicles/") is not None
    assert router.match("GET", "/api/status//") is None
    assert router.match("PATCH", "/api/status/DEMO") is None


def test_waiter_gets_its_answer_and_a_late_one_is_dropped() -> None:
    hub = Hub()
    car = make_car(hub)
    send, receive = trio.open_memory_channel[Message](10)
    waiter = CommandWaiter("h1/c1", send)
    assert hub.send_waiter_command("V", waiter, 20, Message("C", "20,1"))
    assert drain(car)[-1] == "C20,1"
    hub.command_response("V", Message("c", "20,0"))
    assert receive.receive_nowait().text() == "c20,0"
    gone = CommandWaiter("h1/c2", send)
    assert hub.send_waiter_command("V", gone, 18, Message("C", "18"))
    gone.gone = True
    hub.command_response("V", Message("c", "18,0"))
    assert drain(receive) == []
    assert not hub.send_waiter_command("NOCAR", waiter, 20, Message("C", "20"))
