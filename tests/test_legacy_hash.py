"""Issue 15: Drupal 7 ``$S$`` password hashes imported from the public server."""

from __future__ import annotations

from relay import db, legacy_hash
from tests.perl_fixture import drupal_reference_hash


def test_matches_an_independent_derivation() -> None:
    for password, salt, log2 in (("alice-old-pw", "aB3dE5gH", 15), ("", "........", 7),
                                 ("pässwörd ✓", "zZ09./Qq", 9)):
        expected = drupal_reference_hash(password, salt, log2)
        assert len(expected) == 55
        setting = expected[:12]
        assert legacy_hash.drupal7_hash(password, setting) == expected
        assert legacy_hash.verify(expected, password)
        assert db.verify_password(expected, password)
        assert not legacy_hash.verify(expected, password + "x")
        assert not db.verify_password(expected, password.upper() + "!")


def test_encoding_of_partial_groups() -> None:
    # One byte makes two characters, two make three, three make four (lowest bits first).
    assert legacy_hash.encode64(b"\x00") == ".."
    assert legacy_hash.encode64(b"\x01") == "/."
    assert legacy_hash.encode64(b"\xff\xff") == "zzD"
    assert legacy_hash.encode64(b"\xff\xff\xff") == "zzzz"


def test_damaged_or_foreign_hashes_never_match() -> None:
    good = drupal_reference_hash("pw", "saltsalt", 7)
    for stored in (good[:54], good + "x", "$S$" + "Z" * 52,  # count log2 61: out of range
                   "$S$" + "." + good[4:],  # log2 0: below Drupal's minimum
                   "$P$Bxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "", "U$S$" + good[4:]):
        assert not legacy_hash.verify(stored, "pw"), stored
        assert not db.verify_password(stored, "pw")
    assert not legacy_hash.verify(good, "p" * 513)  # Drupal's length limit


def test_upgrade_replaces_only_the_hash_that_was_verified(empty_db: str) -> None:
    conn = db.connect(empty_db)
    legacy = drupal_reference_hash("pw", "saltsalt", 7)
    conn.execute("INSERT INTO owners(name, password_hash, created) VALUES ('o', ?, 0)",
                 (legacy,))
    with db.transaction(conn):
        assert db.upgrade_password_hash(conn, "o", legacy, "$argon2id$new")
    # A password set meanwhile (the hash is no longer the verified one) is kept.
    with db.transaction(conn):
        assert not db.upgrade_password_hash(conn, "o", legacy, "$argon2id$other")
    assert conn.execute("SELECT password_hash FROM owners").fetchone()[0] == "$argon2id$new"
    conn.close()
