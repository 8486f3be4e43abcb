"""The public (Perl) server's MySQL schema, and generated data with the import's expected outcome.

The schema follows the description of the public server's tables (MyISAM, utf8,
zero dates for "never"). The data has the rows an import must carry over and the
bad rows it must report and skip; ``load`` returns, per report line, the counts
the importer must print.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from typing import Any

import attrs

SCHEMA = """
CREATE TABLE ovms_owners (
  owner int(10) unsigned NOT NULL,
  name varchar(60) NOT NULL DEFAULT '',
  mail varchar(254) NOT NULL DEFAULT '',
  pass varchar(128) NOT NULL DEFAULT '',
  status tinyint(4) NOT NULL DEFAULT 0,
  deleted tinyint(1) NOT NULL DEFAULT 0,
  changed datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  PRIMARY KEY (owner)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_cars (
  vehicleid varchar(32) NOT NULL DEFAULT '',
  vehiclename varchar(64) NOT NULL DEFAULT '',
  owner int(10) unsigned NOT NULL DEFAULT 0,
  telephone varchar(48) NOT NULL DEFAULT '',
  carpass varchar(255) NOT NULL DEFAULT '',
  userpass varchar(255) NOT NULL DEFAULT '',
  cryptscheme char(1) NOT NULL DEFAULT '0',
  v_ptoken varchar(32) NOT NULL DEFAULT '',
  v_server varchar(32) NOT NULL DEFAULT '*',
  v_type varchar(10) NOT NULL DEFAULT 'CAR',
  deleted tinyint(1) NOT NULL DEFAULT 0,
  changed datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  v_lastupdate datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  couponcode varchar(32) NOT NULL DEFAULT '',
  PRIMARY KEY (owner, vehicleid)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_carmessages (
  owner int(10) unsigned NOT NULL DEFAULT 0,
  vehicleid varchar(32) NOT NULL DEFAULT '',
  m_code char(1) NOT NULL DEFAULT '',
  m_valid tinyint(1) NOT NULL DEFAULT 1,
  m_msgtime datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  m_paranoid tinyint(1) NOT NULL DEFAULT 0,
  m_ptoken varchar(32) NOT NULL DEFAULT '',
  m_msg varchar(255) NOT NULL DEFAULT '',
  PRIMARY KEY (owner, vehicleid, m_code)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_historicalmessages (
  owner int(10) unsigned NOT NULL DEFAULT 0,
  vehicleid varchar(32) NOT NULL DEFAULT '',
  h_timestamp datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  h_recordtype varchar(32) NOT NULL DEFAULT '',
  h_recordnumber int(5) NOT NULL DEFAULT 0,
  h_data text NOT NULL,
  h_expires datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  PRIMARY KEY (owner, vehicleid, h_recordtype, h_recordnumber, h_timestamp)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_notifies (
  owner int(10) unsigned NOT NULL DEFAULT 0,
  vehicleid varchar(32) NOT NULL DEFAULT '',
  appid varchar(128) NOT NULL DEFAULT '',
  pushtype varchar(16) NOT NULL DEFAULT '',
  pushkeytype varchar(16) NOT NULL DEFAULT '',
  pushkeyvalue varchar(256) NOT NULL DEFAULT '',
  lastupdated datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  active tinyint(1) NOT NULL DEFAULT 1,
  PRIMARY KEY (owner, vehicleid, appid)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_apitokens (
  owner int(10) unsigned NOT NULL DEFAULT 0,
  token varchar(64) NOT NULL DEFAULT '',
  application varchar(32) NOT NULL DEFAULT '',
  purpose varchar(80) NOT NULL DEFAULT '',
  permit varchar(255) NOT NULL DEFAULT 'none',
  created datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  refreshed datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  lastused datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  PRIMARY KEY (owner, token)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
CREATE TABLE ovms_autoprovision (
  ap_key varchar(64) NOT NULL DEFAULT '',
  ap_stoken varchar(32) NOT NULL DEFAULT '',
  ap_sdigest varchar(32) NOT NULL DEFAULT '',
  ap_msg varchar(4096) NOT NULL DEFAULT '',
  deleted tinyint(1) NOT NULL DEFAULT 0,
  changed datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  owner int(10) unsigned NOT NULL DEFAULT 0,
  v_lastused datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  PRIMARY KEY (ap_key)
) ENGINE=MyISAM DEFAULT CHARSET=utf8;
"""

ZERO = "0000-00-00 00:00:00"
DRUPAL_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Credentials the end-to-end test logs in with.
ALICE, ALICE_PW = "alice", "alice-old-pw"  # Drupal hash at the public server's cost (2^15)
BOB, BOB_PW = "bob", "bob-clear-pw"  # a DbSimple clear password
CAROL, CAROL_PW = "carol", "carol-pw"  # Drupal hash, logs in with v2 scheme 1
ALICE_CAR, ALICE_CARPASS = "ALICECAR", "alice-car-secret"
ALICE_TOKEN = "5f" * 32
ALICE_PUSH_APP = "alice-phone"
ALICE_S = "80,K,220,70,charging,standard,280,270"
HISTORICAL_PER_VEHICLE = 300


def drupal_reference_hash(password: str, salt: str, log2: int) -> str:
    """Drupal 7's $S$ hash, derived independently of relay.legacy_hash: the 64-byte
    digest read as one little-endian integer, cut into 6-bit digits from the low end."""
    assert len(salt) == 8
    secret = password.encode()
    digest = hashlib.sha512(salt.encode() + secret).digest()
    rounds = 2 ** log2
    while rounds:
        digest = hashlib.sha512(digest + secret).digest()
        rounds -= 1
    number = int.from_bytes(digest, "little")
    digits = []
    for _ in range((len(digest) * 8 + 5) // 6):
        digits.append(DRUPAL_ALPHABET[number % 64])
        number //= 64
    setting = "$S$" + DRUPAL_ALPHABET[log2] + salt
    return (setting + "".join(digits))[:55]


@attrs.define
class Expected:
    read: int = 0
    written: int = 0
    skipped: Counter[str] = attrs.field(factory=Counter)


@attrs.define
class Fixture:
    url: str
    expected: dict[str, Expected]
    vehicles: list[str]  # the vehicle ids the import keeps
    historical_written: int
    usage_days: dict[tuple[str, str], tuple[int, int, int, int]]
    conn: Any = attrs.field(repr=False)  # to the source database


def dt(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(when))


class _Loader:
    def __init__(self) -> None:
        self.expected: dict[str, Expected] = {}
        self.rows: dict[str, list[tuple[Any, ...]]] = {}

    def add(self, table: str, label: str, row: tuple[Any, ...], skip: str | None = None) -> None:
        self.rows.setdefault(table, []).append(row)
        counts = self.expected.setdefault(label, Expected())
        counts.read += 1
        if skip is None:
            counts.written += 1
        else:
            counts.skipped[skip] += 1


def load(conn: Any, url: str) -> Fixture:
    """Create the schema on ``conn`` (an empty database at ``url``) and fill it."""
    rng = random.Random(15)
    now = time.time()
    loader = _Loader()
    add = loader.add

    # --- owners
    owners = [
        (1, ALICE, drupal_reference_hash(ALICE_PW, "aB3dE5gH", 15), None),
        (2, BOB, BOB_PW, None),
        (3, CAROL, drupal_reference_hash(CAROL_PW, "Zz09./Qq", 8), None),
    ]
    for n in range(4, 34):
        owners.append((n, f"owner{n}", drupal_reference_hash(f"pw{n}", f"salt{n:04d}", 7), None))
    owners += [
        (34, ALICE, drupal_reference_hash("other", "saltdupl", 7), "duplicate owner name"),
        (35, "gone", "x", "deleted"),
        (36, " spaced", "x", "bad owner name"),
        (37, "dave", "", None),  # no usable password, still owns a car
        (38, "erin", "erin-clear", None),
    ]
    for owner, name, password, skip in owners:
        add("ovms_owners", "ovms_owners",
            (owner, name, f"{name.strip()}@example.com", password, 1,
             1 if skip == "deleted" else 0, dt(now - 86400)), skip)

    # --- vehicles: (owner, vehicleid, carpass, type, deleted, skip reason)
    cars: list[tuple[int, str, str, str, int, str | None]] = [
        (1, ALICE_CAR, ALICE_CARPASS, "CAR", 0, None),
        (1, "ALICE2", "alice2pass", "CAR", 0, None),
        (2, "BOBCAR", "bobcarpass", "CAR", 0, None),
        (3, "CAROLCAR", "carolcarpass", "CAR", 0, None),
    ]
    cars += [(n, f"CAR{n:03d}", f"pass{n}", "CAR", 0, None) for n in range(4, 34)]
    cars += [
        (37, "DAVECAR", "davepass", "CAR", 0, None),
        (38, "erincar", "erinpass", "CAR", 0, None),
        (4, "OLDCAR", "old", "CAR", 1, "deleted"),
        (5, "BAD ID!", "bad", "CAR", 0, "invalid vehicle id"),
        (6, ALICE_CAR, "stolen", "CAR", 0, "vehicle id used by another owner"),
        (35, "GHOST", "ghost", "CAR", 0, "owner not imported"),
        (7, "TYPECAR", "typepass", "APP", 0, "unknown vehicle type"),
        (8, "NOPASS", "", "CAR", 0, "no car password"),
    ]
    kept: list[tuple[int, str]] = []
    for owner, vid, carpass, vtype, deleted, skip in cars:
        add("ovms_cars", "ovms_cars",
            (vid, f"name of {vid}", owner, "", carpass, "", "0",
             "ptok1" if vid == ALICE_CAR else "", "*", vtype, deleted, dt(now - 86400),
             dt(now - 3600), ""), skip)
        if skip is None:
            kept.append((owner, vid))

    # --- latest messages: (owner, vehicleid, code, valid, msgtime, paranoid, ptoken, msg)
    label = "ovms_carmessages"
    for owner, vid in kept:
        add("ovms_carmessages", label,
            (owner, vid, "S", 1, dt(now - 600), 0, "",
             ALICE_S if vid == ALICE_CAR else "50,K,200,60"))
        add("ovms_carmessages", label, (owner, vid, "L", 1, dt(now - 600), 0, "", "1.5,2.5"))
    add("ovms_carmessages", label, (1, ALICE_CAR, "D", 1, dt(now - 600), 1, "ptok1", "secret"))
    add("ovms_carmessages", label, (2, "BOBCAR", "W", 0, dt(now - 600), 0, "", "x"),
        "invalidated")
    add("ovms_carmessages", label, (5, "BAD ID!", "S", 1, dt(now), 0, "", "x"),
        "vehicle not imported")
    add("ovms_carmessages", label, (3, "CAROLCAR", "F", 1, ZERO, 0, "", "x"), "no message time")
    add("ovms_carmessages", label, (3, "CAROLCAR", "X", 1, "2021-02-30 10:00:00", 0, "", "x"),
        "unparseable m_msgtime")

    # --- historical records and usage
    label, usage_label = "ovms_historicalmessages", "usage (*-OVM-Utilisation)"
    usage_days: dict[tuple[str, str], list[int]] = {}
    for owner, vid in kept:
        for i in range(HISTORICAL_PER_VEHICLE):
            ts = now - 3600 - i * 61
            htype = "*-LOG-Trip" if i % 2 else "D"
            if i % 50 == 7:
                expires, skip = dt(now - 86400), "expired"
            elif i % 10 == 3:
                expires, skip = ZERO, None  # never expires
            else:
                expires, skip = dt(now + 30 * 86400), None
            data = ",".join(str(rng.randint(0, 999)) for _ in range(8))
            add("ovms_historicalmessages", label, (owner, vid, dt(ts), htype, i, data, expires),
                skip)
        for day in range(5):
            day_ts = (int(now) // 86400 - day) * 86400
            for number in range(4):
                value = rng.randint(0, 10**6)
                add("ovms_historicalmessages", usage_label,
                    (owner, vid, dt(day_ts), "*-OVM-Utilisation", number, str(value),
                     dt(now + 365 * 86400)))
                totals = usage_days.setdefault(
                    (vid.upper(), time.strftime("%Y-%m-%d", time.gmtime(day_ts))), [0] * 4)
                totals[number] += value
    for i in range(5):
        add("ovms_historicalmessages", label,
            (1, ALICE_CAR, f"2021-02-30 10:0{i}:00", "D", 9000 + i, "x", ZERO),
            "unparseable h_timestamp")
    for i in range(3):
        add("ovms_historicalmessages", label,
            (2, "BOBCAR", dt(now - 10 - i), "*-LOG-Big", i, "y" * 40_000, ZERO),
            "oversized record data")
    for i in range(10):
        add("ovms_historicalmessages", label,
            (4, "OLDCAR", dt(now - 10 - i), "D", i, "old", ZERO), "vehicle not imported")
    add("ovms_historicalmessages", usage_label,
        (3, "CAROLCAR", dt(now - 99 * 86400), "*-OVM-Utilisation", 0, "abc", ZERO),
        "bad usage value")

    # --- push subscriptions: (owner, vehicleid, appid, type, keytype, keyvalue, time, active)
    label = "ovms_notifies"
    add("ovms_notifies", label, (1, ALICE_CAR, ALICE_PUSH_APP, "apns", "production",
                                 "ab" * 32, dt(now - 7200), 1))
    add("ovms_notifies", label, (2, "BOBCAR", "bob-phone", "gcm", "production",
                                 "bob-fcm-token", dt(now - 7200), 1))
    for n in range(4, 11):
        add("ovms_notifies", label, (n, f"CAR{n:03d}", f"app{n}", "expo", "production",
                                     f"ExponentPushToken[{n}]", dt(now - 7200), n % 2))
    add("ovms_notifies", label, (3, "CAROLCAR", "carol-phone", "gcm", "production", "",
                                 dt(now), 1), "no push key")
    add("ovms_notifies", label, (35, "GHOST", "ghost-phone", "gcm", "production", "k",
                                 dt(now), 1), "vehicle not imported")

    # --- API tokens: (owner, token, application, purpose, permit, created, refreshed, lastused)
    label = "ovms_apitokens"
    add("ovms_apitokens", label, (1, ALICE_TOKEN, "evcc", "charging", "auth", dt(now - 9e5),
                                  dt(now - 9e5), dt(now - 100)))
    add("ovms_apitokens", label, (1, "6a" * 32, "", "", "none", dt(now), ZERO, ZERO))
    add("ovms_apitokens", label, (2, "7b" * 32, "ha", "home", "auth", dt(now), ZERO, ZERO))
    add("ovms_apitokens", label, (3, ALICE_TOKEN, "x", "x", "auth", dt(now), ZERO, ZERO),
        "token held by another owner")
    add("ovms_apitokens", label, (35, "8c" * 32, "x", "x", "auth", dt(now), ZERO, ZERO),
        "owner not imported")

    # --- auto-provisioning: (key, stoken, sdigest, msg, deleted, changed, owner, lastused)
    label = "ovms_autoprovision"
    add("ovms_autoprovision", label, ("VIN0001", "st1", "sd1", "m1", 0, dt(now), 1, ZERO))
    add("ovms_autoprovision", label, ("VIN0002", "st2", "sd2", "m2", 0, dt(now), 0, ZERO))
    add("ovms_autoprovision", label, ("VIN0003", "st3", "sd3", "m3", 1, dt(now), 1, ZERO),
        "deleted")

    with conn.cursor() as cur:
        # Zero and invalid dates are what a long-running public server holds.
        cur.execute("SET SESSION sql_mode='ALLOW_INVALID_DATES'")
        for statement in SCHEMA.split(";"):
            if statement.strip():
                cur.execute(statement)
        for table, rows in loader.rows.items():
            marks = ", ".join(["%s"] * len(rows[0]))
            for start in range(0, len(rows), 2000):
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[start:start + 2000])
    historical = loader.expected["ovms_historicalmessages"]
    return Fixture(url, loader.expected, [vid.upper() for _, vid in kept], historical.written,
                   {k: (v[0], v[1], v[2], v[3]) for k, v in usage_days.items()}, conn)
