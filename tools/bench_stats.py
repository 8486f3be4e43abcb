"""Latency statistics for ``ovms-bench``: percentiles and summaries (pure functions)."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Points of the percentile curve kept in the JSON report (and drawn in the chart).
CURVE_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest-rank; NaN when empty."""
    if not ordered:
        return math.nan
    if q <= 0:
        return ordered[0]
    rank = math.ceil(q * len(ordered))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """Count and p50/p90/p99/p999/max of latencies given in seconds, reported in ms."""
    ordered = sorted(samples)

    def ms(q: float) -> float | None:
        value = percentile(ordered, q)
        return None if math.isnan(value) else round(value * 1000.0, 3)

    mean = sum(ordered) / len(ordered) * 1000.0 if ordered else None
    return {
        "count": len(ordered),
        "mean_ms": None if mean is None else round(mean, 3),
        "p50_ms": ms(0.5),
        "p90_ms": ms(0.9),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": ms(1.0),
    }


def curve(samples: Sequence[float]) -> list[tuple[float, float]]:
    """(quantile, latency ms) points for the report's percentile chart."""
    ordered = sorted(samples)
    if not ordered:
        return []
    return [(q, round(percentile(ordered, q) * 1000.0, 3)) for q in CURVE_QUANTILES]


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0
