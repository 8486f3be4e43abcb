"""A logged-in client/server session pair, sans-IO, for protocol tests."""

from __future__ import annotations

from protocol import ClientSession, ClientType, ServerSession, ServerWelcome


def established_pair(scheme0: bool, carpass: str = "DEMO") -> tuple[ClientSession, ServerSession]:
    """Scheme 0: a car with ``carpass``; scheme 1: app ``alice``/``pw`` on DEMO."""
    if scheme0:
        client = ClientSession(ClientType.CAR, "DEMO", carpass=carpass)
    else:
        client = ClientSession(ClientType.APP, "DEMO", username="alice", password="pw")
    server = ServerSession()
    server.receive_data(client.welcome())
    server.next_event()
    if scheme0:
        client.receive_data(server.accept_scheme0(carpass))
    else:
        client.receive_data(server.accept_scheme1("alice", "DEMO", ["DEMO"]))
    assert isinstance(client.next_event(), ServerWelcome)
    return client, server
