"""Log lines that are safe to write: no credentials, no control characters, no floods.

Every record a handler writes passes ``SafeLineFilter``: it formats the message with
its arguments, hides credentials in the text (``password=...``, tokens, carpasses, a
scheme 1 welcome's password, URL passwords, bearer tokens, session cookies) and escapes
control characters the way ``repr`` does (``\\x1b``, ``\\r``, ``\\n``), so what a peer
sent can neither color, overwrite nor forge lines. It sees library records too (h11's
"illegal request line" quotes the request line, query string and all), which is why
it sits on the handler and not on our loggers; in the HTTP client's lines every URL
becomes ``redact_url``'s form (push and webhook URLs are secrets in themselves), the
same form our own push and callback lines use.
Tracebacks are cleaned the same way, keeping only their own line breaks.

``install`` puts it, after ``relay.lograte.RateLimitFilter``, on a handler; the CLI
does so for the root logger's handlers.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable

from relay.lograte import RateLimitFilter

MASK = "***"
_CLEAN_FLAG = "_relay_safe"

# Parameter, form, cookie and JSON key names whose value is a secret. A name counts
# when it ends in one of these (new_password, carpass, access_token, ovmsapisession).
_SECRET_KEY = (r"[\w.-]*?(?:pass|password|passwd|pwd|passphrase|token|secret|apikey|api_key"
               r"|key|session|sid|signature|sig|credential|credentials|auth|authorization)")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # key=value (query strings, forms, cookies, our own "carpass=..." style).
    (re.compile(rf"(?i)(\b{_SECRET_KEY}=)[^&\s'\"<>]*"), rf"\g<1>{MASK}"),
    # 'key': 'value' and "key": "value" (reprs of dicts, JSON).
    (re.compile(rf"""(?i)(['"]{_SECRET_KEY}['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2"""),
     rf"\g<1>\g<2>{MASK}\g<2>"),
    # HTTP credentials in header form (Authorization: Basic ..., Bearer ...).
    (re.compile(r"(?i)\b(basic|bearer|digest)\s+[A-Za-z0-9._~+/=-]+"), rf"\g<1> {MASK}"),
    # user:password@ in a URL.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@'\"]*:)[^/\s@'\"]*@"), rf"\g<1>{MASK}@"),
    # v2 welcomes: scheme 1 "MP-A 1 <user> <password>", scheme 0 "MP-C 0 <token> <digest>",
    # and the auto-provisioning key of "AP-C 0 <apkey>".
    (re.compile(r"(MP-[A-Za-z] +[01] +\S+ +)\S+"), rf"\g<1>{MASK}"),
    (re.compile(r"(AP-C +\S+ +)\S+"), rf"\g<1>{MASK}"),
)

# The HTTP client logs every request's URL; ours go to push services and webhooks whose
# path or query is the secret (an ntfy topic, a webhook token).
_CLIENT_LOGGERS = ("httpx", "httpcore")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+")
_URL_PARTS = re.compile(r"(?i)([a-z][a-z0-9+.-]*)://(?:[^/?#@]*@)?([^/?#]*)(.*)", re.DOTALL)
# Keyed per process: equal URLs get equal hashes within one run (so lines about one
# target can be followed), but a guessable secret (an ntfy topic is often a word) can't
# be found by hashing candidates.
_URL_HASH_KEY = secrets.token_bytes(16)

# Control characters (C0, DEL, C1), line and paragraph separators, bidirectional
# overrides (they reorder what a terminal shows) and lone surrogates (undecodable car
# bytes kept by surrogateescape; a UTF-8 log stream cannot even write them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_UNSAFE_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def redact_url(url: str) -> str:
    """An outbound URL as it may be logged: scheme, host (and port), a short hash of the rest.

    ``https://ntfy.sh/my-topic`` -> ``https://ntfy.sh/#1a2b3c4d``; a URL with nothing
    after the host stays ``https://ntfy.sh/``. User information is dropped.
    """
    match = _URL_PARTS.fullmatch(url.strip())
    if match is None:
        return "<unparsable URL>"
    scheme, host, rest = match.groups()
    host = escape(host)
    if rest in ("", "/"):
        return f"{scheme.lower()}://{host}/"
    digest = hashlib.blake2b(rest.encode("utf-8", "surrogateescape"), digest_size=4,
                             key=_URL_HASH_KEY).hexdigest()
    return f"{scheme.lower()}://{host}/#{digest}"


def redact_urls(text: str) -> str:
    """``text`` with every URL in it in ``redact_url``'s form."""
    return _URL.sub(lambda match: redact_url(match.group()), text)


def redact(text: str) -> str:
    """``text`` with every credential it visibly carries replaced by ``***``."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


def escape(text: str, *, keep_newlines: bool = False) -> str:
    """Control characters (and the like) as repr-style escapes: one line stays one line."""
    return (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub(_escape_char, text)


def clean(text: str) -> str:
    return escape(redact(text))


class SafeLineFilter(logging.Filter):
    """Redact and escape a record in place (message, arguments, traceback); never drops it.

    The record is changed, not copied, so every handler after this one (and pytest's
    caplog, when installed there) sees the safe version. A filter that raised would
    raise into the code that logged, hence the broad fallbacks.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _CLEAN_FLAG, False):
            return True
        try:
            message = record.getMessage()
        except Exception:
            message = f"unformattable log message {record.msg!r} with {record.args!r}"
        if record.name.startswith(_CLIENT_LOGGERS):
            message = redact_urls(message)
        record.msg = clean(message)
        record.args = None
        try:
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = escape(redact(record.exc_text), keep_newlines=True)
            if record.stack_info:
                record.stack_info = escape(redact(record.stack_info), keep_newlines=True)
        except Exception:
            record.exc_text = "(traceback could not be formatted)"
        setattr(record, _CLEAN_FLAG, True)
        return True


def install(handler: logging.Handler, *, clock: Callable[[], float] = time.monotonic,
            burst: int = 10, template_burst: int = 1200, interval: float = 60.0) -> None:
    """Rate-limit, then clean, every record ``handler`` writes (idempotent)."""
    if any(isinstance(f, SafeLineFilter) for f in handler.filters):
        return
    handler.addFilter(RateLimitFilter(handler.handle, burst=burst,
                                      template_burst=template_burst, interval=interval,
                                      clock=clock))
    handler.addFilter(SafeLineFilter())


def install_on_root() -> None:
    """``install`` on each handler of the root logger (after logging.basicConfig)."""
    for handler in logging.getLogger().handlers:
        install(handler)


__all__ = ["MASK", "SafeLineFilter", "clean", "escape", "install", "install_on_root", "redact",
           "redact_url", "redact_urls"]
