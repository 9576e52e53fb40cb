"""The billing time zone: where a month begins, as a UTC instant, for the zone in which the books close.

One module, so that the catalog's check of `billing.time_zone` and the billing period (`chargeback.period`)
agree on what a local month is and on which zones can be billed: usage is measured on Prometheus' UTC hour
grid, so a month must begin on a whole UTC hour (Asia/Shanghai, +08:00, can; Asia/Kolkata, +05:30, cannot —
its months would split an hour between two invoices).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC_NAME = "UTC"

CHECKED_YEARS = range(2000, 2100)
"""Years whose month starts the catalog checks (a zone's offsets before 2000 do not matter for billing)."""


def zone_info(name: str) -> dt.tzinfo:
    """The zone named `name` (an IANA name such as Asia/Shanghai); ValueError saying how to fix it."""
    if name == UTC_NAME:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(
            f"{name!r} is not a time zone: write an IANA name such as Asia/Shanghai, Europe/Berlin or UTC"
        ) from e


def month_start(year: int, month: int, zone: str) -> dt.datetime:
    """The UTC instant at which `year-month` begins in `zone` (local midnight on the 1st)."""
    return dt.datetime(year, month, 1, tzinfo=zone_info(zone)).astimezone(dt.UTC)


def off_the_hour(year: int, month: int, zone: str) -> str | None:
    """Why `zone` cannot bill `year-month` (its start is not a whole UTC hour), or None when it can."""
    start = month_start(year, month, zone)
    if start.minute == start.second == start.microsecond == 0:
        return None
    offset = dt.datetime(year, month, 1, tzinfo=zone_info(zone)).utcoffset() or dt.timedelta(0)
    sign, minutes = "-" if offset < dt.timedelta(0) else "+", abs(int(offset.total_seconds())) // 60
    return (
        f"{zone} is UTC{sign}{minutes // 60:02d}:{minutes % 60:02d} at the start of {year:04d}-{month:02d}, "
        f"so its month would begin at {start:%H:%M} UTC: usage is billed on whole UTC hours, so a billing "
        "month must begin on one; choose a zone whose offset is a whole number of hours (e.g. Asia/Dhaka, "
        "Asia/Shanghai) or UTC"
    )


def check_zone(zone: str) -> str:
    """`zone` if it exists and every month of `CHECKED_YEARS` begins on a whole UTC hour; else ValueError."""
    zone_info(zone)
    for year in CHECKED_YEARS:
        for month in range(1, 13):
            if problem := off_the_hour(year, month, zone):
                raise ValueError(problem)
    return zone
