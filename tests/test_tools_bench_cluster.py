"""ovms-bench-cluster: a tiny real run on PostgreSQL and NATS (few cars, short runs)."""

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


def test_tiny_cluster_bench_run(pg_url: str, bus: str, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_cluster", "--db", pg_url, "--bus", bus,
         "--setups", "local,cross,workers,storm", "--pairs", "3", "--duration", "2",
         "--load-workers", "1", "--storm-cars", "10", "--storm-app-every", "2",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    results = report["results"]
    for setup in ("local", "cross", "workers"):
        run = results[setup]
        assert run["pairs"] == 3 and run["lost"] == 0 and run["received"] > 0, run
        assert run["server_cpu_us_per_msg"] is not None
    storm = results["storm"]
    assert storm["cars"] == 10 and storm["apps"] == 5
    assert storm["time_to_z"]["count"] == 10
    assert report["cross_over_local_cpu"] > 0
