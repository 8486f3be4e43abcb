"""Worker processes for ``ovms-bench``: one trio loop each, coordinated by the parent.

The load generator is Python too; one process would measure its own CPU limit
rather than the server's, so each phase runs in ``--workers`` processes, each
over its share of the cars. Workers report progress, named stages ("ready")
and a final result through one queue; the parent answers with events ("go",
"stop") so that every worker measures the same window.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import queue
import resource
import time
import traceback
from collections.abc import Awaitable, Callable
from multiprocessing.context import ForkServerContext, ForkServerProcess
from multiprocessing.synchronize import Event
from typing import Any

import trio

log = logging.getLogger("ovms.bench")
EVENTS = ("apps", "go", "stop")
# Phase name -> "module:function"; resolved in the worker (spawned processes import afresh).
PHASES = {
    "login": "tools.bench_load:login_phase",
    "relay": "tools.bench_load:relay_phase",
    "idle": "tools.bench_load:idle_phase",
    "rest": "tools.bench_load:rest_phase",
    "storm": "tools.bench_bus:storm_phase",
}


class WorkerError(Exception):
    """A worker failed or did not finish in time (one-line reason)."""


def raise_nofile_limit(pid: int | None = None) -> int:
    """Raise the soft open-files limit to the hard limit (of ``pid``, else of this process);
    returns the new soft limit."""
    if pid is None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Coordinator:
    """The worker's side: report progress and stages, wait for the parent's events."""

    def __init__(self, wid: int, q: Any, events: dict[str, Event]) -> None:
        self.wid = wid
        self._q = q
        self._events = events
        self._last_progress = 0.0

    def progress(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.2:
            self._last_progress = now
            self._q.put(("progress", self.wid, done))

    def stage(self, name: str, info: dict[str, Any] | None = None) -> None:
        self._q.put(("stage", self.wid, (name, info or {})))

    async def wait(self, event: str) -> None:
        ev = self._events[event]
        while not ev.is_set():
            # Polling keeps the trio loop (and its cancellation) in charge; 5 ms is far
            # below any phase's length.
            await trio.sleep(0.005)


def _resolve(phase: str) -> Callable[[dict[str, Any], Coordinator], Awaitable[dict[str, Any]]]:
    module_name, func = PHASES[phase].split(":")
    module = __import__(module_name, fromlist=[func])
    result: Callable[[dict[str, Any], Coordinator], Awaitable[dict[str, Any]]] = getattr(
        module, func)
    return result


def _worker_main(phase: str, params: dict[str, Any], wid: int, q: Any,
                 events: dict[str, Event]) -> None:
    raise_nofile_limit()
    coord = Coordinator(wid, q, events)
    try:
        result = trio.run(_resolve(phase), params, coord)
    except BaseException as exc:  # reported to the parent, which decides
        leaf = exc
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        q.put(("error", wid, f"{type(leaf).__name__}: {leaf}\n{traceback.format_exc()}"))
        return
    q.put(("result", wid, result))


@functools.cache
def _context() -> ForkServerContext:
    """Workers fork from a server process that imported the load generator once, instead
    of each starting an interpreter and importing it again (half a second of CPU per
    worker and phase). Nothing runs in that server but those imports, so a fork of it is
    as clean as a fresh interpreter; each worker starts its own trio loop."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tools.bench_load", "tools.bench_proc"])
    return ctx


class PhaseRun:
    """One phase across worker processes: start, wait for stages, signal, collect."""

    def __init__(self, phase: str, shares: list[dict[str, Any]],
                 on_progress: Callable[[int], None] | None = None) -> None:
        self.phase = phase
        self._ctx = _context()
        self._q = self._ctx.Queue()
        self.events = {name: self._ctx.Event() for name in EVENTS}
        self._procs: list[ForkServerProcess] = [
            self._ctx.Process(target=_worker_main, args=(phase, share, wid, self._q, self.events),
                              daemon=True)
            for wid, share in enumerate(shares)
        ]
        self._progress = [0] * len(shares)
        self._on_progress = on_progress
        self._stages: dict[str, dict[int, dict[str, Any]]] = {}
        self._results: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PhaseRun:
        for p in self._procs:
            p.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.events["stop"].set()
        for p in self._procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)

    def signal(self, event: str) -> None:
        self.events[event].set()

    def _pump(self, timeout: float) -> None:
        try:
            kind, wid, payload = self._q.get(timeout=timeout)
        except queue.Empty:
            for p in self._procs:
                if not p.is_alive() and p.exitcode not in (0, None):
                    raise WorkerError(
                        f"{self.phase} worker died (exit status {p.exitcode})") from None
            return
        if kind == "progress":
            self._progress[wid] = payload
            if self._on_progress is not None:
                self._on_progress(sum(self._progress))
        elif kind == "stage":
            name, info = payload
            self._stages.setdefault(name, {})[wid] = info
        elif kind == "result":
            self._results[wid] = payload
        elif kind == "error":
            log.debug("worker %d failed: %s", wid, payload)
            raise WorkerError(f"{self.phase} worker failed: {payload.splitlines()[0]}")

    def wait_stage(self, name: str, timeout: float) -> list[dict[str, Any]]:
        """Every worker's info for stage ``name``, once all have reached it."""
        deadline = time.monotonic() + timeout
        while len(self._stages.get(name, {})) < len(self._procs):
            if time.monotonic() > deadline:
                raise WorkerError(f"{self.phase}: workers not {name} within {timeout:.0f} s")
            self._pump(0.1)
        return [self._stages[name][w] for w in sorted(self._stages[name])]

    def results(self, timeout: float) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self._results) < len(self._procs):
            if time.monotonic() > deadline:
                raise WorkerError(f"{self.phase}: workers did not finish within {timeout:.0f} s")
            self._pump(0.1)
        return [self._results[w] for w in sorted(self._results)]


def split(items: list[Any], n: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``n`` shares (sizes differ by at most one)."""
    return [items[i::n] for i in range(n)]


def split_count(total: int, n: int) -> list[int]:
    return [total // n + (1 if i < total % n else 0) for i in range(n)]
