"""A real MariaDB for the import tests, and a fresh database on it per test module.

Found in this order: ``$OVMS_TEST_MYSQL`` (a ``mysql://USER[:PW]@HOST[:PORT]/``
URL), a server at ``mysql://root@127.0.0.1:3306/``, or one started here
(``mariadb-install-db`` + ``mariadbd`` in a temporary directory on a free port).
Without any, the tests are skipped with one line saying what is missing, or fail
if ``OVMS_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tools.bench_server import free_port

LOCAL_URL = "mysql://root@127.0.0.1:3306/"


def unavailable(reason: str) -> None:
    if os.environ.get("OVMS_REQUIRE_SERVICES") == "1":
        pytest.fail(f"MariaDB required (OVMS_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"no MariaDB: {reason}")


def _connect(url: str, database: str | None = None, timeout: int = 3) -> Any:
    import pymysql

    parts = urllib.parse.urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
        user=urllib.parse.unquote(parts.username or "root"),
        password=urllib.parse.unquote(parts.password or ""), database=database,
        charset="utf8mb4", connect_timeout=timeout, autocommit=True,
    )


def _reachable(url: str) -> bool:
    try:
        _connect(url, timeout=2).close()
    except Exception:
        return False
    return True


@contextmanager
def _own_server() -> Iterator[str | None]:
    install, server = shutil.which("mariadb-install-db"), shutil.which("mariadbd")
    if server is None:
        server = shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    if install is None or server is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="ovms-mariadb-") as tmp:
        data = Path(tmp) / "data"
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([install, "--no-defaults", f"--datadir={data}", "--skip-test-db",
                        "--auth-root-authentication-method=normal", *user],
                       check=True, capture_output=True, timeout=120)
        port = free_port()
        proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={data}", f"--socket={tmp}/sock",
             f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve",
             f"--pid-file={tmp}/pid", *user],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        url = f"mysql://root@127.0.0.1:{port}/"
        try:
            deadline = time.monotonic() + 60
            while not _reachable(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    yield None
                    return
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@contextmanager
def mariadb_url() -> Iterator[str]:
    """A server URL (no database), or skip/fail."""
    try:
        import pymysql  # noqa: F401
    except ImportError:
        unavailable("PyMySQL is not installed (pip install -e '.[test]')")
    explicit = os.environ.get("OVMS_TEST_MYSQL")
    if explicit:
        if not _reachable(explicit):
            unavailable(f"OVMS_TEST_MYSQL={_without_password(explicit)} does not answer")
        yield explicit
        return
    if _reachable(LOCAL_URL):
        yield LOCAL_URL
        return
    with _own_server() as url:
        if url is None:
            unavailable("no server at 127.0.0.1:3306, OVMS_TEST_MYSQL unset, and "
                        "mariadb-install-db/mariadbd not installed or not starting")
        assert url is not None
        yield url


def _without_password(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def fresh_database(server_url: str) -> Iterator[tuple[str, Any]]:
    """A new database with a unique name: (its mysql:// URL, a connection to it); dropped after."""
    name = f"ovms_import_test_{uuid.uuid4().hex[:12]}"
    admin = _connect(server_url)
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8")
        conn = _connect(server_url, database=name)
        try:
            parts = urllib.parse.urlsplit(server_url)
            yield urllib.parse.urlunsplit(parts._replace(path=f"/{name}")), conn
        finally:
            conn.close()
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.close()
