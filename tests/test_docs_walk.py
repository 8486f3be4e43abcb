"""Issue 10 item 11: every shell example in README.md and docs/ runs as written, in order.

The examples are run the way a new user types them: from an empty folder (a
fresh clone's working directory, as far as the commands care), with the
project's virtual environment on PATH. ``ovms-relay serve`` examples are
started, must report that they listen, and are then stopped (on free ports,
since the default ones may be taken on a test machine). A block preceded by
``<!-- docs-walk: skip (reason) -->`` is left out; installing and running the
test suite (pip, pytest) is what CI itself does, so those lines are skipped.
``ovms-admin`` examples run through the same console-script entry point but in
this interpreter (one interpreter each cost most of this test's time); the
installed script itself is run by tests/test_admin_cli.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- docs-walk: skip[^>]*-->\n)?```sh\n(.*?)```", re.S)
# Free ports for every listener a serve example may start; later flags win.
FREE_PORTS = ["--host", "127.0.0.1", "--v2-port", "0", "--http-port", "0",
              "--v2-tls-port", "0", "--https-port", "0"]


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands(path: Path) -> list[list[str]]:
    out: list[list[str]] = []
    for match in BLOCK.finditer(path.read_text()):
        if match.group(1):
            continue
        text = match.group(2).replace("\\\n", " ")
        for line in text.splitlines():
            argv = shlex.split(line, comments=True)
            if not argv or argv[0] in (".", "source") or "pytest" in line or "pip" in line:
                continue
            out.append(argv)
    return out


# Commands run in this interpreter: they start no server and keep no state between calls.
IN_PROCESS = {"ovms-admin"}


def run_in_process(argv: list[str], cwd: Path) -> None:
    (script,) = entry_points(group="console_scripts", name=argv[0])
    main = script.load()
    err = io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(err):
        try:
            main(argv[1:])
            status: object = 0
        except SystemExit as exc:
            status = exc.code
    assert status in (0, None), f"{' '.join(argv)!r} in {cwd}: {err.getvalue()}"


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    where = f"{' '.join(argv)!r} in {cwd}"
    if argv[0] in IN_PROCESS:
        run_in_process(argv, cwd)
        return
    if argv[:2] == ["ovms-relay", "serve"]:
        proc = subprocess.Popen([*argv, *FREE_PORTS], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        try:
            lines = []
            while not any("v2 protocol on" in line for line in lines):
                line = proc.stdout.readline()
                assert line, f"{where} exited early: {proc.stderr.read() if proc.stderr else ''}"
                lines.append(line)
        finally:
            proc.send_signal(signal.SIGTERM)
            status = proc.wait(20)
        assert status == 0, where
        return
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{where}: {result.stderr}"


def test_every_documented_command_runs_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OVMS_RELAY_DB", raising=False)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    ran = 0
    for path in documents():
        for argv in commands(path):
            run(argv, tmp_path, env)
            ran += 1
    # The README's account examples and the TLS and provisioning ones at least.
    assert ran >= 10
