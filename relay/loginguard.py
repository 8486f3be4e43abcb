"""Failed-login limits shared by every login path: v2 (schemes 0 and 1, plain, TLS and
WebSocket) and the REST API (password, API token, bearer token, /mqapi/auth).

Two limits, both counted over all paths together:

- **Per client address**: after ``address_failures`` failed logins within
  ``address_window`` seconds, every login from that address is refused without
  checking (the right password too) for ``address_block`` seconds. IPv6 addresses
  count per /64, the block a single host usually holds. Addresses in ``exempt``
  (``api_rate_exempt``: a local broker, a proxy) are never blocked.
- **Per account** (an owner name, or a vehicle id for scheme 0): after
  ``account_failures`` failures against it within ``account_window`` seconds, from
  any addresses, checks for it are refused for ``account_window`` seconds, except
  from addresses it logged in from successfully before. The threshold is above what
  one address can reach under its own limit, so one attacker cannot lock an account
  at all; many attackers lock it only for new addresses and only while they keep
  failing; its owner's known addresses still log in.

Callers ask (``admit``) before any work, and again right before comparing the
secret, with no checkpoint between that comparison and counting its outcome: a
client opening hundreds of connections at once must not have them all checked
before the first failure is counted. For argon2, which runs in a thread, the second
question is asked when the check gets its hash slot, so at most the slots in use
(``password_hash_concurrency``) can overshoot a limit. A block is logged once when it
starts, never once per refused attempt.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import ipaddress
import logging
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import attrs
import trio

if TYPE_CHECKING:
    from relay.config import Config

log = logging.getLogger("relay.loginguard")

# Tracked addresses and accounts at most, each; past it idle entries are forgotten
# (a flood of distinct addresses or names costs bounded memory).
MAX_TRACKED = 100_000
# Addresses remembered per account as ones it logged in from, and for how long.
KNOWN_ADDRESSES = 8
KNOWN_FOR = 30 * 86400.0


# Longer account names are tracked by a digest: 100,000 names of 32 KiB would not fit.
MAX_NAME = 64


def _account(kind: str, name: str) -> str:
    if len(name) > MAX_NAME:
        name = "sha256:" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}:{name}"


def owner_account(name: str) -> str:
    return _account("owner", name)


def vehicle_account(vehicleid: str) -> str:
    return _account("vehicle", vehicleid.upper())


@functools.lru_cache(maxsize=4096)
def address_key(host: str) -> str:
    """The unit an address limit counts: the address, or its /64 for IPv6.

    Cached: a login asks it several times (each guard question, its outcome), and
    parsing an address costs microseconds at thousands of logins a second.
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


@attrs.frozen
class GuardLimits:
    address_failures: int = 20  # 0: no address limit
    address_window: float = 60.0
    address_block: float = 60.0
    account_failures: int = 200  # 0: no account limit
    account_window: float = 300.0  # also how long an account stays locked

    @classmethod
    def from_config(cls, config: Config) -> GuardLimits:
        return cls(config.login_fail_max, config.login_fail_window, config.login_block_time,
                   config.login_account_fail_max, config.login_account_window)


@attrs.define
class _Tally:
    """Recent failure times of one address or account, and until when it is blocked."""

    failures: collections.deque[float]
    blocked_until: float = float("-inf")


class GuardRefusal(Exception):
    """A login the guard refuses unchecked; the text says why (for a log line)."""


class LoginGuard:
    def __init__(
        self,
        limits: GuardLimits = GuardLimits(),
        *,
        exempt: Iterable[str] = (),
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.limits = limits
        self.exempt = frozenset(h.strip() for h in exempt if h.strip())
        self._clock = clock
        self._addresses: dict[str, _Tally] = {}
        self._accounts: dict[str, _Tally] = {}
        # Account -> the addresses it logged in from and when, flat and oldest first:
        # (address, time, address, time, ...). One small tuple per account (a car, for
        # most), not a dict: the relay keeps one for each of tens of thousands of cars.
        self._known: dict[str, tuple[str | float, ...]] = {}

    def reconfigure(self, limits: GuardLimits, exempt: Iterable[str]) -> None:
        """New limits and exempt addresses (SIGHUP); failures counted so far still count."""
        self.limits = limits
        self.exempt = frozenset(h.strip() for h in exempt if h.strip())
        # A tally keeps at most as many failures as the highest limit needs.
        limit = max(limits.address_failures, limits.account_failures, 1)
        for table in (self._addresses, self._accounts):
            for tally in table.values():
                tally.failures = collections.deque(tally.failures, maxlen=limit)

    def _is_exempt(self, host: str) -> bool:
        return host in self.exempt or address_key(host) in self.exempt

    def _known_pairs(self, account: str) -> list[tuple[str, float]]:
        flat = self._known.get(account, ())
        return [(str(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def _known_address(self, account: str, key: str, now: float) -> bool:
        return any(address == key and now - seen < KNOWN_FOR
                   for address, seen in self._known_pairs(account))

    def refusal(self, host: str, account: str | None) -> str | None:
        """Why a login from ``host`` for ``account`` must be refused unchecked, or None."""
        # Asked twice per login: an address and an account nothing was counted against
        # (nearly every login) are answered with two dict lookups.
        key = address_key(host)
        by_address = self._addresses.get(key)
        by_account = self._accounts.get(account) if account is not None else None
        if by_address is None and by_account is None:
            return None
        now = self._clock()
        exempt = self._is_exempt(host)
        if by_address is not None and not exempt and by_address.blocked_until > now:
            return "too many failed logins from this address"
        if (account is not None and by_account is not None and by_account.blocked_until > now
                and (exempt or not self._known_address(account, key, now))):
            return "too many failed logins for this account"
        return None

    def admit(self, host: str, account: str | None) -> None:
        """Raise GuardRefusal if a login from ``host`` for ``account`` must be refused."""
        refusal = self.refusal(host, account)
        if refusal is not None:
            raise GuardRefusal(refusal)

    def failed(self, host: str, account: str | None) -> None:
        """Count a failed login (wrong secret, unknown account or vehicle)."""
        now = self._clock()
        limits = self.limits
        key = address_key(host)
        if limits.address_failures > 0 and not self._is_exempt(host):
            if self._count(self._addresses, key, now, limits.address_failures,
                           limits.address_window, limits.address_block):
                log.warning("login guard: client address %s blocked for %.0f s after %d "
                            "failed logins within %.0f s", key, limits.address_block,
                            limits.address_failures, limits.address_window)
        if limits.account_failures > 0 and account is not None:
            if self._count(self._accounts, account, now, limits.account_failures,
                           limits.account_window, limits.account_window):
                log.warning("login guard: %r locked for %.0f s after %d failed logins within "
                            "%.0f s (except from addresses it logged in from before)",
                            account, limits.account_window, limits.account_failures,
                            limits.account_window)

    def succeeded(self, host: str, account: str | None) -> None:
        """Remember ``host`` as one ``account`` logs in from (not for shared, exempt ones).

        Failure counts are kept: a success must not buy an attacker new guesses.
        """
        if account is None or self._is_exempt(host):
            return
        if account not in self._known and len(self._known) >= MAX_TRACKED:
            self._known.pop(next(iter(self._known)))
        # Interned: cars behind one carrier NAT address share its string.
        key = sys.intern(address_key(host))
        flat = self._known.get(account)
        if flat and flat[-2] == key:
            # Again from its newest known address (a car reconnecting): just the time.
            self._known[account] = (*flat[:-1], self._clock())
            return
        pairs = [p for p in self._known_pairs(account) if p[0] != key]
        pairs.append((key, self._clock()))
        self._known[account] = tuple(x for pair in pairs[-KNOWN_ADDRESSES:] for x in pair)

    def _tally(self, table: dict[str, _Tally], key: str) -> _Tally:
        tally = table.get(key)
        if tally is None:
            if len(table) >= MAX_TRACKED:
                self._forget_idle(table, self._clock())
            limit = max(self.limits.address_failures, self.limits.account_failures, 1)
            tally = table[key] = _Tally(collections.deque(maxlen=limit))
        return tally

    def _count(self, table: dict[str, _Tally], key: str, now: float, limit: int,
               window: float, block: float) -> bool:
        """Add a failure to ``table[key]``; True if that starts a block."""
        tally = self._tally(table, key)
        if tally.blocked_until > now:
            return False  # already blocked (a check that had its hash slot before)
        tally.failures.append(now)
        if _recent(tally, now, window) < limit:
            return False
        tally.blocked_until = now + block
        tally.failures.clear()
        return True

    def _forget_idle(self, table: dict[str, _Tally], now: float) -> None:
        window = max(self.limits.address_window, self.limits.account_window)
        cutoff = now - window
        for key in [k for k, t in table.items()
                    if t.blocked_until <= now and (not t.failures or t.failures[-1] <= cutoff)]:
            del table[key]
        # Still full (a flood of fresh addresses or names): forget the oldest idle ones.
        excess = len(table) - MAX_TRACKED * 9 // 10
        if excess > 0:
            for key in [k for k, t in table.items() if t.blocked_until <= now][:excess]:
                del table[key]

    def __len__(self) -> int:
        return len(self._addresses) + len(self._accounts)


def _recent(tally: _Tally, now: float, window: float) -> int:
    """How many of the tally's failures are within ``window`` (older ones dropped)."""
    failures = tally.failures
    while failures and failures[0] <= now - window:
        failures.popleft()
    return len(failures)
