"""Per-client-address request quota (PROTOCOL.md section 8), refusing at once past it.

The public server's scheme: a new address starts with a burst quota; every minute
the quota grows by a fixed amount up to a cap; a request costs one. Unlike the
public server we answer 429 immediately instead of holding the connection 20 s.
Refills happen in whole periods counted from the address's first request, so
whether a burst is refused never depends on where a wall-clock minute falls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import attrs
import trio

log = logging.getLogger("relay.http.ratelimit")

# An address unseen this long is forgotten (its quota would be full again anyway).
FORGET_AFTER = 300.0


@attrs.define
class _Bucket:
    quota: int
    refilled_at: float
    last_seen: float
    refusing: bool = False


class RateLimiter:
    def __init__(
        self,
        burst: int,
        per_period: int,
        cap: int,
        *,
        exempt: Iterable[str] = (),
        period: float = 60.0,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.burst = burst
        self.per_period = per_period
        self.cap = max(cap, burst)
        self.period = period
        self.exempt = frozenset(h.strip() for h in exempt if h.strip())
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def reconfigure(self, burst: int, per_period: int, cap: int, exempt: Iterable[str]) -> None:
        """New limits (SIGHUP); an address's remaining quota never exceeds the new burst,
        so lowering the limits takes effect at once, not after quotas run down."""
        self.burst = burst
        self.per_period = per_period
        self.cap = max(cap, burst)
        self.exempt = frozenset(h.strip() for h in exempt if h.strip())
        for bucket in self._buckets.values():
            bucket.quota = min(bucket.quota, burst)

    def allow(self, host: str) -> bool:
        """Count one request from ``host``; False if it must be refused (429)."""
        if self.burst <= 0 or host in self.exempt:
            return True
        now = self._clock()
        bucket = self._buckets.get(host)
        if bucket is None:
            bucket = self._buckets[host] = _Bucket(self.burst, now, now)
        else:
            periods = int((now - bucket.refilled_at) // self.period)
            if periods > 0:
                bucket.quota = min(self.cap, bucket.quota + periods * self.per_period)
                bucket.refilled_at += periods * self.period
        bucket.last_seen = now
        if bucket.quota <= 0:
            if not bucket.refusing:
                bucket.refusing = True
                log.info("http client=%s: rate limited (too many requests)", host)
            return False
        bucket.refusing = False
        bucket.quota -= 1
        return True

    def forget_idle(self) -> int:
        """Drop addresses not seen for a while; returns how many."""
        cutoff = self._clock() - FORGET_AFTER
        idle = [h for h, b in self._buckets.items() if b.last_seen < cutoff]
        for host in idle:
            del self._buckets[host]
        return len(idle)

    def __len__(self) -> int:
        return len(self._buckets)
