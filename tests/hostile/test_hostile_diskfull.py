"""Issue 9 defect 5: a full disk fails writes, not logins or REST reads.

The database lives on a small tmpfs (needs root; skipped otherwise), which is
filled while a car sends acked historical records.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.conftest import StartRelay, copy_db, sqlite_only
from tests.hostile.store_outage import logins_and_reads
from tools.v2client import V2Client

pytestmark = sqlite_only("a SQLite file on a full tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs, unmounted when the test (and the relay it started) is done."""
    if os.geteuid() != 0:
        pytest.skip("disk-full test needs root to mount a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path: Path) -> None:
    """Write ``path`` until the file system has no byte left."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]


async def acks(car: V2Client, wanted: set[int]) -> set[int]:
    got: set[int] = set()
    while not wanted <= got:
        msg = await car.receive()
        if msg.code == "h":
            got.add(int(msg.data))
    return got


async def test_full_disk_fails_writes_not_logins(
    small_disk: Path, start_relay: StartRelay, template_db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9 defect 5: with the disk full, logins and REST still answer, no h record
    is acked until it is committed, and once space is freed every write resumes."""
    caplog.set_level(logging.WARNING, logger="relay.store")
    db_path = small_disk / "relay.db"
    copy_db(template_db, db_path)
    relay = await start_relay(db=str(db_path), store_timeout=2.0)
    store = relay.handle.store
    filler = small_disk / "filler"
    car = await relay.car()
    try:
        for n in range(1, 6):
            await car.send("h", f"{n},0,*-LOG-Disk,{n},86400,record {n}")
        with trio.fail_after(10):
            acked = await acks(car, {1, 2, 3, 4, 5})

        fill(filler)
        for n in range(6, 11):
            await car.send("h", f"{n},0,*-LOG-Disk,{n},86400,record {n} " + "x" * 2000)
        with trio.fail_after(10):  # guards against hanging, not timing assertions
            while not store.writes_failing:
                await trio.sleep(0.01)
            assert not [m for m in await car.drain(0.3) if m.code == "h"]  # not committed

            # Logins and reads go on; historical reads follow the stuck writes.
            _, historical = await logins_and_reads(relay)
            assert historical.status_code in (200, 503), historical.text
            assert store.writes_failing

        filler.unlink()
        with trio.fail_after(10):
            acked |= await acks(car, set(range(6, 11)))
        assert not store.writes_failing
    finally:
        filler.unlink(missing_ok=True)
        await car.aclose()
    await store.flush()
    rows = sqlite3.connect(db_path).execute(
        "SELECT recordnumber FROM historical WHERE htype='*-LOG-Disk'").fetchall()
    assert acked <= {r[0] for r in rows}
    lines = [r.getMessage() for r in caplog.records]
    assert len([x for x in lines if "writes failing" in x]) == 1, lines
    assert len([x for x in lines if "writes work again" in x]) == 1, lines
