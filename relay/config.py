"""Server configuration: defaults, the TOML file and command-line overrides, in that order."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from relay import __version__


class ConfigError(Exception):
    """A configuration file or value the server cannot use (one-line reason)."""


@attrs.define
class Config:
    db: str = "ovms-relay.db"
    host: str = "0.0.0.0"
    v2_port: int = 6867
    http_port: int = 6868
    # Scheme 1 sends the account password in clear; refuse it on plain TCP unless told.
    allow_plain_login: bool = False
    welcome_timeout: float = 30.0
    car_timeout: float = 16 * 60.0
    app_timeout: float = 20 * 60.0
    batch_timeout: float = 5 * 60.0
    # PROTOCOL.md section 6: ping a car we have sent nothing for 15 min, at most every 5 min.
    car_ping_after: float = 15 * 60.0
    car_ping_every: float = 5 * 60.0
    sweep_interval: float = 10.0
    # Per-connection outbound queue, in messages. An app replay is ~10 messages and a
    # busy car sends a few per second, so 1000 is minutes of backlog: a client that
    # far behind is stalled, not slow, and is disconnected.
    outbox_size: int = 1000
    tcp_keepalive: bool = True
    # Historical records with ack ("h") a car may have in flight before its reads pause.
    max_pending_acks: int = 256
    purge_interval: float = 3600.0
    server_version: str = f"ovms-relay-{__version__}"
    demo: bool = False
    log_level: str = "INFO"

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in attrs.fields(cls)]

    def updated(self, values: dict[str, Any]) -> Config:
        """A copy with ``values`` applied (None values ignored), type-checked per field."""
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            field = attrs.fields_dict(type(self)).get(name)
            if field is None:
                raise ConfigError(f"unknown setting {name!r}")
            default = field.default
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ConfigError(f"setting {name!r} must be true or false")
            elif isinstance(default, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ConfigError(f"setting {name!r} must be a number")
                value = type(default)(value)
            elif isinstance(default, str) and not isinstance(value, str):
                raise ConfigError(f"setting {name!r} must be a string")
            changes[name] = value
        return attrs.evolve(self, **changes)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, or the same keys under ``[relay]``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.pop("relay", {})
    if not isinstance(section, dict):
        raise ConfigError("[relay] in the config file must be a table")
    data.update(section)
    return {k.replace("-", "_"): v for k, v in data.items()}
