"""One server per database file: an advisory lock beside it that names the holder's pid.

SQLite itself would let two servers share the file, but each keeps caches and a
hub of its own, so apps on one would never see cars on the other and caches
would go stale. A second ``serve`` on the same file is refused with one line.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType


class DatabaseInUse(Exception):
    """Another running server holds the database (one-line reason)."""


class DatabaseLock:
    """Held for the server's lifetime: ``with DatabaseLock(path): ...``."""

    def __init__(self, db_path: str) -> None:
        self.path = Path(db_path).with_name(Path(db_path).name + ".lock")
        self.db_path = db_path
        self._fd: int | None = None

    def __enter__(self) -> DatabaseLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise DatabaseInUse(
                f"database {self.db_path} is in use by another ovms-relay server (pid {holder})"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The file stays: unlinking it could let a server that opened it just now lock
        # a file nobody else sees. Its content is rewritten by the next holder.
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
