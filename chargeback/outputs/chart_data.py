"""Figures the report charts draw, derived from a period's chargeback: daily cost per unit, and average
allocation against average use per unit.

Daily cost: each rated line's amount is spread over the days of the period in proportion to the
quantity billed on each day at that line's price version (the hourly attributed usage, billed as
`rating.billed_nano` does it). Days are whole minor units, split by largest remainder (ties to the
earlier day, as `rating.allocate` splits shared costs), so a unit's days add up to its resources' total exactly
(the invoice total without its capability sections, which no day carries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from pool_catalog.pricing import minor_unit

from ..grouping import bins_of, group_rows, take_columns
from ..rate.idle import allocated_resources, level_unit
from ..rate.rating import SHARED, billed_nano, billed_rows, from_nano, nano, price_run, version_index
from ..rate.result import Chargeback

LEVEL_QUANTUM = Decimal("0.001")
_KEY = ["cluster", "namespace", "resource", "tier", "version"]


def period_days(chargeback: Chargeback) -> list[dt.date]:
    """Every day of the period in its billing time zone, in order (a month so far may end mid-day: its last,
    partial day counts too)."""
    return [day for day, _ in chargeback.period.day_starts()]


def daily_costs(chargeback: Chargeback) -> dict[str, list[Decimal]]:
    """Business unit id → its cost on each day of the period (as many entries as `period_days`)."""
    lines = chargeback.lines
    day_count = len(period_days(chargeback))
    if lines.empty:
        return {}
    rates = chargeback.catalog.rates
    usage = chargeback.usage
    # The rows rating bills, taken as arrays and grouped by one folded key, billed a slice at a time: a month
    # is millions of rows.
    rows = np.flatnonzero(billed_rows(usage))
    taken = take_columns(usage, rows, ["cluster", "namespace", "resource", "tier", "hour"])
    hours = taken.pop("hour")
    version = version_index(hours, rates)
    # Local days: a day of a daylight-saving change has 23 or 25 hours, so days are bins, not steps.
    edges = np.array([pd.Timestamp(first).as_unit("ns").value for _, first in chargeback.period.day_starts()])
    day = bins_of(hours, edges)
    del hours
    groups = group_rows({**taken, "version": version, "day": day})
    del taken, version, day
    used, requested = usage["used"].to_numpy(), usage["requested"].to_numpy()
    billed = groups.sum_rows(rows, lambda at: billed_nano(used[at], requested[at], chargeback.billing_mode))
    # A line covers a run of versions with one price (rating.price_run): its days are weighed over the run.
    run_of = price_run(rates)
    per_key: dict[tuple, np.ndarray] = {}
    for cluster, namespace, resource, tier, version, day, amount in zip(
        *(groups.keys[c] for c in [*_KEY, "day"]), billed, strict=True
    ):
        key = (cluster, namespace, resource, tier, run_of(resource, tier, version))
        per_key.setdefault(key, np.zeros(day_count, dtype=np.int64))[day] += amount
    version_of = {pd.Timestamp(v.effective_from): i for i, v in enumerate(rates.sorted_versions())}
    minor = minor_unit(chargeback.currency)
    result: dict[str, list[Decimal]] = {}
    for line in lines.to_dict("records"):
        key = (line["cluster"], line["namespace"], line["resource"], line["tier"])
        weights = per_key.get((*key, run_of(*key[2:], version_of[pd.Timestamp(line["rate_effective_from"])])))
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
    rows = np.flatnonzero((usage["resource"].isin(allocatable) & (usage["business_unit"] != SHARED)).to_numpy())
    if not len(rows):
        return {}
    groups = group_rows(take_columns(usage, rows, ["business_unit", "resource", "tier"]))
    sums = groups.keys.assign(
        allocated=groups.sum(nano(usage["allocated"].to_numpy()[rows])),
        used=groups.sum(nano(usage["used"].to_numpy()[rows])),
    )
    hours = Decimal(chargeback.period.hours)
    order = {name: i for i, name in enumerate(allocatable)}
    result: dict[str, list[AllocationUse]] = {}
    for row in sums.to_dict("records"):
        unit_id, resource, tier = row["business_unit"], row["resource"], row["tier"]
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
