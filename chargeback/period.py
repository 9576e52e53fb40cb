"""A billing period: one calendar month in UTC, written YYYY-MM, billed hour by hour.

A month-to-date period (`Period.month_to_date`) ends at the last whole hour instead of the month's end,
so the live exporter bills the hours elapsed so far with the same code as a closed month.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .errors import PeriodError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """The month [start, end) in UTC; `end` is the first instant of the next month, or `until` when set."""

    year: int
    month: int
    until: dt.datetime | None = None
    """End of a month-to-date period: a whole hour inside the month (None: the whole month)."""

    def __post_init__(self) -> None:
        if self.until is not None:
            whole = Period(self.year, self.month)
            on_the_hour = self.until.minute == self.until.second == self.until.microsecond == 0
            if self.until.tzinfo is None or not on_the_hour or not whole.start < self.until <= whole.end:
                raise PeriodError(
                    f"month-to-date end {self.until.isoformat()} must be a whole UTC hour after the start of "
                    f"{whole.label} and no later than its end"
                )

    @classmethod
    def month_to_date(cls, now: dt.datetime) -> Period:
        """The month of `now` up to `now` rounded down to the hour. In the first hour of a month no
        hour has elapsed yet: raises PeriodError (callers keep what they had)."""
        hour = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        if hour.day == 1 and hour.hour == 0:
            raise PeriodError(f"no whole hour of {hour:%Y-%m} has elapsed yet at {now.isoformat()}")
        return cls(hour.year, hour.month, hour)

    @classmethod
    def parse(cls, text: str) -> Period:
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
        return cls(year, month)

    @property
    def previous(self) -> Period:
        """The whole calendar month before this one."""
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        if self.until is not None:
            return self.until.astimezone(dt.UTC)
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return dt.datetime(year, month, 1, tzinfo=dt.UTC)

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    @property
    def month_hours(self) -> int:
        """Hours in the whole calendar month, also for a month-to-date period."""
        return Period(self.year, self.month).hours

    def __str__(self) -> str:
        return self.label


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, to the second: how every output writes a time."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
