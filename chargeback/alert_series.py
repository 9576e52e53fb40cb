"""Figures the alert rules need beyond the month-to-date totals: each namespace's cost of the last
24 billed hours (the cost-anomaly rule compares it with its own trailing average inside Prometheus),
and how much of the last 24 hours each cluster's scrape sources covered (the coverage-gap rule).

Both are computed from the chargeback the exporter already made, so they price usage exactly as the
invoice does (billing mode, rate version in force each hour); a namespace's own cost, before any
shared-namespace split.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd

from .collect.usage import used_source
from .rate.rating import billed_nano, billed_rows, from_nano, hourly_price_for, version_index
from .rate.result import Chargeback

WINDOW = dt.timedelta(hours=24)
"""The trailing window of both figures: the last day billed (fewer hours early in a month)."""

LAST_DAY_COLUMNS = ["business_unit", "cluster", "namespace", "amount"]
COVERAGE_COLUMNS = ["cluster", "source", "coverage"]


def _window(chargeback: Chargeback) -> pd.DataFrame:
    usage = chargeback.usage
    start = pd.Timestamp(max(chargeback.period.start, chargeback.period.end - WINDOW))
    return usage[usage["hour"] >= start]


def last_day_costs(chargeback: Chargeback) -> pd.DataFrame:
    """Per namespace: the cost (Decimal) of its billable use in the last 24 billed hours."""
    recent = _window(chargeback)
    recent = recent[billed_rows(recent)]
    if recent.empty:
        return pd.DataFrame(columns=LAST_DAY_COLUMNS)
    rates = chargeback.catalog.rates
    versions = rates.sorted_versions()
    work = pd.DataFrame(
        {
            **{
                key: recent[key].astype(object) for key in ("business_unit", "cluster", "namespace", "resource", "tier")
            },
            "version": version_index(recent["hour"], rates),
            "billed": billed_nano(recent["used"], recent["requested"], chargeback.billing_mode),
        }
    )
    sums = work.groupby(["business_unit", "cluster", "namespace", "resource", "tier", "version"], sort=True)[
        "billed"
    ].sum()
    totals: dict[tuple[str, str, str], Decimal] = {}
    for (unit, cluster, namespace, resource, tier, version), billed in sums.items():
        price = hourly_price_for(versions[int(version)], resource, tier, namespace, cluster)
        key = (unit, cluster, namespace)
        totals[key] = totals.get(key, Decimal(0)) + from_nano(int(billed)) * price
    rows = [(*key, amount) for key, amount in sorted(totals.items())]
    return pd.DataFrame(rows, columns=LAST_DAY_COLUMNS)


def scrape_coverage(chargeback: Chargeback) -> pd.DataFrame:
    """Per cluster and scrape source: the average share of the last 24 billed hours its scrapes covered.

    An hour's coverage of a source is the best coverage of any row measured from it (collection marks
    every row of an unscraped hour with coverage 0); an hour in which the cluster has rows but none
    from the source counts as 0.
    """
    recent = _window(chargeback)
    if recent.empty:
        return pd.DataFrame(columns=COVERAGE_COLUMNS)
    source = recent["resource"].map(used_source)
    frame = pd.DataFrame(
        {"cluster": recent["cluster"].astype(object), "source": source, "hour": recent["hour"], "c": recent["coverage"]}
    ).dropna(subset=["source"])
    hours = recent.groupby("cluster")["hour"].nunique()
    best = frame.groupby(["cluster", "source", "hour"], sort=True)["c"].max().clip(0, 1)
    per_source = best.groupby(level=["cluster", "source"], sort=True).sum()
    rows = []
    for (cluster, name), covered in per_source.items():
        rows.append((cluster, name, float(np.float64(covered) / hours[cluster])))
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
