"""Issue 9 defects 11 and 14: no credentials, no control characters and no floods in the log."""

from __future__ import annotations

import errno
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from protocol import ClientType, Message
from relay import logsafe
from relay.lograte import RateLimitFilter
from tests.conftest import PASSWORD, RelayUnderTest, StartRelay
from tests.hostile.net_health import send_and_drain
from tests.test_cli_serve import read_until, serve
from tools.v2client import LoginRefused, V2Client

SECRET = PASSWORD  # the test account's password: it must never show in a log line
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def safe_capture(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[..., None]]:
    """Capture at DEBUG through the filters the CLI installs on its handler.

    pytest shares one capture handler between tests: the filters come off again after.
    """

    def install(**kwargs: Any) -> None:
        caplog.set_level(logging.DEBUG)
        logsafe.install(caplog.handler, **kwargs)

    yield install
    for log_filter in list(caplog.handler.filters):
        if isinstance(log_filter, (logsafe.SafeLineFilter, RateLimitFilter)):
            caplog.handler.removeFilter(log_filter)


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)


# --------------------------------------------------------------------------- defect 11


BAD_REQUESTS = (
    # h11: "illegal request line", quoting the line with its query string.
    f"GET /api/vehicles?username=demo&password={SECRET} HTTP/1.1 junk\r\nHost: x\r\n\r\n",
    # A v2 client on the REST port: the scheme 1 welcome is a request line h11 refuses.
    f"MP-A 1 demo {SECRET} DEMO\r\n\r\n",
    # A header h11 refuses, with the credentials in it.
    f"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {SECRET}\x01\r\n\r\n",
    f"GET / HTTP/1.1\r\nHost: x\r\nX-Info : password={SECRET}\r\n\r\n",
)


async def test_rejected_requests_leave_no_password_in_debug_log(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture,
    safe_capture: Callable[..., None],
) -> None:
    """Issue 9 defect 11: h11's error text quotes what it refused, password included;
    every line is redacted at every level."""
    safe_capture()
    port = relay.handle.http_port
    assert port is not None
    for request in BAD_REQUESTS:
        answer = await send_and_drain(await trio.open_tcp_stream("127.0.0.1", port),
                                      request.encode("latin-1"))
        assert answer.startswith(b"HTTP/1.1 "), answer[:60]
    logged = everything_logged(caplog)
    assert "illegal request line" in logged  # h11's message did reach the log
    assert "password=***" in logged and "MP-A 1 demo ***" in logged
    assert SECRET not in logged


async def test_secrets_in_library_records_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
    safe_capture: Callable[..., None],
) -> None:
    """Issue 9 defect 11: library loggers (h11, httpx, wsproto), arguments and exception
    texts are all covered, not only our own message templates."""
    safe_capture()
    logging.getLogger("httpx").debug("HTTP Request: GET %s", f"http://h/x?token={SECRET}")
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 200 OK"',
                                    f"https://ntfy.example/{SECRET}-topic")
    logging.getLogger("wsproto").info("%r", {"password": SECRET, "user": "demo"})
    logging.getLogger("relay.x").info("push to https://user:%s@example.org/hook", SECRET)
    try:
        raise ValueError(f"bad line MP-C 0 token {SECRET} DEMO")
    except ValueError:
        logging.getLogger("h11").exception("failed: carpass=%s", SECRET)
    logged = everything_logged(caplog)
    assert SECRET not in logged
    # Issue 10 item 10: outbound URLs keep scheme and host, the rest becomes a short hash.
    assert re.search(r"GET http://h/#[0-9a-f]{8}\b", logged)
    assert re.search(r"POST https://ntfy\.example/#[0-9a-f]{8} ", logged)
    assert "'password': '***'" in logged
    assert "user:***@example.org" in logged and "MP-C 0 token ***" in logged
    assert "carpass=***" in logged


@pytest.mark.parametrize(("text", "expected"), [
    ("GET /?username=a&password=p%40ss&x=1", "GET /?username=a&password=***&x=1"),
    ("Cookie: ovmsapisession=abc123", "Cookie: ovmsapisession=***"),
    ("new_password=abc old_password=def", "new_password=*** old_password=***"),
    ('{"apikey": "k\\"ey", "n": "v"}', '{"apikey": "***", "n": "v"}'),
    ("Authorization: Bearer eyJ.abc.def", "Authorization: Bearer ***"),
    ("AP-C 0 APKEY123", "AP-C 0 ***"),
    ("MP-S 0 servertoken serverdigest", "MP-S 0 servertoken ***"),
    ("vehicle=DEMO user=demo", "vehicle=DEMO user=demo"),
])
def test_redaction_patterns(text: str, expected: str) -> None:
    """Issue 9 defect 11: what counts as a credential, and what stays readable."""
    assert logsafe.redact(text) == expected


# --------------------------------------------------------------------------- defect 14


def test_control_characters_are_escaped() -> None:
    """Issue 9 defect 14: ESC, CR, LF, NUL, DEL, C1, separators, bidi overrides and lone
    surrogates (undecodable car bytes) come out as escapes; ordinary text is untouched."""
    assert logsafe.escape("a\x1b[2Jb\rc\nd\x00\x7f\x9b\u2028\u202e\udcff é€") == (
        "a\\x1b[2Jb\\rc\\nd\\x00\\x7f\\x9b\\u2028\\u202e\\udcff é€")
    assert logsafe.escape("tb\n  line\r", keep_newlines=True) == "tb\n  line\\r"


async def test_welcome_fields_with_esc_and_cr_are_escaped(
    relay: RelayUnderTest, caplog: pytest.LogCaptureFixture,
    safe_capture: Callable[..., None],
) -> None:
    """Issue 9 defect 14: a welcome whose fields hold ESC and CR cannot color, overwrite or
    forge log lines."""
    safe_capture()
    for welcome in (b"MP-A 0 tok\x1b[31m digest DEMO\x1b]0;pwned\x07\r\n",
                    b"MP-A 0 tok digest X\rFAKE 2099 INFO relay: ok\r\n",
                    b"MP-\x1b 0 a b c\r\n"):
        await send_and_drain(await relay.raw(), welcome, limit=5)
    records = caplog.records
    assert any(r.name.startswith("relay") for r in records)
    for record in records:
        assert not RAW_CONTROL.search(record.getMessage()), record.getMessage()


async def test_flooding_app_gives_a_bounded_number_of_lines(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture,
    safe_capture: Callable[..., None],
) -> None:
    """Issue 9 defect 14: one app flooding commands at a car that does not read logged
    one warning per command (296 here); now at most ``burst`` lines of a kind."""
    safe_capture(burst=5)
    relay = await start_relay(outbox_size=10)
    car = await relay.car()
    app = await relay.app()
    flood = b"".join(app.session.send(Message("C", "7,stat")) for _ in range(300))
    await app.stream.send_all(flood)
    assert await app.closed_by_server()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 5, warnings
    await car.aclose()


def make_record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_rate_limit_counts_lines_and_kinds_and_summarises() -> None:
    """Issue 9 defect 14: the same line passes ``burst`` times per interval, a kind of
    line (one template) ``template_burst`` times; one summary counts the rest
    (injected clock: no sleeping)."""
    now = [100.0]
    summaries: list[logging.LogRecord] = []
    limiter = RateLimitFilter(summaries.append, burst=3, template_burst=50, interval=60.0,
                              clock=lambda: now[0])
    same = [limiter.filter(make_record("relay.hub", "%s: flooding", "conn=1"))
            for _ in range(1000)]
    assert same[:3] == [True] * 3 and same.count(True) == 3
    # The same template with other values: its own budget, then the kind's is used up.
    others = [limiter.filter(make_record("relay.hub", "%s: flooding", f"conn={i}"))
              for i in range(2, 200)]
    assert others[:47] == [True] * 47 and others.count(True) == 47
    # Another template or logger is another kind, with its own budget.
    assert limiter.filter(make_record("relay.hub", "%s: other", "x"))
    assert limiter.filter(make_record("trio.serve_listeners", "%s: flooding", "x"))
    assert summaries == []
    now[0] += 59.9
    assert not limiter.filter(make_record("relay.hub", "%s: flooding", "conn=1"))
    now[0] += 0.1
    assert limiter.filter(make_record("relay.hub", "%s: flooding", "conn=1"))
    assert sorted(s.getMessage() for s in summaries) == [
        "suppressed 151 more lines like '%s: flooding' in the last 60 s",
        "suppressed 998 more lines like 'conn=1: flooding' in the last 60 s",
    ]
    assert {(s.name, s.levelno) for s in summaries} == {("relay.hub", logging.WARNING)}
    # Summaries are never themselves limited.
    assert limiter.filter(summaries[0])


def test_rate_limit_memory_is_bounded() -> None:
    """Issue 9 defect 14: a stream of distinct lines cannot grow the filter's tables."""
    limiter = RateLimitFilter(lambda _r: None, burst=1, template_burst=10**9,
                              clock=lambda: 0.0)
    for i in range(5000):
        assert limiter.filter(make_record("relay.x", f"preformatted {i}"))
    assert len(limiter._lines) <= 1024 and len(limiter._kinds) <= 1025


class _ExhaustedListener(trio.abc.Listener[trio.SocketStream]):
    """A listener at the process's fd limit: every accept fails with EMFILE."""

    async def accept(self) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        raise OSError(errno.EMFILE, "Too many open files")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_accept_errors_at_fd_limit_are_rate_limited(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture,
    safe_capture: Callable[..., None],
) -> None:
    """Issue 9 defect 14: trio's serve_listeners logs a traceback per failed accept and
    retries every 0.1 s: 1,500 lines in 150 s at the fd limit. Through the filters:
    at most ``burst`` a minute, plus one summary a minute."""
    safe_capture(clock=trio.current_time)

    async def never_called(stream: trio.SocketStream) -> None:
        raise AssertionError("no connection was accepted")

    with trio.move_on_after(150):
        await trio.serve_listeners(never_called, [_ExhaustedListener()])
    lines = [r for r in caplog.records if r.name == "trio.serve_listeners"]
    summaries = [r for r in lines if r.getMessage().startswith("suppressed")]
    assert len(lines) - len(summaries) <= 10 * 3
    assert len(summaries) == 2  # after the first and second minute
    assert "suppressed 590 more lines" in summaries[0].getMessage()
    assert all(r.exc_text is None or "EMFILE" in r.getMessage() for r in lines)


# --------------------------------------------------------------------------- the CLI


async def test_cli_log_has_no_password_and_no_control_characters(empty_db: str) -> None:
    """Issue 9 defects 11 and 14: ``ovms-relay serve --log-level DEBUG`` installs the
    filters on its handler: what a client sent is written redacted and escaped."""
    proc = serve("--db", empty_db, "--demo", "--log-level", "DEBUG")
    try:
        lines, _ = await read_until(proc, r"v2 protocol on")
        text = "".join(lines)
        password = re.search(r"password: (\S+)", text)
        assert password
        http_port = int(re.search(r"REST API on port (\d+)", text).group(1))  # type: ignore[union-attr]
        request = (f"GET /api/vehicles?username=demo&password={password.group(1)} HTTP/1.1 x"
                   "\r\n\r\n").encode()
        await send_and_drain(await trio.open_tcp_stream("127.0.0.1", http_port), request)
        await send_and_drain(await trio.open_tcp_stream("127.0.0.1", http_port),
                             b"GET /\x1b[31m HTTP/1.1\r\n\r\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert "illegal request line" in err
    assert password.group(1) not in err
    assert "password=***" in err
    assert "\x1b" not in err and "\\x1b[31m" in err



async def test_server_at_fd_limit_logs_a_bounded_number_of_lines_and_recovers(
    tmp_path: Path
) -> None:
    """Issue 9 defect 14, for real: a server process with a low RLIMIT_NOFILE, more
    connections than it has descriptors. trio retries accept every 0.1 s and logged a
    traceback each time; now at most ``burst`` such lines, and once the clients leave
    the server accepts again."""
    boot = ("import resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40)); "
            "from relay.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen(
        [sys.executable, "-c", boot, "serve", "--host", "127.0.0.1", "--v2-port", "0",
         "--http-port", "0", "--db", str(tmp_path / "demo.db"), "--demo"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clients: list[trio.SocketStream] = []
    try:
        lines, match = await read_until(proc, r"v2 protocol on [\d.]+:(\d+)")
        port = int(match.group(1))
        carpass = re.search(r"carpass[^:]*: (\S+)", "".join(lines))
        assert carpass
        for _ in range(60):  # the kernel completes these even when accept cannot
            clients.append(await trio.open_tcp_stream("127.0.0.1", port))
        # Long enough for trio's 0.1 s accept retry to have run well past the burst.
        await trio.sleep(2.0)
        assert proc.poll() is None
        for client in clients:
            await client.aclose()
        clients.clear()
        with trio.fail_after(15):
            while True:
                try:
                    car = await V2Client.connect("127.0.0.1", port, "DEMO",
                                                 client_type=ClientType.CAR,
                                                 carpass=carpass.group(1), timeout=2)
                    break
                except (LoginRefused, OSError, trio.TooSlowError):
                    await trio.sleep(0.2)
        assert (await car.receive()).text() == "Z0"
        await car.aclose()
    finally:
        for client in clients:
            await client.aclose()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    accept_errors = [line for line in err.splitlines() if "accept returned EMFILE" in line]
    assert 1 <= len(accept_errors) <= 10, err[-2000:]
