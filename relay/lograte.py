"""A logging filter that bounds how often a line, or a kind of line, is written.

A peer that can trigger a log line at will (a flooding app, a car answering nothing,
a listener at the fd limit whose accept trio retries every 0.1 s) must not be able to
fill the disk or drown everything else. Two budgets per ``interval`` seconds:

- the same line (same logger, level and text): ``burst`` times, 10 by default. This
  is what floods look like: one connection repeating one complaint.
- the same kind of line (same logger, level and message template, any arguments):
  ``template_burst`` times, 1,200 by default, so ordinary per-connection lines (a login
  each) are all kept while thousands of distinct connections a minute are not.

The rest are dropped and counted; when the interval is over, one summary line per
line or kind says how many were left out. It is written with the next record logged
after the interval (there is no timer task: the filter only runs when something is
logged).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

# Lines and kinds remembered per interval. Past this many distinct lines, new ones
# are not counted (they still have their kind's budget); past this many kinds
# (a library logging preformatted text), new kinds share one budget.
MAX_TRACKED = 1024
SAMPLE_LENGTH = 200
_SUMMARY_FLAG = "_relay_rate_summary"
_OTHER_TEMPLATE = "(further kinds of line)"

Key = tuple[str, int, int]  # logger, level, hash of the text
Kind = tuple[str, int, str]  # logger, level, template


class RateLimitFilter(logging.Filter):
    """Per-handler rate limit of repeated lines (see the module docstring).

    ``emit`` receives the summary records (the handler's ``handle`` method: they then
    pass the handler's other filters too). ``clock`` is injectable for tests; it is
    ``time.monotonic``, not trio's clock, because the bus and MQTT bridge threads log
    too, outside any trio run.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], object],
        *,
        burst: int = 10,
        template_burst: int = 1200,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.template_burst = template_burst
        self.interval = interval
        self._emit = emit
        self._clock = clock
        self._lines: dict[Key, int] = {}
        self._kinds: dict[Kind, int] = {}
        self._suppressed: dict[Kind, int] = {}  # (logger, level, sample text): count
        self._window_end: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_FLAG, False):
            return True
        now = self._clock()
        if self._window_end is None or now >= self._window_end:
            self._roll(now)
        text = _text(record)
        key: Key = (record.name, record.levelno, hash(text))
        seen = self._lines.get(key)
        if seen is not None or len(self._lines) < MAX_TRACKED:
            seen = (seen or 0) + 1
            self._lines[key] = seen
            if seen > self.burst:
                self._count_suppressed((record.name, record.levelno, text[:SAMPLE_LENGTH]))
                return False
        kind: Kind = (record.name, record.levelno, _template(record))
        if kind not in self._kinds and len(self._kinds) >= MAX_TRACKED:
            kind = (record.name, record.levelno, _OTHER_TEMPLATE)
        count = self._kinds.get(kind, 0) + 1
        self._kinds[kind] = count
        if count > self.template_burst:
            self._count_suppressed(kind)
            return False
        return True

    def _count_suppressed(self, kind: Kind) -> None:
        self._suppressed[kind] = self._suppressed.get(kind, 0) + 1

    def _roll(self, now: float) -> None:
        suppressed = self._suppressed
        self._suppressed = {}
        self._lines.clear()
        self._kinds.clear()
        self._window_end = now + self.interval
        for (name, level, sample), left_out in suppressed.items():
            summary = logging.LogRecord(
                name, level, __file__, 0, "suppressed %d more lines like %r in the last %g s",
                (left_out, sample, self.interval), None)
            setattr(summary, _SUMMARY_FLAG, True)
            self._emit(summary)


def _text(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:
        return _template(record)


def _template(record: logging.LogRecord) -> str:
    msg = record.msg
    return msg if isinstance(msg, str) else type(msg).__name__


__all__ = ["RateLimitFilter"]
