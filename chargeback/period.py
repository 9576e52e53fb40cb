"""A billing period: one calendar month in UTC, written YYYY-MM, billed hour by hour."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from .errors import PeriodError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """The month [start, end) in UTC; `end` is the first instant of the next month."""

    year: int
    month: int

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
        return cls(year, month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=dt.UTC)

    @property
    def end(self) -> dt.datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return dt.datetime(year, month, 1, tzinfo=dt.UTC)

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    def __str__(self) -> str:
        return self.label


def iso_utc(moment: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z suffix, to the second: how every output writes a time."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
