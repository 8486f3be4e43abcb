"""Issue 9 defect 16: the OpenAPI document and the server agree (schemathesis, all checks).

A relay is started in the test; schemathesis loads ``GET /api/openapi.json`` from it
and runs every phase with every check against it, authenticated as the test account
(``username``/``password`` are the document's own security parameters) and on the
account's vehicle, so the requests get past 401/403 to the handlers. A car has
stored S, D, L, F and Y messages, so the answers have data to check against their
schemas. Examples are bounded (``SCHEMATHESIS_MAX_EXAMPLES``, default 2) to keep CI
fast; a release check raises it (docs/fuzzing-protocol.md).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio

from tests.conftest import OWNER, PASSWORD, RelayUnderTest, StartRelay
from tests.http_helpers import D_MSG, F_MSG, L_MSG, S_MSG, Y_MSG, base_url, scripted_car

schemathesis = pytest.importorskip("schemathesis")

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "2"))
UNLIMITED = {"api_rate_burst": 10**6, "api_rate_per_minute": 10**6, "api_rate_max": 10**6}


def _run(url: str) -> list[str]:
    """Every failed check of a schemathesis run, one line each (blocking: a worker thread)."""
    # Hypothesis imports some strategies inside functions; worker threads could race on
    # that first import ("cannot import name 'RandomStrategy'").
    import hypothesis.strategies._internal.random  # noqa: F401
    from schemathesis import engine
    from schemathesis.engine import events

    config = schemathesis.Config.from_dict({
        "seed": 9,
        "checks": {"enabled": True},
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "parameters": {"vehicleid": "DEMO"},
        "auth": {"openapi": {"username": {"api_key": OWNER}, "password": {"api_key": PASSWORD}}},
        "request-timeout": 10,
        # One worker: in CPython 3.11 two threads compiling at once can fail inside
        # the ast module ("AST constructor recursion depth mismatch"), an engine error
        # that says nothing of the server.
        "workers": 1,
        # A monitor body (triggers, expressions, a callback URL the allow-list must
        # pass) has no JSON schema yet, so generated bodies cannot be valid ones.
        "operations": [{"include-path-regex": "/monitors", "include-method": ["POST", "PUT"],
                        "checks": {"positive_data_acceptance": {"enabled": False}}}],
    })
    schema = schemathesis.openapi.from_url(url + "/api/openapi.json", config=config)
    failures: list[str] = []
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for check_list in event.recorder.checks.values():
                for check in check_list:
                    if check.failure_info is not None:
                        failure: Any = check.failure_info.failure
                        failures.append(f"{event.recorder.label}: {check.name}: "
                                        f"{failure.title}: {failure.message[:200]!r}: "
                                        f"{check.failure_info.code_sample}")
        elif isinstance(event, (events.FatalError, events.NonFatalError)):
            failures.append(f"schemathesis error: {event!r}")
    return failures


async def test_openapi_document_agrees_with_server(start_relay: StartRelay) -> None:
    """Issue 9 defect 16: zero schemathesis failures with all checks against the live API."""
    relay: RelayUnderTest = await start_relay(command_timeout=0.2, **UNLIMITED)
    car = await scripted_car(relay, messages=(("F", F_MSG), ("S", S_MSG), ("D", D_MSG),
                                              ("L", L_MSG), ("Y", Y_MSG)))
    await car.aclose()
    failures = await trio.to_thread.run_sync(_run, base_url(relay))
    # One line per failure; the same check failing again on one operation adds nothing.
    seen: dict[str, str] = {}
    for line in failures:
        seen.setdefault(line.split(": ", 3)[:3].__str__(), line)
    assert not seen, f"{len(failures)} failures:\n" + "\n".join(seen.values())
