"""The store's records: what its repositories return and take."""

from __future__ import annotations

import sys

import attrs


@attrs.frozen
class OwnerRecord:
    name: str
    password_hash: str = attrs.field(repr=False)
    status: int
    permissions: str


@attrs.frozen
class VehicleRecord:
    vehicleid: str
    # Interned: thousands of cached records and car peers share types and owners.
    owner: str = attrs.field(converter=sys.intern)
    carpass: str = attrs.field(repr=False)
    vtype: str = attrs.field(converter=sys.intern)
    ptoken: str
    name: str = ""  # display name (console, ovms-admin); not in v2 or REST answers


@attrs.frozen
class StoredMessage:
    code: str
    data: str
    msgtime: float
    paranoid: bool
    ptoken: str


@attrs.frozen
class HistoricalSummary:
    htype: str
    distinct_records: int
    total_records: int
    total_size: int
    first: int
    last: int


@attrs.frozen
class HistoricalRecord:
    htype: str
    timestamp: int
    recordnumber: int
    data: str


@attrs.frozen
class UsageDay:
    day: str
    car_rx: int
    car_tx: int
    app_rx: int
    app_tx: int


@attrs.frozen
class PushSubscription:
    vehicleid: str
    appid: str
    owner: str
    pushtype: str
    pushkeytype: str
    pushkeyvalue: str


@attrs.frozen
class PendingPush:
    """One notification waiting for delivery to one subscription (table push_pending)."""

    nid: str
    vehicleid: str
    appid: str
    owner: str
    pushtype: str
    pushkeytype: str
    pushkeyvalue: str = attrs.field(repr=False)  # a device token or a URL: never logged
    alerttype: str
    text: str
    created: float
    expires: float
    attempts: int = 0
    next_try: float = 0.0


@attrs.frozen
class TokenRecord:
    """An API token as stored: only its SHA-256 digest, never the token itself."""

    token_hash: str
    owner: str
    application: str
    purpose: str
    permit: str
    created: float
    lastused: float | None = None


@attrs.frozen
class ProvisionRecord:
    apkey: str
    stoken: str = attrs.field(repr=False)
    sdigest: str
    provisioning: str

