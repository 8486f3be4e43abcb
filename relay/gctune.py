"""Garbage-collector settings for a process that holds tens of thousands of connections.

Each connection is a few dozen long-lived objects, so 19,000 idle cars are over a
million objects the cyclic collector walks on every full (generation 2) pass:
measured here, ~0.8 s during which nothing is relayed. Reference counting frees
almost everything the relay discards (connections break their own cycles when they
close), so full passes can be rare: a larger young generation and many more young
passes per full pass keep the pauses out of the latency tail without letting
garbage grow unbounded.
"""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default is 700).
YOUNG_THRESHOLD = 20_000
# Young collections per middle one (default 10).
MIDDLE_THRESHOLD = 20
# Middle collections per full one (default 10); CPython also waits until the
# objects that survived since the last full pass are 25 % of all tracked ones.
FULL_THRESHOLD = 100


def tune_gc() -> None:
    """Apply the thresholds, and move start-up objects (modules, classes) out of the
    collector's view: they live as long as the process."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, FULL_THRESHOLD)
