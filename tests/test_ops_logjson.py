"""Issue 15, JSON logs: ``--log-format json`` writes one object per line, the text
line's fields, through the same redaction, escaping and rate limit."""

from __future__ import annotations

import io
import json
import logging
import signal
import socket
import subprocess
import sys

import pytest

from relay import logsafe
from relay.logjson import JsonFormatter
from tests.test_cli_serve import read_until


def _json_logger(stream: io.StringIO) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logsafe.install(handler)
    logger = logging.getLogger("relay.test_ops_logjson")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def test_json_lines_are_redacted_escaped_and_keep_the_traceback() -> None:
    """Issue 15 (JSON logs): the safety filters apply before the JSON encoding."""
    stream = io.StringIO()
    log = _json_logger(stream)
    log.info("car sent %r then %s", "MP-A 1 demo hunter2", "\x1b[31mred")
    try:
        raise ValueError("bad password=hunter2")
    except ValueError:
        log.exception("it failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "relay.test_ops_logjson"
    assert "hunter2" not in first["message"] and "\\x1b" in first["message"]
    assert second["message"] == "it failed" and second["level"] == "ERROR"
    assert "Traceback" in second["exception"] and "ValueError" in second["exception"]
    assert "hunter2" not in second["exception"]


def test_json_lines_are_rate_limited() -> None:
    """Issue 15 (JSON logs): one line repeated in a flood is cut like a text line."""
    stream = io.StringIO()
    log = _json_logger(stream)
    for _ in range(50):
        log.warning("same line from a peer")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert 1 < len(lines) < 50


@pytest.mark.trio
async def test_serve_log_format_json(empty_db: str) -> None:
    """Issue 15 (JSON logs): the real CLI, every stderr line JSON, a request line's
    password redacted."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "relay", "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0", "--db", empty_db, "--log-format", "json",
         "--log-level", "DEBUG"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, match = await read_until(proc, r"REST API on port (\d+)")
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=5) as sock:
            sock.sendall(b"GET /api/cookie?username=demo&password=hunter2 HTTP/1.1 x\r\n\r\n")
            sock.recv(1000)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    entries = [json.loads(line) for line in err.splitlines()]
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
    messages = [e["message"] for e in entries]
    assert any("bad request" in m and "password=***" in m for m in messages), messages
    assert "hunter2" not in err
    assert any("received SIGTERM" in m for m in messages)
