"""Server configuration: defaults, the TOML file and command-line overrides, in that order."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs

from relay import __version__
from relay.store.settings import DEFAULTS as STORE


class ConfigError(Exception):
    """A configuration file or value the server cannot use (one-line reason)."""


@attrs.define
class Config:
    db: str = "ovms-relay.db"
    host: str = "0.0.0.0"
    v2_port: int = 6867
    http_port: int = 6868
    # TLS listeners (v2 on v2_tls_port, REST on https_port) run only when both a
    # certificate and its key are given ("" = not configured); see docs/tls.md.
    tls_cert: str = ""
    tls_key: str = ""
    v2_tls_port: int = 6870
    https_port: int = 6869
    # A TLS handshake is a few round trips; a peer that has not finished it by then
    # is a port scanner, a plain-TCP client or a stuck connection.
    tls_handshake_timeout: float = 10.0
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
    purge_interval: float = STORE.purge_interval
    # A login's or REST call's database read (or a write it waits for) fails after
    # this: with a full disk, clients get an error (REST 503) instead of hanging.
    store_timeout: float = STORE.read_timeout
    # Latest messages stored per vehicle: distinct codes and total data size (counted
    # in characters: bytes for the ASCII cars send). Real cars use ~15 codes and a few
    # KB; beyond these a message is relayed but not stored.
    max_stored_codes: int = STORE.max_stored_codes
    max_stored_bytes: int = STORE.max_stored_bytes
    # Groups (``G`` subscriptions of a client, ``g`` memberships of a car) per connection,
    # and the length of a group name and of a car's group data; beyond: refused, logged.
    max_groups: int = 32
    max_group_name: int = 64
    max_group_data: int = 4096
    # --- cluster mode (docs/cluster-bus.md): relay processes share a NATS bus ---
    bus: str = ""  # nats://HOST:PORT; "" = one process, no bus
    node_id: str = ""  # this process's name on the bus; "" = host name and process id
    bus_prefix: str = "ovms"  # every subject starts with this (one cluster per prefix)
    bus_heartbeat: float = 2.0  # a node beats this often ...
    bus_timeout: float = 10.0  # ... and loses its cars and clients when silent this long
    bus_republish: float = 30.0  # cars and counts are announced again this often
    bus_login_wait: float = 1.0  # a car's Z waits this long at most for other nodes' counts
    # --- worker processes (docs/cluster.md) ---
    # 0: serve in this process. N >= 1: a supervisor runs N worker processes sharing the
    # ports (SO_REUSEPORT) and restarts any that dies; more than 1 needs the bus.
    workers: int = 0
    # Listeners set SO_REUSEPORT (workers do): other processes may share their ports.
    reuse_port: bool = False
    server_version: str = f"ovms-relay-{__version__}"
    demo: bool = False
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line (relay/logjson.py)
    # --- REST API (docs/rest-api.md) ---
    http_host: str = ""  # "" = same as host
    # A vehicle registration (GET /api/vehicle/<id>: an app, the car in fast mode) of a
    # session unused this long ends (the public server's timeout_api), and with it a
    # cookie-less caller's implicit session.
    api_idle_timeout: float = 120.0
    # A cookie login unused this long ends (sliding): clients poll every few minutes.
    api_session_timeout: float = 24 * 3600.0
    # In a cluster, how often a node confirms with the database a cookie session it holds
    # (catches an end whose bus notice was lost, a password changed elsewhere).
    api_session_recheck: float = 10.0
    # Bound on waiting for the car's answer to a control command (then 504).
    command_timeout: float = 30.0
    # Per client address: a burst quota, refilled per minute up to a cap (0 = no limit).
    api_rate_burst: int = 120
    api_rate_per_minute: int = 60
    api_rate_max: int = 240
    # Comma-separated reverse-proxy addresses whose X-Forwarded-For names the client.
    api_trusted_proxies: str = ""
    api_rate_exempt: str = ""  # comma-separated client addresses never limited (a local broker)
    # GET /metrics answers only these comma-separated addresses or networks (CIDR), 403
    # to others: the figures show how busy the server is. Default: this host only.
    metrics_allow: str = "127.0.0.1,::1"
    # Successful password checks are remembered this long: argon2 costs ~50 ms per check.
    api_auth_cache_ttl: float = 60.0
    # --- failed logins, v2 and REST together (relay/loginguard.py; 0 = no limit) ---
    # Per client address (IPv6: per /64): this many failures within the window block
    # every login from it, unchecked, for login_block_time. api_rate_exempt is exempt.
    login_fail_max: int = 20
    login_fail_window: float = 60.0
    login_block_time: float = 60.0
    # Per account (owner, or vehicle for scheme 0), from any addresses: this many
    # failures within the window lock it for as long, except from addresses it
    # logged in from before. Above what one address can reach alone.
    login_account_fail_max: int = 200
    login_account_window: float = 300.0
    # Argon2 checks running at once (each takes 64 MiB for ~50 ms); more wait.
    password_hash_concurrency: int = STORE.hash_concurrency
    api_keepalive_timeout: float = 60.0  # an idle keep-alive connection is closed after this
    api_request_timeout: float = 30.0  # a started request must be complete within this
    mqtt_superuser: str = ""  # /mqapi: this user may use every topic ("" = none)
    # OVMS v3 modules through a broker (docs/ovms-v3.md): mqtt://USER:PW@HOST:PORT or
    # mqtts://, the relay's own (superuser) account; "" = off. Holds a password.
    mqtt: str = attrs.field(default="", repr=False)
    mqtt_prefix: str = "ovms"  # modules publish under <prefix>/<owner>/<vehicle id>/
    # A persistent broker session: notifications and records published while the
    # relay is down wait in the broker, and a record is acknowledged after its commit.
    mqtt_persistent: bool = True
    # --- web console (docs/console.md) ---
    # Map tiles for the console's maps, e.g. "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
    # "" = no tiles: tracks and positions draw on a plain background.
    console_tile_url: str = ""
    # --- push notifications (docs/push.md) ---
    # URL prefixes users' webhook/ntfy URLs may use besides https:// to public addresses.
    webhook_allow: list[str] = attrs.field(factory=list)
    push_workers: int = 4
    # Notifications waiting for the intake task; beyond this a burst is dropped (logged).
    push_queue_size: int = 1000
    push_timeout: float = 15.0  # one delivery attempt
    push_retry_base: float = 5.0  # first retry after this, doubling each time
    push_retry_max: float = 600.0
    push_max_attempts: int = 10
    push_expire: float = 24 * 3600.0  # an undelivered notification is dropped after this
    push_history: float = 30 * 86400.0  # *-Log-Notification records are kept this long
    expo_url: str = "https://exp.host/--/api/v2/push/send"
    expo_access_token: str = ""
    fcm_credentials: str = ""  # service-account JSON file; empty: fcm disabled
    fcm_url: str = "https://fcm.googleapis.com"
    fcm_token_url: str = ""  # empty: the service account's token_uri
    apns_key_file: str = ""  # the .p8 key; empty: apns disabled
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_topic: str = "com.openvehicles.ovms"
    apns_url: str = "https://api.push.apple.com"
    apns_sandbox_url: str = "https://api.sandbox.push.apple.com"
    ntfy_server: str = "https://ntfy.sh"
    smtp_host: str = ""  # empty: mail disabled
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = attrs.field(default="", repr=False)
    smtp_from: str = "ovms-relay@localhost"
    smtp_starttls: bool = False
    # --- API v4 (docs/api-v4.md) ---
    trip_end_after: float = 300.0  # a trip ends once the ignition has been off this long
    trip_max_silence: float = 3600.0  # ... or the car silent this long with the ignition on
    telemetry_interval: float = 60.0  # at most one telemetry sample per vehicle this often
    telemetry_retention: float = 30 * 86400.0  # samples older than this are purged
    monitor_tick: float = 60.0  # monitors are also evaluated this often (time windows)
    monitor_max: int = 50  # monitors per vehicle
    callback_timeout: float = 10.0  # one monitor callback attempt
    callback_queue_size: int = 1000  # callbacks waiting for a worker; beyond: dropped (logged)
    callback_workers: int = 4
    v4_queue_size: int = 10000  # car messages waiting for the v4 engine; beyond: dropped
    remote_action_ttl: float = 3600.0  # a finished remote action stays pollable this long
    remote_action_max: int = 10000  # remote actions kept in memory at most

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
            elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                # List settings (webhook_allow): a list of strings, or one string.
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, str) for v in value
                ):
                    raise ConfigError(f"setting {name!r} must be a list of strings")
                value = list(value)
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
