"""The store's face for what cars send: latest messages (served from memory, updated
there first so readers see a write before it is committed), the paranoid-mode token,
historical records (``durable`` ones acknowledged only once committed) and traffic
counters per UTC day.
"""

from __future__ import annotations

import time
from functools import partial

import attrs

from relay.store import historical, latest, usage, vehicles
from relay.store.accountstore import AccountStore
from relay.store.records import HistoricalRecord, HistoricalSummary, StoredMessage, UsageDay
from relay.store.writequeue import Waiter, Write


class CarDataStore(AccountStore):
    """Latest messages, historical records and usage (the paranoid token needs the
    vehicle, hence built on :class:`AccountStore`)."""

    # ----------------------------------------------------------------- latest messages
    # In a cluster, other nodes write latest messages too (``relay.store.cache``): the
    # hub tells the store which vehicles' cars are on this node.

    def share_latest(self) -> None:
        """Other processes write latest messages: cache only those of cars on this node."""
        self._latest.share()

    def car_arrived(self, vehicleid: str) -> None:
        if self._latest.car_arrived(vehicleid):
            self._ptokens.pop(vehicleid, None)

    def car_left(self, vehicleid: str) -> None:
        if self._latest.car_left(vehicleid):
            self._ptokens.pop(vehicleid, None)

    async def latest(self, vehicleid: str) -> dict[str, StoredMessage]:
        """The vehicle's stored messages by code (a copy)."""
        return dict(await self._latest.messages(vehicleid))

    def last_update(self, vehicleid: str) -> float | None:
        return self._latest.lastupdate.get(vehicleid)

    def _touch(self, vehicleid: str, when: float) -> None:
        self._latest.lastupdate[vehicleid] = when
        self._lastupdate_unwritten[vehicleid] = when

    async def put_latest(
        self,
        vehicleid: str,
        code: str,
        data: str,
        *,
        paranoid: bool = False,
        ptoken: str = "",
        when: float | None = None,
    ) -> bool:
        """Store the vehicle's latest message of this code; False if refused (limits).

        A refusal is logged (rate-limited); the message may still be relayed live.
        """
        messages = await self._latest.messages(vehicleid)
        if not self._latest.admit(vehicleid, messages, code, data):
            return False
        when = time.time() if when is None else when
        messages[code] = StoredMessage(code, data, when, paranoid, ptoken)
        self._touch(vehicleid, when)
        await self._submit(Write("latest", latest.UPSERT_LATEST,
                                 (vehicleid, code, when, int(paranoid), ptoken, data)))
        return True

    async def set_paranoid_token(self, vehicleid: str, ptoken: str) -> bool:
        """Record the car's paranoid-mode token; True if it changed.

        On a change, stored paranoid messages under any other token are deleted.
        """
        current = self._ptokens.get(vehicleid)
        if current is None:
            record = await self.get_vehicle(vehicleid)
            current = self._ptokens.get(vehicleid, record.ptoken if record else "")
        if current == ptoken:
            return False
        messages = await self._latest.messages(vehicleid)
        if self._ptokens.get(vehicleid, current) == ptoken:
            return False  # a concurrent call got there first
        self._ptokens[vehicleid] = ptoken
        for code in [c for c, m in messages.items() if m.paranoid and m.ptoken != ptoken]:
            del messages[code]
        hit = self._vehicles.peek(vehicleid)
        if hit is not None:
            self._vehicles.replace(vehicleid, attrs.evolve(hit, ptoken=ptoken))
        await self._submit(Write("latest", latest.DELETE_PARANOID, (vehicleid, ptoken)))
        await self._submit(Write("vehicles", vehicles.SET_PTOKEN, (ptoken, vehicleid)))
        return True

    # ----------------------------------------------------------------- historical

    async def add_historical(
        self,
        vehicleid: str,
        htype: str,
        recordnumber: int,
        data: str,
        *,
        timestamp: int,
        expires: int,
        durable: bool = False,
        from_car: bool = True,
    ) -> None:
        """Upsert a historical record; with ``durable=True`` return once committed.

        ``from_car=False`` marks a record the server writes itself (alert logs): it
        does not move the vehicle's last-update time, which apps see as ``T``.
        """
        if from_car:
            self._touch(vehicleid, time.time())
        waiter = Waiter() if durable else None
        await self._submit(Write(
            "historical", historical.UPSERT_HISTORICAL,
            (vehicleid, htype, int(recordnumber), int(timestamp), int(expires), data), waiter))
        if waiter is not None:
            await waiter.wait()

    async def historical_summary(
        self, vehicleid: str, since: int | None = None
    ) -> list[HistoricalSummary]:
        """Per record type (unexpired, ``ts > since``): counts, data bytes, first/last ts."""
        result: list[HistoricalSummary] = await self._read(
            partial(historical.read_summary, vehicleid=vehicleid, since=since, now=time.time()))
        return result

    async def historical_records(
        self, vehicleid: str, htype: str, since: int | None = None
    ) -> list[HistoricalRecord]:
        """Unexpired records of one type with ``ts > since``, by ts then recordnumber."""
        result: list[HistoricalRecord] = await self._read(partial(
            historical.read_records, vehicleid=vehicleid, htype=htype, since=since,
            now=time.time()))
        return result

    # ----------------------------------------------------------------- usage

    def _day(self, when: float) -> str:
        number = int(when // 86400)
        if self._day_cache[0] != number:
            self._day_cache = (number, usage.utc_day(when))
        return self._day_cache[1]

    def add_usage(
        self,
        vehicleid: str,
        *,
        car_rx: int = 0,
        car_tx: int = 0,
        app_rx: int = 0,
        app_tx: int = 0,
        when: float | None = None,
    ) -> None:
        """Count traffic for the vehicle's UTC day (in memory; flushed every few seconds)."""
        day = self._day(time.time() if when is None else when)
        counts = self._usage.get((vehicleid, day))
        if counts is None:
            self._usage[(vehicleid, day)] = [car_rx, car_tx, app_rx, app_tx]
        else:
            counts[0] += car_rx
            counts[1] += car_tx
            counts[2] += app_rx
            counts[3] += app_tx

    async def usage(self, vehicleid: str, days: int = 90) -> list[UsageDay]:
        """Daily traffic for the last ``days`` UTC days (today included), newest first."""
        first_day = usage.utc_day(time.time() - (max(days, 1) - 1) * 86400)

        def merge(stored: dict[str, list[int]]) -> list[UsageDay]:
            # Runs right after the read, so unflushed counts are exactly self._usage.
            for (vid, day), counts in self._usage.items():
                if vid == vehicleid and day >= first_day:
                    total = stored.setdefault(day, [0, 0, 0, 0])
                    for i in range(4):
                        total[i] += counts[i]
            return [UsageDay(day, *stored[day]) for day in sorted(stored, reverse=True)]

        result: list[UsageDay] = await self._read(
            partial(usage.read_usage, vehicleid=vehicleid, first_day=first_day), post=merge)
        return result


__all__ = ["CarDataStore"]
