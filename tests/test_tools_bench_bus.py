"""ovms-bench's cluster phases: a tiny real run (two nodes on PostgreSQL and NATS)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.nats_server import nats_url
from tests.pg_server import PgServer, pg_cluster, pg_server  # noqa: F401 (fixtures)


@pytest.fixture
def bus() -> Iterator[str]:
    with nats_url() as url:
        yield url


def test_tiny_cluster_and_storm_run(tmp_path: Path, pg_server: PgServer,  # noqa: F811
                                    bus: str) -> None:
    out = tmp_path / "bench.json"
    # Tiny: it checks the tool works, not how fast the cluster is.
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--out", str(out), "--phases", "cluster,storm",
         "--cluster-db", pg_server.url, "--cluster-bus", bus, "--workers", "2",
         "--pairs", "4", "--duration", "0.3", "--warmup", "0.05", "--storm-cars", "8",
         "--storm-app-every", "4", "--storm-settle", "0.2", "--storm-timeout", "60",
         "--no-progress"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    phases = json.loads(out.read_text())["phases"]
    cluster = phases["cluster"]
    for label, app_node in (("local", "a"), ("cross", "b")):
        run = cluster[label]
        assert (run["app_node"], run["pairs"], run["failed_pairs"]) == (app_node, 4, 0)
        assert run["received"] > 0 and run["cpu_us_per_message"] > 0
    assert cluster["cross_over_local_cpu"] > 0
    storm = phases["storm"]
    assert storm["cars_connected"] == 8 and storm["apps"] == 2
    assert storm["moved"] == 4 and storm["missing"] == 0
    assert storm["seconds_until_all_back"] is not None
