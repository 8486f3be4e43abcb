"""Which user-supplied URLs the relay may send to (webhook and ntfy subscriptions).

A push subscription's URL comes from whoever knows the vehicle password, and the
relay will POST to it from inside the operator's network: without a check, that
is a server-side request forgery hole (cloud metadata at 169.254.169.254, admin
pages on localhost, the LAN). The default therefore only allows ``https://`` to
hosts whose every address is public; the operator widens it with URL prefixes
(``--webhook-allow``), which are trusted as they stand.

The check runs when a subscription arrives (refused: not stored) and again before
every delivery, because DNS answers change. At delivery the request goes to the
address that was checked (the host name travels in the Host header and TLS SNI),
so a name that resolves to a public address for the check and to 127.0.0.1 a
moment later (DNS rebinding) cannot redirect it. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import SplitResult, urlsplit

import attrs
import httpx
import trio

DEFAULT_PORTS = {"http": 80, "https": 443}
RESOLVE_TIMEOUT = 5.0


class UrlRefused(Exception):
    """The URL is not allowed (one-line reason, safe to log: no path or query)."""


class Unresolvable(Exception):
    """The host name does not resolve right now (may be temporary)."""


@attrs.frozen
class Target:
    """Where to send: ``url`` (host replaced by the checked address when ``pinned``)."""

    url: str = attrs.field(repr=False)
    host: str
    netloc: str = ""  # the original ``host[:port]``, for the Host header when pinned
    pinned: bool = False

    def request_options(self) -> dict[str, Any]:
        """Keyword arguments for ``httpx`` so a pinned request still names its host."""
        if not self.pinned:
            return {}
        return {"headers": {"Host": self.netloc}, "extensions": {"sni_hostname": self.host}}


def describe(url: str) -> str:
    """``scheme://host`` of a URL, for log lines (paths and queries may hold secrets)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or '?'}"
    except ValueError:
        return "<unparsable URL>"


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (not loopback/private/link-local/...)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_public(embedded)
        if address.teredo is not None:
            return all(is_public(a) for a in address.teredo)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return address.is_global and not (
        address.is_multicast
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _split(url: str) -> SplitResult:
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise UrlRefused("URL is empty or contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise UrlRefused("URL cannot be parsed") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise UrlRefused(f"scheme {parts.scheme or '(none)'!r} is not http or https")
    if "@" in parts.netloc:
        raise UrlRefused("URLs with user information are not allowed")
    if not parts.hostname:
        raise UrlRefused("URL has no host")
    return parts


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _port(parts: SplitResult) -> int:
    return parts.port or DEFAULT_PORTS[parts.scheme]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class UrlPolicy:
    """``allow``: operator prefixes such as ``http://127.0.0.1:8080/``."""

    allow: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    resolve_timeout: float = RESOLVE_TIMEOUT

    def operator_allowed(self, url: str) -> bool:
        """True if ``url`` lies under one of the operator's prefixes.

        Compared as parsed URLs, not strings, so ``http://127.0.0.1:8080@evil/`` or
        ``http://127.0.0.1:80800/`` do not pass for the prefix ``http://127.0.0.1:8080``.
        """
        try:
            parts = _split(url)
        except UrlRefused:
            return False
        for prefix in self.allow:
            try:
                allowed = _split(prefix)
            except UrlRefused:
                continue
            if (
                parts.scheme == allowed.scheme
                and parts.hostname == allowed.hostname
                and _port(parts) == _port(allowed)
                and (parts.path or "/").startswith(allowed.path or "/")
            ):
                return True
        return False

    async def check(self, url: str) -> Target:
        """The URL's target if allowed; raises ``UrlRefused`` or ``Unresolvable``."""
        parts = _split(url)
        host = parts.hostname
        assert host is not None
        if self.operator_allowed(url):
            return Target(url, host)
        if parts.scheme != "https":
            raise UrlRefused("only https:// URLs are allowed (see --webhook-allow)")
        literal = _literal(host)
        addresses = [literal] if literal is not None else await self._resolve(host, _port(parts))
        for address in addresses:
            if not is_public(address):
                raise UrlRefused(f"{host} is or resolves to a non-public address ({address})")
        if literal is not None:
            return Target(url, host)
        pinned = httpx.URL(url).copy_with(host=str(addresses[0]))
        return Target(str(pinned), host, parts.netloc, pinned=True)

    async def _resolve(
        self, host: str, port: int
    ) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        with trio.move_on_after(self.resolve_timeout):
            try:
                infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise Unresolvable(f"{host} does not resolve ({exc})") from None
            result = []
            for info in infos:
                address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                if address not in result:
                    result.append(address)
            if not result:
                raise Unresolvable(f"{host} has no addresses")
            return result
        raise Unresolvable(f"{host}: no DNS answer within {self.resolve_timeout:.0f} s")
