"""A billing period: one calendar month of the billing time zone (UTC unless pool.yaml's `billing.time_zone`
says otherwise), written YYYY-MM, billed hour by hour on the UTC hour grid.

Its bounds are UTC instants: 2026-10 in Asia/Shanghai is [2026-09-30T16:00Z, 2026-10-31T16:00Z). A month of a
zone with daylight saving time has the hours between those instants (Europe/Berlin's October: 745). Zones
whose months do not begin on a whole UTC hour are refused (`pool_catalog.time_zones`).

A month-to-date period (`Period.month_to_date`) ends at the last whole hour instead of the month's end,
so the live exporter bills the hours elapsed so far with the same code as a closed month.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from pool_catalog.time_zones import UTC_NAME, month_start, off_the_hour, zone_info

from .errors import PeriodError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """The month [start, end) of `time_zone` as UTC instants; `end` is the first instant of the next month, or
    `until` when set."""

    year: int
    month: int
    until: dt.datetime | None = None
    """End of a month-to-date period: a whole hour inside the month (None: the whole month)."""
    time_zone: str = UTC_NAME
    """IANA name of the zone whose calendar month this is (the catalog's `billing.time_zone`)."""

    def __post_init__(self) -> None:
        try:
            zone_info(self.time_zone)
        except ValueError as e:
            raise PeriodError(str(e)) from None
        for year, month in ((self.year, self.month), self._next):
            if problem := off_the_hour(year, month, self.time_zone):
                raise PeriodError(problem)
        if self.until is not None:
            whole = Period(self.year, self.month, time_zone=self.time_zone)
            on_the_hour = self.until.minute == self.until.second == self.until.microsecond == 0
            if self.until.tzinfo is None or not on_the_hour or not whole.start < self.until <= whole.end:
                raise PeriodError(
                    f"month-to-date end {self.until.isoformat()} must be a whole UTC hour after the start of "
                    f"{whole.label} and no later than its end"
                )

    @classmethod
    def month_to_date(cls, now: dt.datetime, time_zone: str = UTC_NAME) -> Period:
        """The month of `now` in `time_zone` up to `now` rounded down to the UTC hour. In the first hour of a
        month no hour has elapsed yet: raises PeriodError (callers keep what they had)."""
        hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        month = cls.of(now, time_zone)
        if hour <= month.start:
            raise PeriodError(f"no whole hour of {month.display} has elapsed yet at {now.isoformat()}")
        return cls(month.year, month.month, hour, time_zone)

    @classmethod
    def of(cls, moment: dt.datetime, time_zone: str = UTC_NAME) -> Period:
        """The whole month of `time_zone` that contains `moment`."""
        local = moment.astimezone(zone_info(time_zone))
        return cls(local.year, local.month, time_zone=time_zone)

    def in_zone(self, time_zone: str) -> Period:
        """The same month (and month-to-date end) in `time_zone`: the catalog's zone decides what 2026-10 is."""
        return self if time_zone == self.time_zone else Period(self.year, self.month, self.until, time_zone)

    @classmethod
    def parse(cls, text: str, time_zone: str = UTC_NAME) -> Period:
        """'2026-10' → Period(2026, 10); anything else raises PeriodError saying what to write."""
        match = _PERIOD.match(text.strip())
        if not match:
            raise PeriodError(f"period {text!r} is not a month: write it as YYYY-MM, e.g. 2026-10")
        year, month = int(match.group(1)), int(match.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(f"period {text!r} has month {month:02d}: months run from 01 to 12")
        if year < 1970:
            raise PeriodError(f"period {text!r} is before 1970: Prometheus keeps no data that old")
        if (year, month) >= (9999, 12):
            raise PeriodError(f"period {text!r} is too far ahead (its month must end before year 10000)")
        return cls(year, month, time_zone=time_zone)

    @property
    def previous(self) -> Period:
        """The whole calendar month before this one, in the same zone."""
        year, month = (self.year - 1, 12) if self.month == 1 else (self.year, self.month - 1)
        return Period(year, month, time_zone=self.time_zone)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def display(self) -> str:
        """The label with its zone when that is not UTC, e.g. "2026-10 (Asia/Shanghai)"."""
        return self.label if self.time_zone == UTC_NAME else f"{self.label} ({self.time_zone})"

    @property
    def zone_name(self) -> str | None:
        """The zone as documents write it: None for UTC (their bounds are UTC already)."""
        return None if self.time_zone == UTC_NAME else self.time_zone

    @property
    def _next(self) -> tuple[int, int]:
        return (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)

    @property
    def start(self) -> dt.datetime:
        return month_start(self.year, self.month, self.time_zone)

    @property
    def end(self) -> dt.datetime:
        if self.until is not None:
            return self.until.astimezone(dt.UTC)
        return month_start(*self._next, self.time_zone)

    def day_starts(self) -> list[tuple[dt.date, dt.datetime]]:
        """Each local day that begins before `end`: its date and its first instant in UTC (the first day
        starts at `start`). A day of a daylight-saving change has 23 or 25 hours."""
        zone, days = zone_info(self.time_zone), []
        day = self.start.astimezone(zone).date()
        while (first := dt.datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(dt.UTC)) < self.end:
            days.append((day, first))
            day += dt.timedelta(days=1)
        return days

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    @property
    def month_hours(self) -> int:
        """Hours in the whole calendar month, also for a month-to-date period."""
        return Period(self.year, self.month, time_zone=self.time_zone).hours

    def __str__(self) -> str:
        return self.label


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, to the second: how every output writes a time."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
