"""ovms-bench: a tiny real run (own server, few cars, ~1 s phases) and its pure helpers."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from tests.conftest import RelayUnderTest
from tools.bench import per_op, run, summarize_profile
from tools.bench_compare import METRICS, Side, load_note, table
from tools.bench_proc import split, split_count
from tools.bench_report import Progress
from tools.bench_stats import curve, percentile, summarize


def test_tiny_bench_run_writes_valid_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench", "--start-server", "--out", str(out),
         "--phases", "login,relay,rest,scale,durability", "--workers", "2",
         "--logins", "20", "--login-concurrency", "4", "--pairs", "4", "--duration", "0.3",
         "--warmup", "0.05", "--open-rates", "40", "--rest-clients", "2",
         "--rest-duration", "0.3", "--idle", "6", "--h-every", "2", "--no-progress"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    phases = report["phases"]
    assert phases["login"]["logins"] == 20 and phases["login"]["errors"] == 0
    closed = phases["relay_closed"]
    assert closed["pairs"] == 4 and closed["lost"] == 0 and closed["received"] > 0
    assert closed["latency"]["p50_ms"] is not None
    assert phases["relay_open_40"]["mode"] == "open"
    assert phases["scale"]["idle_connected"] == 6
    assert phases["scale"]["relay_with_idle"]["lost"] == 0
    durability = phases["durability"]
    assert durability["acked"] > 0 and durability["acked_missing"] == 0
    # The REST phase ran or was skipped with a reason, never silently absent.
    assert "rest_2_keepalive" in phases or "rest" in report["skipped"]
    assert report["machine"]["cpus"] >= 1 and report["server"]["own"] is True
    # Server CPU per operation, the figure that stays comparable on a busy machine.
    assert phases["login"]["server_cpu_ms_per_login"] > 0
    assert closed["server_cpu_us_per_message"] > 0
    chart = out.with_suffix(".png")
    assert chart.exists() or "no PNG chart" in result.stderr


def test_bench_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    # In process: the exit status and the message main() would exit with.
    assert run(["--phases", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "ovms-bench: error: unknown phase(s): nope"
    assert run(["--phases", "login"]) == 2
    assert "--carpass" in capsys.readouterr().err


def test_percentiles() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile(values, 0.0) == 1.0
    summary = summarize([0.001, 0.002, 0.003])
    assert summary["count"] == 3 and summary["p50_ms"] == 2.0 and summary["max_ms"] == 3.0
    assert summarize([])["p99_ms"] is None
    assert curve([0.001])[0] == (0.0, 1.0)


def test_work_is_split_evenly() -> None:
    assert split(list(range(5)), 2) == [[0, 2, 4], [1, 3]]
    assert split_count(5, 2) == [3, 2]
    assert sum(split_count(19000, 3)) == 19000


def test_progress_line() -> None:
    out = io.StringIO()
    bar = Progress("login", 200, out=out, enabled=False)
    assert "[###############...............]  50.0% 100/200" in bar.line(100, 1.0)
    timed = Progress("relay", 0, seconds=10.0, out=out, enabled=False)
    assert " 50.0% 1234 " in timed.line(1234, 5.0)
    bar.finish("done")
    assert out.getvalue() == f"{'login':<28} done\n"


def test_profile_summary(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text("main (relay/cli.py:10);run (trio/_run.py:5);send (relay/v2conn.py:9) 30\n"
                   "main (relay/cli.py:10);run (trio/_run.py:5);wait (trio/_io.py:1) 10\n")
    summary = summarize_profile(raw)
    assert summary["samples"] == 40
    assert summary["self_percent"][0] == ["send (relay/v2conn.py)", 75.0]
    assert ["main (relay/cli.py)", 100.0] in summary["inclusive_percent"]


async def test_bench_fails_with_reason_when_every_login_fails(
        relay: RelayUnderTest, tmp_path: Path) -> None:
    """Issue 10 item 17: a wrong carpass is exit 1 with the reason; the --out folder is made."""
    out = tmp_path / "new" / "folder" / "bench.json"
    result = await trio.run_process(
        [sys.executable, "-m", "tools.bench", "--port", str(relay.handle.v2_port),
         "--carpass", "wrong", "--vehicle-prefix", "DEMO", "--out", str(out),
         "--phases", "login", "--workers", "1", "--logins", "4", "--login-concurrency", "2",
         "--no-progress"],
        capture_stdout=True, capture_stderr=True, check=False)
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "every login failed" in stderr
    assert out.parent.is_dir()


def test_cpu_per_operation() -> None:
    assert per_op(1.0, 1.5, 1000, 1e3) == 0.5  # ms per operation
    assert per_op(None, 1.5, 1000, 1e3) is None
    assert per_op(1.0, 1.5, 0, 1e6) is None


def test_compare_table_gives_medians_and_spread() -> None:
    """tools.bench_compare: one column per side, the median of its rounds and their range."""
    old, new = Side("`old`", Path("/old"), Path("python")), Side("new", Path("/new"),
                                                                  Path("python"))
    runs = {"`old`": [{"phases": {"login": {"logins_per_s": v}}} for v in (900, 1000, 1300)],
            "new": [{"phases": {"login": {"logins_per_s": 1200}}}]}
    lines = table([old, new], runs).splitlines()
    assert lines[0] == "| metric | `old` | new |"
    assert lines[2] == "| logins/s | 1,000 /s (900-1,300) | 1,200 /s |"
    assert len(lines) == 2 + len(METRICS)
    assert all(line.endswith("| - | - |") for line in lines[3:])
    note = load_note([{"side": "new", "load_before": "2.5 2.0 1.0"}])
    assert "new 2.5" in note
