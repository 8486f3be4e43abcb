"""Issue 11: the plain v2 port's accept loop, lighter per connection than trio's."""

from __future__ import annotations

import errno

import pytest
import trio
import trio.testing

from relay.boundary import close_stream, serve_self_closing


async def test_each_connection_is_a_task_of_its_own_named_once() -> None:
    """The handler itself is the task (no wrapper), named with the one shared string."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    names: list[str] = []
    served = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        try:
            names.append(trio.lowlevel.current_task().name)
            await stream.send_all(b"hello\r\n")
            if len(names) == 2:
                served.set()
        finally:
            await trio.aclose_forcefully(stream)

    name = "v2 connection"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve_self_closing, handler, listeners, name)
        for _ in range(2):
            client = await trio.open_tcp_stream("127.0.0.1", port)
            assert await client.receive_some(100) == b"hello\r\n"
            assert await client.receive_some(100) == b""  # the handler closed it
            await client.aclose()
        with trio.fail_after(10):
            await served.wait()
        nursery.cancel_scope.cancel()
    assert names == [name, name]
    assert names[0] is names[1] is name


class _FlakyListener(trio.abc.Listener[trio.SocketStream]):
    """accept fails with the given errors in turn, then waits forever."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.calls = 0

    async def accept(self) -> trio.SocketStream:
        self.calls += 1
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, "test")
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass


async def test_running_out_of_descriptors_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """EMFILE and its kind mean "overloaded": wait a little and accept again."""
    listener = _FlakyListener([errno.EMFILE, errno.ENFILE, errno.ENOBUFS])

    async def handler(stream: trio.SocketStream) -> None:
        raise AssertionError("nothing was accepted")

    with trio.move_on_after(5):
        await serve_self_closing(handler, [listener], "v2")  # type: ignore[list-item]
    assert listener.calls == 4 and not listener.errors


async def test_other_accept_errors_end_the_listener() -> None:
    listener = _FlakyListener([errno.EBADF])

    async def handler(stream: trio.SocketStream) -> None:
        raise AssertionError("nothing was accepted")

    with pytest.raises(BaseExceptionGroup) as caught:
        await serve_self_closing(handler, [listener], "v2")  # type: ignore[list-item]
    assert caught.group_contains(OSError)


async def test_close_stream_closes_an_open_socket_and_skips_a_closed_one(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler's final close: an open stream is closed; one its connection closed
    already is left alone (no second close, no scheduler trip)."""
    closes: list[object] = []
    real = trio.aclose_forcefully

    async def counting(resource: trio.abc.AsyncResource) -> None:
        closes.append(resource)
        await real(resource)

    monkeypatch.setattr(trio, "aclose_forcefully", counting)
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    async with listener:
        port = listener.socket.getsockname()[1]
        client = await trio.open_tcp_stream("127.0.0.1", port)
        server = await listener.accept()
        await close_stream(server)
        assert server.socket.fileno() == -1 and closes == [server]
        await close_stream(server)
        assert closes == [server]
        # Not a socket stream (e.g. TLS): always closed.
        stapled = trio.testing.memory_stream_pair()[0]
        await close_stream(stapled)
        assert closes == [server, stapled]
        await client.aclose()
