"""ovms-bench --phases workers: a tiny real run (SQLite, PostgreSQL, --workers 2 on NATS)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nats_server import nats_url
from tests.pg_server import PgServer, pg_cluster, pg_server, pg_url  # noqa: F401 (fixtures)


@pytest.fixture
def bus() -> Iterator[str]:
    with nats_url() as url:
        yield url


def test_tiny_workers_phase(pg_url: str, bus: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--phases", "workers", "--cluster-db", pg_url,
         "--cluster-bus", bus, "--pairs", "3", "--duration", "0.3", "--warmup", "0.05",
         "--workers", "1", "--no-progress", "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    runs = json.loads(out.read_text())["phases"]["workers"]
    assert set(runs) == {"sqlite", "postgres", "workers"}
    for label, run in runs.items():
        assert run["pairs"] == 3 and run["lost"] == 0 and run["received"] > 0, (label, run)
        assert run["cpu_us_per_message"] is not None
    # The supervisor and its two workers.
    assert (runs["sqlite"]["processes"], runs["workers"]["processes"]) == (1, 3)
