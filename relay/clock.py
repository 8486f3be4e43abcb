"""The server's two clocks: trio's for every duration, the wall clock for timestamps.

Every timeout, interval, TTL, back-off and liveness check is measured on trio's
clock (``trio.current_time``), so tests drive them with ``trio.testing.MockClock``
in milliseconds instead of waiting seconds. Wall time (``time.time``) is used only
where a moment is written down or compared with one written down (stored rows,
monitor windows, trip stamps); components that do so receive a ``Clock`` rather
than calling ``time.time`` themselves, so a test can give them a fake wall clock.
"""

from __future__ import annotations

import time
from typing import Protocol

import attrs
import trio


class Clock(Protocol):
    """What a component needs to tell durations and write timestamps."""

    def now(self) -> float:
        """Seconds on trio's clock: for durations and deadlines only."""

    def wall(self) -> float:
        """Unix time in seconds: for timestamps stored or shown."""


@attrs.frozen
class SystemClock:
    """The real clocks: trio's (a MockClock under test) and ``time.time``."""

    def now(self) -> float:
        return trio.current_time()

    def wall(self) -> float:
        return time.time()


SYSTEM_CLOCK = SystemClock()


def trio_deadline(clock: Clock, wall_at: float) -> float:
    """The trio time at which ``clock``'s wall time reaches ``wall_at`` (past: now).

    The one place wall moments (monitor batch windows, trip ends: stored, so they
    survive a restart) become deadlines a cancel scope can wait for.
    """
    now = clock.now()
    return now + max(0.0, wall_at - clock.wall())
