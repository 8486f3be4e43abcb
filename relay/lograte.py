"""A logging filter that lets through the first few of a kind of line per interval.

A peer that can trigger a log line at will (a flooding app, a car answering nothing,
a listener at the fd limit whose accept trio retries every 0.1 s) must not be able to
fill the disk or drown everything else. Lines are of one kind when they come from the
same logger at the same level with the same message template (the arguments may
differ). Each kind gets ``burst`` lines per ``interval`` seconds; the rest are dropped
and counted, and when the interval is over one summary line per kind says how many
were left out. The summary is written with the next line that is logged after the
interval (there is no timer task: the filter only runs when something is logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Kinds remembered per interval; more distinct templates than this (a library logging
# preformatted text) share one budget rather than growing the table.
MAX_KINDS = 1024
_OTHER = ("", 0, "(other lines)")
_SUMMARY_FLAG = "_relay_rate_summary"

Kind = tuple[str, int, str]


class RateLimitFilter(logging.Filter):
    """Per-handler rate limit of repeated lines (see the module docstring).

    ``emit`` receives the summary records (the handler's ``handle`` method: they then
    pass the handler's other filters too). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        burst: int = 10,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self._emit = emit
        self._clock = clock
        self._counts: dict[Kind, int] = {}
        self._window_end: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_FLAG, False):
            return True
        now = self._clock()
        if self._window_end is None or now >= self._window_end:
            self._roll(now)
        kind: Kind = (record.name, record.levelno, _template(record))
        if kind not in self._counts and len(self._counts) >= MAX_KINDS:
            kind = _OTHER
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        return count <= self.burst

    def _roll(self, now: float) -> None:
        suppressed = [(kind, count - self.burst) for kind, count in self._counts.items()
                      if count > self.burst]
        self._counts.clear()
        self._window_end = now + self.interval
        for (name, level, template), left_out in suppressed:
            summary = logging.LogRecord(
                name, level or logging.WARNING, __file__, 0,
                "suppressed %d more lines like %r in the last %g s", (
                    left_out, template, self.interval), None)
            setattr(summary, _SUMMARY_FLAG, True)
            self._emit(summary)


def _template(record: logging.LogRecord) -> str:
    msg = record.msg
    return msg if isinstance(msg, str) else type(msg).__name__


__all__ = ["RateLimitFilter"]
