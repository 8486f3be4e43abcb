"""SQLite files as an older version of the relay left them, for the upgrade tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from relay.store import schema


@contextmanager
def sqlite_at_version(path: Path, version: int) -> Iterator[sqlite3.Connection]:
    """A new SQLite file with the migrations up to ``version`` applied: add that version's
    rows through the connection; on leaving, the file says it is at ``version`` (committed
    and closed), as the relay of that version left it."""
    raw = sqlite3.connect(path)
    for step, script in schema.MIGRATIONS:
        if step <= version:
            for statement in schema.statements(script):
                raw.execute(statement)
    yield raw
    raw.execute(f"PRAGMA user_version={version}")
    raw.commit()
    raw.close()
