"""SIGHUP: apply the config file's reloadable settings to a running server.

Connections stay open: each part that reads a reloadable setting is changed in
place (the REST rate limiter, the login guard, the outbound URL policy, the
trusted proxies, the log level, the TLS certificate for new connections). Every
other setting is read once at start; a change to one is logged as needing a
restart. Everything is checked before anything is applied, so a bad file or a
certificate that does not load leaves the running settings as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from relay.app import RelayHandle
from relay.config import Config, ConfigError
from relay.http import HttpApi
from relay.http.proxy import parse_trusted
from relay.loginguard import GuardLimits
from relay.tls import server_context

log = logging.getLogger("relay.reload")

RELOADABLE = frozenset({
    "log_level",
    "api_rate_burst", "api_rate_per_minute", "api_rate_max", "api_rate_exempt",
    "webhook_allow",
    "login_fail_max", "login_fail_window", "login_block_time",
    "login_account_fail_max", "login_account_window",
    "api_trusted_proxies",
    # The certificate (and key) files are read again even when their names are
    # unchanged: a renewal replaces the files' contents.
    "tls_cert", "tls_key",
})
TLS_FILES = frozenset({"tls_cert", "tls_key"})


def changed_settings(old: Config, new: Config) -> list[str]:
    return [name for name in Config.field_names() if getattr(old, name) != getattr(new, name)]


def log_level_number(level: str) -> int:
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ConfigError(f"unknown log_level {level!r}")
    return number


def reload(handle: RelayHandle, current: Config, load: Callable[[], Config]) -> Config:
    """Read the configuration again (``load``) and apply what can be; the settings
    now in force (``current`` unchanged when the new ones cannot be used)."""
    try:
        new = load()
        level = log_level_number(new.log_level)
        if handle.ssl_context is not None:
            if not (new.tls_cert and new.tls_key):
                raise ConfigError("TLS cannot be turned off by a reload (needs a restart)")
            server_context(new.tls_cert, new.tls_key)  # loads: fails here, not half-applied
    except (ConfigError, OSError, ValueError) as exc:
        log.error("reload: configuration not changed: %s", exc)
        return current
    # Without TLS running there is no context to load a certificate into.
    reloadable = RELOADABLE if handle.ssl_context is not None else RELOADABLE - TLS_FILES
    changed = changed_settings(current, new)
    for name in changed:
        if name not in reloadable:
            log.warning("reload: setting %s changed: needs a restart", name)
    if handle.ssl_context is not None:
        try:
            # New connections get the new certificate; open ones keep their session.
            handle.ssl_context.load_cert_chain(new.tls_cert, new.tls_key)
        except (OSError, ValueError) as exc:  # the files changed again since the check
            log.error("reload: configuration not changed: TLS certificate: %s", exc)
            return current
    logging.getLogger().setLevel(level)
    services = handle.services
    services.login_guard.reconfigure(GuardLimits.from_config(new),
                                     exempt=new.api_rate_exempt.split(","))
    api = services.http_api
    if isinstance(api, HttpApi):
        api.limiter.reconfigure(new.api_rate_burst, new.api_rate_per_minute, new.api_rate_max,
                                exempt=new.api_rate_exempt.split(","))
        api.trusted_proxies = parse_trusted(new.api_trusted_proxies)
    if services.push is not None:
        services.push.policy.reconfigure(new.webhook_allow)
    applied = [name for name in changed if name in reloadable]
    log.info("reload: configuration reloaded (changed: %s)", ", ".join(applied) or "nothing")
    # The others keep their running values until a restart (and are reported again).
    return current.updated({name: getattr(new, name) for name in reloadable})
