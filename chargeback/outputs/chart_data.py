"""Figures the report charts draw, derived from a period's chargeback: daily cost per unit, and average
allocation against average use per unit.

Daily cost: each rated line's amount is spread over the days of the period in proportion to the
quantity billed on each day at that line's price version (the hourly attributed usage, billed as
`rating.billed_nano` does it). Days are whole minor units, split by largest remainder (ties to the
earlier day, as `rating.allocate` splits shared costs), so a unit's days add up to its invoice total exactly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from pool_catalog.pricing import minor_unit
from pool_catalog.resources import names

from ..rate.idle import allocated_resources, level_unit
from ..rate.rating import SHARED, billed_nano, from_nano, nano, version_index
from ..rate.result import Chargeback

LEVEL_QUANTUM = Decimal("0.001")
_KEY = ["cluster", "namespace", "resource", "tier", "version"]


def period_days(chargeback: Chargeback) -> list[dt.date]:
    """Every UTC day of the period, in order."""
    period = chargeback.period
    # A month so far may end mid-day: its last, partial day counts too.
    count = -(-(period.end - period.start) // dt.timedelta(days=1))
    return [(period.start + dt.timedelta(days=i)).date() for i in range(count)]


def daily_costs(chargeback: Chargeback) -> dict[str, list[Decimal]]:
    """Business unit id → its cost on each day of the period (as many entries as `period_days`)."""
    lines = chargeback.lines
    day_count = len(period_days(chargeback))
    if lines.empty:
        return {}
    rates = chargeback.catalog.rates
    usage = chargeback.usage
    usage = usage[usage["resource"].isin(names()) & usage["used"].notna()]
    start = pd.Timestamp(chargeback.period.start)
    work = pd.DataFrame(
        {
            **{column: usage[column].astype(object) for column in ("cluster", "namespace", "resource", "tier")},
            "version": version_index(usage["hour"], rates),
            "day": ((usage["hour"] - start) // pd.Timedelta(days=1)).to_numpy(dtype=np.int64),
            "billed": billed_nano(usage["used"], usage["requested"], chargeback.billing_mode),
        }
    )
    sums = work.groupby([*_KEY, "day"], sort=True)["billed"].sum()
    per_key: dict[tuple, np.ndarray] = {}
    for (*key, day), billed in sums.items():
        per_key.setdefault(tuple(key), np.zeros(day_count, dtype=np.int64))[day] = billed
    version_of = {pd.Timestamp(v.effective_from): i for i, v in enumerate(rates.sorted_versions())}
    minor = minor_unit(chargeback.currency)
    result: dict[str, list[Decimal]] = {}
    for line in lines.to_dict("records"):
        key = (line["cluster"], line["namespace"], line["resource"], line["tier"])
        weights = per_key.get((*key, version_of[pd.Timestamp(line["rate_effective_from"])]))
        days = result.setdefault(line["business_unit"], [Decimal(0)] * day_count)
        if weights is None or not weights.any() or not line["amount"]:
            continue  # nothing billed on any day: the line's amount is zero too
        for day, amount in enumerate(spread(line["amount"], [int(w) for w in weights], minor)):
            days[day] += amount
    return result


def spread(amount: Decimal, weights: list[int], minor: Decimal) -> list[Decimal]:
    """`amount` split by integer `weights` into multiples of `minor` adding up to it exactly: largest
    remainder, ties to the first. `rating.allocate` in integer arithmetic (fractions are too slow for
    a month of days on every line)."""
    units, total = int(amount / minor), sum(weights)
    floors = [units * w // total for w in weights]
    remainders = [units * w % total for w in weights]
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[: units - sum(floors)]:
        floors[i] += 1
    return [Decimal(f) * minor for f in floors]


@dataclass(frozen=True)
class AllocationUse:
    """A unit's average allocation (quota) of one resource over the period, and its average use."""

    resource: str
    tier: str
    allocated: Decimal
    used: Decimal
    unit: str

    @property
    def label(self) -> str:
        return f"{self.resource} ({self.tier})" if self.tier else self.resource


def allocation_use(chargeback: Chargeback) -> dict[str, list[AllocationUse]]:
    """Business unit id → average allocated and used level per resource, where it allocated any.

    Averages are over every hour of the period (a quota held half the month counts half);
    shared namespaces belong to no single unit and are left out."""
    usage = chargeback.usage
    allocatable = list(allocated_resources())
    usage = usage[usage["resource"].isin(allocatable) & (usage["business_unit"] != SHARED)]
    if usage.empty:
        return {}
    work = usage[["business_unit", "resource", "tier"]].astype(object).copy()
    work["allocated"] = nano(usage["allocated"])
    work["used"] = nano(usage["used"])
    sums = work.groupby(["business_unit", "resource", "tier"], sort=True)[["allocated", "used"]].sum()
    hours = Decimal(chargeback.period.hours)
    order = {name: i for i, name in enumerate(allocatable)}
    result: dict[str, list[AllocationUse]] = {}
    for (unit_id, resource, tier), row in sums.iterrows():
        if not row["allocated"]:
            continue
        result.setdefault(unit_id, []).append(
            AllocationUse(
                resource=resource,
                tier=tier,
                allocated=(from_nano(row["allocated"]) / hours).quantize(LEVEL_QUANTUM),
                used=(from_nano(row["used"]) / hours).quantize(LEVEL_QUANTUM),
                unit=level_unit(resource),
            )
        )
    for rows in result.values():
        rows.sort(key=lambda r: (order[r.resource], r.tier))
    return result
