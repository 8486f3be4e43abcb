"""Prometheus metrics of one relay: its own registry, counted where things happen.

Every relay owns a :class:`Metrics` (tests start many relays in one process, so
nothing goes to prometheus-client's global registry). Label values are bounded:
message codes are single ASCII letters or ``other``, routes are templates or
``unmatched``, push types are the configured senders or ``other``; never a
vehicle id. Gauges that mirror state (connections, queue depth) are read at
scrape time instead of being kept up to date on the hot path.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from protocol import ClientType

# Message codes that get their own label value; anything else is "other".
CODES = frozenset(string.ascii_letters)
OTHER = "other"
UNMATCHED = "unmatched"
# Store batches take from well under a millisecond to seconds while the disk struggles.
BATCH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                 2.5, 5.0, 10.0)


class _Live(Collector):
    """Gauges read from the running server at scrape time (set by :meth:`Metrics.watch`)."""

    def __init__(self) -> None:
        self.client_types: Callable[[], Iterable[ClientType]] | None = None
        self.queue_depth: Callable[[], int] | None = None

    def collect(self) -> Iterator[Metric]:
        if self.client_types is not None:
            counts = {"car": 0, "app": 0, "batch": 0}
            for ctype in self.client_types():
                label = ctype.label
                if label in counts:
                    counts[label] += 1
            conns = GaugeMetricFamily("ovms_connections", "Logged-in v2 connections by kind",
                                      labels=["kind"])
            for kind, n in counts.items():
                conns.add_metric([kind], n)
            yield conns
        if self.queue_depth is not None:
            yield GaugeMetricFamily("ovms_store_queue_depth",
                                    "Reads and writes waiting for the store's writer task",
                                    value=self.queue_depth())


class Metrics:
    """The relay's registry and its instruments; cheap calls for the hot paths."""

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._live = _Live()
        reg.register(self._live)
        if process:
            ProcessCollector(registry=reg)
        self.messages = Counter("ovms_messages", "v2 messages by direction and code",
                                ["direction", "code"], registry=reg)
        self.logins = Counter("ovms_logins", "Login attempts by kind and result",
                              ["kind", "result"], registry=reg)
        self.store_batch = Histogram("ovms_store_batch_seconds",
                                     "Store write batches, start to commit (retries included)",
                                     buckets=BATCH_BUCKETS, registry=reg)
        self.push = Counter("ovms_push", "Push delivery attempts by type and outcome",
                            ["type", "outcome"], registry=reg)
        self.http_requests = Counter("ovms_http_requests", "REST requests by route and status",
                                     ["route", "status"], registry=reg)
        self.http_seconds = Histogram("ovms_http_request_seconds",
                                      "REST request handling time by route", ["route"],
                                      registry=reg)
        # Label children by code, made on first use: at most 53 per direction.
        self._in: dict[str, Counter] = {}
        self._out: dict[str, Counter] = {}
        # The same for logins and REST requests (bounded: kinds and results, route
        # templates and statuses): labels() costs more than the increment it serves.
        self._logins: dict[tuple[str, str], Counter] = {}
        self._http: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def watch(self, client_types: Callable[[], Iterable[ClientType]],
              queue_depth: Callable[[], int]) -> None:
        """Report the live connections and the store queue from now on."""
        self._live.client_types = client_types
        self._live.queue_depth = queue_depth

    # --- hot paths: a dict lookup and an increment ---------------------------------------

    def message_in(self, code: str) -> None:
        child = self._in.get(code)
        if child is None:
            child = self._child(self._in, "in", code)
        child.inc()

    def message_out(self, code: str) -> None:
        child = self._out.get(code)
        if child is None:
            child = self._child(self._out, "out", code)
        child.inc()

    def _child(self, cache: dict[str, Counter], direction: str, code: str) -> Counter:
        # Cached by label, not by code: weird codes must not grow the cache either.
        label = code if code in CODES else OTHER
        child = cache.get(label)
        if child is None:
            child = cache[label] = self.messages.labels(direction, label)
        return child

    # --- the rest -------------------------------------------------------------------------

    def login(self, kind: str, result: str) -> None:
        child = self._logins.get((kind, result))
        if child is None:
            child = self._logins[kind, result] = self.logins.labels(kind, result)
        child.inc()

    def store_batch_done(self, seconds: float) -> None:
        self.store_batch.observe(seconds)

    def push_outcome(self, pushtype: str, outcome: str) -> None:
        self.push.labels(pushtype, outcome).inc()

    def http_request(self, route: str, status: int, seconds: float) -> None:
        children = self._http.get((route, status))
        if children is None:
            children = self._http[route, status] = (
                self.http_requests.labels(route, str(status)), self.http_seconds.labels(route))
        children[0].inc()
        children[1].observe(seconds)


__all__ = ["Metrics"]
