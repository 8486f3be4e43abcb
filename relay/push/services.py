"""Building the senders from the configuration, and owning their HTTP clients.

A service without credentials configured (fcm, apns, mail) is simply absent:
its subscriptions are stored but skipped at delivery, with a log line. A
configured one whose key cannot be loaded is an error at startup, because the
operator meant to use it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from relay.config import Config, ConfigError
from relay.outbound.client import open_client
from relay.outbound.urlpolicy import UrlPolicy
from relay.push.apns import ApnsKeyError, ApnsSender, ApnsSettings, load_key
from relay.push.base import Sender
from relay.push.expo import ExpoSender
from relay.push.fcm import CredentialsError, FcmSender, ServiceAccount
from relay.push.mail import MailSender, SmtpSettings
from relay.push.ntfy import NtfySender
from relay.push.webhook import WebhookSender
from relay.store import Store

log = logging.getLogger("relay.push")


def _client(config: Config, *, http2_only: bool = False) -> httpx.AsyncClient:
    return open_client(timeout=config.push_timeout,
                       max_connections=max(4, config.push_workers * 2), http2_only=http2_only)


@asynccontextmanager
async def open_senders(
    config: Config, store: Store, policy: UrlPolicy
) -> AsyncIterator[dict[str, Sender]]:
    try:
        account = ServiceAccount.load(config.fcm_credentials) if config.fcm_credentials else None
        apns_key = load_key(config.apns_key_file) if config.apns_key_file else None
    except (CredentialsError, ApnsKeyError) as exc:
        raise ConfigError(str(exc)) from None
    if apns_key is not None and not (config.apns_key_id and config.apns_team_id):
        raise ConfigError("apns_key_file needs apns_key_id and apns_team_id")
    async with _client(config) as client, _client(config, http2_only=True) as h2_client:
        senders: dict[str, Sender] = {
            "webhook": WebhookSender(client, policy, store),
            "ntfy": NtfySender(client, policy, config.ntfy_server),
            "expo": ExpoSender(client, config.expo_url, config.expo_access_token),
        }
        if account is not None:
            fcm = FcmSender(client, account, config.fcm_url, config.fcm_token_url)
            senders["fcm"] = senders["gcm"] = fcm  # the OVMS Android app says "gcm"
        if apns_key is not None:
            senders["apns"] = ApnsSender(h2_client, ApnsSettings(
                apns_key, config.apns_key_id, config.apns_team_id, config.apns_topic,
                config.apns_url, config.apns_sandbox_url,
            ))
        if config.smtp_host:
            senders["mail"] = MailSender(SmtpSettings(
                config.smtp_host, config.smtp_port, config.smtp_from, config.smtp_user,
                config.smtp_password, config.smtp_starttls, config.push_timeout,
            ))
        yield senders
