"""What the simulator and client commands (``ovms-car``, its v3 modules, ``ovms-app``)
share: one-line usage errors, running until Ctrl-C/SIGTERM, counters that add up over
a fleet, and the clock that drives a vehicle model."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn, ParamSpec, Self, TypeVar

import attrs
import trio

P = ParamSpec("P")
T = TypeVar("T")


class UsageError(Exception):
    """The command line is wrong; the message is the reason."""


class Parser(argparse.ArgumentParser):
    """Usage errors as an exception, so that ``run`` prints them as one ``PROG: error:`` line
    (exit status 2) instead of argparse's usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def fail(prog: str, message: str, status: int) -> int:
    """Print ``PROG: error: message`` to stderr; returns ``status`` (the exit status)."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return status


def first_leaf(exc: BaseException) -> BaseException:
    """The first plain exception inside nested exception groups (the one to report)."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def until_signal(work: Callable[P, Awaitable[T]], *args: P.args,
                       **kwargs: P.kwargs) -> T | None:
    """Run ``work`` until it returns (its result) or SIGINT/SIGTERM arrives (None):
    a signal cancels it, so the command ends with its summary instead of a traceback."""
    result: T | None = None
    async with trio.open_nursery() as nursery:
        async def main() -> None:
            nonlocal result
            result = await work(*args, **kwargs)
            nursery.cancel_scope.cancel()

        nursery.start_soon(main)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break
    return result


@attrs.define
class Counters:
    """Base of a simulator's statistics: integer fields that add up over a fleet."""

    def add(self, other: Self) -> None:
        for field in attrs.fields(type(self)):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


@attrs.define
class ModelClock:
    """How far a vehicle model has to run: trio time since the last step."""

    _last: float | None = None

    def step(self, time_scale: float) -> float:
        """Simulated seconds since the previous call (0 on the first); ``time_scale`` is
        simulated seconds per real second (60 makes a one-hour drive last a minute)."""
        now = trio.current_time()
        if self._last is None:
            self._last = now
        dt = (now - self._last) * time_scale
        self._last = now
        return dt
