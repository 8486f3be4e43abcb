"""The store's face for logins and accounts: vehicles, owners, passwords, API tokens and
provisioning. Vehicles and owners are served from the cache (``relay.store.cache``) up
to its TTL; password checks run argon2 in a worker thread (``relay.store.passwords``).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from functools import partial

from relay import legacy_hash
from relay.store import accounts, passwords, provisioning, vehicles
from relay.store.errors import StoreError
from relay.store.records import OwnerRecord, ProvisionRecord, TokenRecord, VehicleRecord
from relay.store.storebase import StoreBase

log = logging.getLogger("relay.store")


class AccountStore(StoreBase):
    """Vehicles, owners, tokens and provisioning records."""

    async def get_vehicle(self, vehicleid: str, *, fresh: bool = False) -> VehicleRecord | None:
        """The vehicle (cached up to the cache TTL); ``fresh``: always from the database,
        as for logins, where a cache that only holds known ids would tell them apart."""
        if not fresh:
            hit = self._vehicles.get(vehicleid)
            if hit is not None:
                return hit
        row = await self._vehicle_rows.get(vehicleid)
        if row is None:
            self._vehicles.pop(vehicleid)
            return None
        record = VehicleRecord(row["vehicleid"], row["owner"], row["carpass"], row["vtype"],
                               self._ptokens.get(vehicleid, row["ptoken"]), row["name"])
        self._vehicles.put(vehicleid, record)
        # Unless its car is here (a cluster), the database's is the newest known.
        known = vehicleid in self._latest.lastupdate and self._latest.holds(vehicleid)
        if not known and row["lastupdate"] is not None:
            self._latest.lastupdate[vehicleid] = float(row["lastupdate"])
        return record

    async def get_owner(self, name: str) -> OwnerRecord | None:
        hit = self._owners.get(name)
        if hit is not None:
            return hit
        record: OwnerRecord | None = await self._read_now(
            partial(accounts.read_owner, name=name))
        if record is None:
            self._owners.pop(name)
            return None
        self._owners.put(name, record)
        return record

    async def owner_vehicles(self, owner: str) -> list[str]:
        result: list[str] = await self._read_now(
            partial(vehicles.read_owner_vehicles, owner=owner))
        return result

    async def check_password(
        self, name: str, password: str, *, admit: Callable[[], None] | None = None
    ) -> bool:
        """argon2-verify ``password`` for an active owner (slow; runs in a worker thread).

        ``admit()`` is called once the check has its hash slot, right before hashing; it
        may raise to refuse the check (the login guard: the check may have waited).
        """
        owner = await self.get_owner(name)
        active = owner if owner is not None and owner.status > 0 else None
        ok = await self._hashing.check(None if active is None else active.password_hash,
                                       password, admit=admit)
        # Outside the slot: the upgrade takes one of its own.
        if ok and active is not None and legacy_hash.is_legacy(active.password_hash):
            await self._upgrade_legacy_hash(name, active.password_hash, password)
        return ok

    async def _upgrade_legacy_hash(self, name: str, old_hash: str, password: str) -> None:
        """An imported Drupal hash just verified: store the project's own hash instead."""
        new_hash = await self._hashing.hash(password)
        try:
            await self._call("owners", partial(
                accounts.upgrade_password_hash, name=name, old_hash=old_hash, new_hash=new_hash))
        except StoreError as exc:  # the login stands; the next one tries again
            log.warning("owner %s: imported password hash not replaced: %s", name, exc)
        self._owners.pop(name)

    async def token_owner(self, token: str) -> tuple[str, str] | None:
        """(owner, permit) of an API token presented alone (``Authorization: Bearer``)."""
        digest = passwords.token_hash(token)
        found: tuple[str, str] | None = await self._read_now(
            partial(accounts.read_token_owner, digest=digest))
        if found is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return found

    async def check_token(self, name: str, token: str) -> str | None:
        """The permit of ``token`` if it is one of ``name``'s API tokens, else None."""
        digest = passwords.token_hash(token)
        permit: str | None = await self._read_now(
            partial(accounts.read_token_permit, owner=name, digest=digest))
        if permit is not None:
            self._token_lastused[digest] = time.time()  # written with the next batch
        return permit

    async def list_tokens(self, owner: str) -> list[TokenRecord]:
        result: list[TokenRecord] = await self._read(partial(accounts.read_tokens, owner=owner))
        return result

    async def create_token(
        self, owner: str, application: str, purpose: str, permit: str
    ) -> tuple[str, TokenRecord]:
        """A new random 64-hex-char token for ``owner``, committed before returning.

        Returns the token (shown once, never stored) and its stored record.
        """
        token = secrets.token_hex(32)
        record = TokenRecord(passwords.token_hash(token), owner, application, purpose, permit,
                             time.time())
        await self._call("tokens", partial(accounts.insert_token, record=record))
        return token, record

    async def delete_token(self, owner: str, token: str) -> str | None:
        """Delete one of ``owner``'s tokens, given the token or its digest; its digest if found."""
        candidates = (passwords.token_hash(token), token.lower())
        deleted: str | None = await self._call(
            "tokens", partial(accounts.delete_token, owner=owner, candidates=candidates))
        return deleted

    async def credentials(
        self, owners: Iterable[str], digests: Iterable[str]
    ) -> tuple[dict[str, tuple[str, int]], dict[str, str]]:
        """From the database (never the cache): of ``owners``, (password hash, status) by
        name, and of the API tokens ``digests``, their owner by digest; missing ones left out."""
        result: tuple[dict[str, tuple[str, int]], dict[str, str]] = await self._read(
            partial(accounts.read_credentials, owners=tuple(owners), digests=tuple(digests)))
        return result

    async def get_provision(self, apkey: str) -> ProvisionRecord | None:
        result: ProvisionRecord | None = await self._read_now(
            partial(provisioning.read_provision, apkey=apkey))
        return result


__all__ = ["AccountStore"]
