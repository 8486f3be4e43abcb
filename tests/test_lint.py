"""Static checks as tests: ruff over the code base, mypy --strict over protocol/ and relay/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_ruff() -> None:
    result = run("ruff", "check", "protocol", "relay", "tools", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_protocol() -> None:
    result = run("mypy", "--strict", "protocol")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_relay() -> None:
    result = run("mypy", "--strict", "relay")
    assert result.returncode == 0, result.stdout + result.stderr
