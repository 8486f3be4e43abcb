"""The broker URL of ``--mqtt``: ``mqtt://USER:PW@HOST:PORT`` or ``mqtts://...`` (TLS)."""

from __future__ import annotations

import urllib.parse

import attrs

from relay.config import ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@attrs.frozen
class BrokerUrl:
    host: str
    port: int
    tls: bool = False
    username: str = ""
    password: str = attrs.field(default="", repr=False)

    @classmethod
    def parse(cls, text: str) -> BrokerUrl:
        """The URL's parts; ConfigError (never naming the password) if it is not one."""
        parts = urllib.parse.urlsplit(text.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ConfigError("mqtt must be a URL mqtt://USER:PASSWORD@HOST[:PORT] "
                              "(or mqtts:// for TLS)")
        try:
            port = parts.port or DEFAULT_PORTS[scheme]
        except ValueError:
            raise ConfigError("mqtt: the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ConfigError("mqtt: the URL names no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ConfigError("mqtt: the URL must end after HOST[:PORT] "
                              "(the topic prefix is --mqtt-prefix)")
        return cls(
            host=parts.hostname, port=port, tls=scheme == "mqtts",
            username=urllib.parse.unquote(parts.username or ""),
            password=urllib.parse.unquote(parts.password or ""),
        )

    def redacted(self) -> str:
        """The URL for log lines and errors: the password is never shown."""
        user = f"{urllib.parse.quote(self.username, safe='')}:***@" if self.password else (
            f"{urllib.parse.quote(self.username, safe='')}@" if self.username else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def check_prefix(prefix: str) -> str:
    """The topic prefix, validated: one or more plain topic levels, no wildcards."""
    if not prefix or prefix != prefix.strip("/") or any(c in prefix for c in "+#\0"):
        raise ConfigError("mqtt_prefix must be a topic such as 'ovms': no leading or "
                          "trailing '/', no '+' or '#'")
    if "//" in prefix:
        raise ConfigError("mqtt_prefix must not contain an empty topic level ('//')")
    return prefix
