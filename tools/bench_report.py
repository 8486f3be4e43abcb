"""Console progress bars and the report files (JSON, PNG chart) of ``ovms-bench``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import attrs

BAR_WIDTH = 30


@attrs.define
class Progress:
    """One progress bar on a terminal (``\\r`` redraws); silent when not a terminal."""

    label: str
    total: int
    # When set, the bar shows elapsed time out of ``seconds`` (for fixed-length phases)
    # and ``done`` is only printed as a count.
    seconds: float | None = None
    out: TextIO = sys.stderr
    enabled: bool = attrs.field(default=None)
    started: float = attrs.field(factory=time.monotonic)
    _last_draw: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.enabled is None:
            self.enabled = self.out.isatty()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self.out.write("\r" + self.line(done, now - self.started))
        self.out.flush()

    def line(self, done: int, elapsed: float) -> str:
        if self.seconds:
            frac = min(1.0, elapsed / self.seconds)
            count = f"{done}"
        else:
            frac = min(1.0, done / self.total) if self.total > 0 else 0.0
            count = f"{done}/{self.total}"
        filled = int(frac * BAR_WIDTH)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        return f"{self.label:<28} [{bar}] {frac * 100:5.1f}% {count} {elapsed:5.1f}s"

    def finish(self, summary: str) -> None:
        if self.enabled:
            self.out.write("\r" + " " * (len(self.label) + BAR_WIDTH + 50) + "\r")
        self.out.write(f"{self.label:<28} {summary}\n")
        self.out.flush()


def write_json(path: Path, report: dict[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def write_chart(path: Path, curves: dict[str, list[tuple[float, float]]]) -> str | None:
    """Latency by percentile, one line per run; returns why no chart was written, if not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install 'ovms-relay[bench]'): no PNG chart"
    if not any(curves.values()):
        return "no latency samples: no PNG chart"
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for name, points in curves.items():
        usable = [(q, ms) for q, ms in points if 0 < q < 1 and ms > 0]
        if not usable:
            continue
        # x = 1/(1-q): the tail (p99, p999) gets as much room as the median.
        xs = [1.0 / (1.0 - q) for q, _ in usable]
        ax.plot(xs, [ms for _, ms in usable], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [0.5, 0.9, 0.99, 0.999, 0.9999]
    ax.set_xticks([1.0 / (1.0 - q) for q in ticks])
    ax.set_xticklabels([f"p{q * 100:g}" for q in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title("ovms-bench: car-to-app relay and REST latency by percentile")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
