"""TCP listeners, optionally sharing their port with other processes (SO_REUSEPORT).

Worker processes of ``serve --workers N`` each open every listener on the same
port; with SO_REUSEPORT the kernel spreads new connections over them. The option
is only set when asked: without it, a second server started on a port in use by
mistake fails with "address in use" instead of silently taking half the traffic.
"""

from __future__ import annotations

import errno
import socket

import trio

# As trio's own listeners: the largest backlog; the kernel caps it at somaxconn.
BACKLOG = 0xFFFF


def can_reuse_port() -> bool:
    return hasattr(socket, "SO_REUSEPORT")


def _prepare(sock: socket.socket | trio.socket.SocketType, family: int, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        if not can_reuse_port():
            raise OSError(errno.ENOPROTOOPT, "SO_REUSEPORT is not available on this system")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)


async def open_tcp_listeners(
    port: int, *, host: str | None, reuse_port: bool = False
) -> list[trio.SocketListener]:
    """``trio.open_tcp_listeners`` with the option of SO_REUSEPORT (one socket per
    address ``host`` resolves to)."""
    addresses = await trio.socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[trio.SocketListener] = []
    try:
        for family, kind, proto, _, sockaddr in addresses:
            sock = trio.socket.socket(family, kind, proto)
            try:
                _prepare(sock, family, reuse_port)
                await sock.bind(sockaddr)
                sock.listen(BACKLOG)
            except BaseException:
                sock.close()
                raise
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    return listeners


def reserve_port(host: str | None, port: int) -> tuple[int, list[socket.socket]]:
    """Bind (without listening) SO_REUSEPORT sockets on every address of ``host``.

    The supervisor does this before starting workers: port 0 becomes one real port
    that all workers, and a worker restarted later, share. A socket that only binds
    never receives connections: the kernel hands them to listening sockets only.
    """
    addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    held: list[socket.socket] = []
    try:
        for family, kind, proto, _, sockaddr in addresses:
            sock = socket.socket(family, kind, proto)
            held.append(sock)
            _prepare(sock, family, reuse_port=True)
            if port == 0 and len(held) > 1:
                # Every address on the port the first one got.
                sockaddr = (sockaddr[0], held[0].getsockname()[1], *sockaddr[2:])
            sock.bind(sockaddr)
    except BaseException:
        for sock in held:
            sock.close()
        raise
    bound: int = held[0].getsockname()[1]
    return bound, held
