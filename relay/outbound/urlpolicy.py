"""Which user-supplied URLs the relay may send to (webhook and ntfy subscriptions,
API v4 monitor callbacks).

A push subscription's or callback's URL comes from whoever knows the vehicle
password or holds a token, and the relay will POST to it from inside the
operator's network: without a check, that is a server-side request forgery
hole (cloud metadata at 169.254.169.254, admin pages on localhost, the LAN).
The default therefore only allows ``https://`` to hosts whose every address is
public; the operator widens it with URL prefixes (``--webhook-allow``), which are
trusted as they stand.

A URL is normalised before any comparison (lower-case scheme and host, default
port dropped, ``.`` and ``..`` segments resolved) and the normalised URL is what
is fetched, so ``http://127.0.0.1:P/hooks/../admin`` is ``/admin`` for the check
as for the receiving server. Encoded dots, slashes and backslashes in the path
(``%2e%2e``, ``%2f``, a backslash) are refused: servers disagree on whether to decode
them before resolving segments, so no comparison could be trusted.

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
from urllib.parse import SplitResult, unquote, urlsplit

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
    """``scheme://host`` of a URL, for texts shown to the vehicle's owner (API v4 alerts).

    Log lines use ``relay.logsafe.redact_url`` instead (it tells URLs on one host apart).
    """
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
    if "\\" in url:
        raise UrlRefused("URL contains a backslash")
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
    _check_segments(parts.path)
    return parts


# Decoding rounds for a path segment: a server may decode twice (``%252e``).
_DECODE_ROUNDS = 3


def _check_segments(path: str) -> None:
    """Refuse a path segment that becomes a dot segment or a separator once decoded."""
    for segment in path.split("/"):
        if "%" not in segment:
            continue
        decoded = segment
        for _ in range(_DECODE_ROUNDS):
            decoded = unquote(decoded, errors="replace")
        if "/" in decoded or "\\" in decoded or decoded.split(";", 1)[0] in (".", ".."):
            raise UrlRefused("URL path contains an encoded dot segment, slash or backslash")


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 for an absolute path (``;params`` count as dot segments too,
    as some servers strip them before resolving)."""
    segments = path.split("/")[1:] if path else [""]
    out: list[str] = []
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        bare = segment.split(";", 1)[0]
        if bare == "..":
            if out:
                out.pop()
            if last:
                out.append("")
        elif bare == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _host(parts: SplitResult) -> str:
    host = parts.hostname or ""
    return host.rstrip(".") or host


def normalise(url: str) -> str:
    """The URL as it will be fetched; raises ``UrlRefused`` if it is not an http(s) URL
    we can compare safely. The fragment is dropped (it is never sent)."""
    parts = _split(url)
    host = _host(parts)
    if ":" in host:
        host = f"[{host}]"
    port = _port(parts)
    netloc = host if port == DEFAULT_PORTS[parts.scheme] else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{netloc}{_remove_dot_segments(parts.path)}{query}"


def _under(path: str, prefix: str) -> bool:
    """Path ``path`` lies under ``prefix``: segment-wise unless the prefix ends in ``/``."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _port(parts: SplitResult) -> int:
    return parts.port or DEFAULT_PORTS[parts.scheme]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.define
class UrlPolicy:
    """``allow``: operator prefixes such as ``http://127.0.0.1:8080/``.

    One instance is shared by push and API v4 callbacks; ``reconfigure`` changes it in
    place (SIGHUP), so every sender checks against the new list from then on.
    """

    allow: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    resolve_timeout: float = RESOLVE_TIMEOUT

    def reconfigure(self, allow: Iterable[str]) -> None:
        self.allow = _strings(allow)

    def operator_allowed(self, url: str) -> bool:
        """True if ``url`` lies under one of the operator's prefixes.

        Compared as parsed, normalised URLs, not strings, so ``http://127.0.0.1:8080@evil/``,
        ``http://127.0.0.1:80800/`` or ``http://127.0.0.1:8080/hooks/../admin`` do not pass
        for the prefix ``http://127.0.0.1:8080/hooks/``.
        """
        try:
            parts = urlsplit(normalise(url))
        except (UrlRefused, ValueError):
            return False
        for prefix in self.allow:
            try:
                allowed = urlsplit(normalise(prefix))
            except (UrlRefused, ValueError):
                continue
            if (
                parts.scheme == allowed.scheme
                and parts.hostname == allowed.hostname
                and _port(parts) == _port(allowed)
                and _under(parts.path, allowed.path)
            ):
                return True
        return False

    async def check(self, url: str) -> Target:
        """The URL's target if allowed; raises ``UrlRefused`` or ``Unresolvable``.

        The target's URL is the normalised one: what was checked is what is fetched.
        """
        url = normalise(url)
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
