"""``ovms-relay serve --workers N`` as a real process tree, for tests.

Output (stdout and stderr together) is read by a thread into a list, so a test
waits for the lines it needs (a worker listening, restarted, stopped) instead of
sleeping.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import trio

# Bounds on waiting for an event that must come; never asserted as a duration.
PATIENCE = 60.0


class Supervised:
    def __init__(self, *args: str, cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1",
             "--v2-port", "0", "--http-port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # end of output
            self._changed.notify_all()

    @property
    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def _wait(self, pattern: str, count: int) -> list[re.Match[str]]:
        regex = re.compile(pattern)

        def found() -> list[re.Match[str]]:
            return [m for m in map(regex.search, self.lines) if m]

        with self._changed:
            done = self._changed.wait_for(
                lambda: len(found()) >= count or (self.lines and self.lines[-1] == ""),
                PATIENCE)
            matches = found()
            assert done and len(matches) >= count, (
                f"no {count} x {pattern!r} in the output:\n{''.join(self.lines)}")
            return matches

    async def wait_for(self, pattern: str, count: int = 1) -> list[re.Match[str]]:
        """The first ``count`` lines matching ``pattern`` (waits for them to appear)."""
        return await trio.to_thread.run_sync(self._wait, pattern, count)

    async def ports(self) -> tuple[int, int]:
        match = (await self.wait_for(r"v2 protocol on [\d.]+:(\d+), REST API on port (\d+)"))[0]
        return int(match.group(1)), int(match.group(2))

    async def worker_pids(self, count: int = 1) -> list[int]:
        """Pids of the first ``count`` worker starts, in order."""
        matches = await self.wait_for(r"worker \d+ started \(pid (\d+)\)", count)
        return [int(m.group(1)) for m in matches[:count]]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def wait(self) -> int:
        code = await trio.to_thread.run_sync(self.proc.wait, PATIENCE)
        await trio.to_thread.run_sync(self._reader.join, PATIENCE)
        return code

    def stop(self) -> None:
        """Whatever happened in the test: no process of the tree is left behind."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(PATIENCE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for match in re.finditer(r"worker \d+ started \(pid (\d+)\)", self.text):
            pid = int(match.group(1))
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def gone(pid: int) -> None:
    """Wait until process ``pid`` has exited (fails after PATIENCE)."""
    with trio.fail_after(PATIENCE):
        while alive(pid):
            await trio.sleep(0.05)
