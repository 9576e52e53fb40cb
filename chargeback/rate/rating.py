"""Rate the hourly usage frame at the catalog's rate card: attribute, price, split shared namespaces.

Pure functions from frame to new frame; each checks the schema of what it receives.

Money and quantities:
- Hourly quantities (floats from Prometheus) are converted once to integers of 1e-9 of their
  usage unit (nano core-hours, nano GiB-hours …) by rounding half-even. Every sum after that is
  exact integer arithmetic, so the same data gives the same invoice whatever the row order.
- A line's `billed_quantity` is in the price's unit (a GiB-month is 730 GiB-hours) and is quantized
  to 1e-9 half-even; `amount = billed_quantity × unit_price`, rounded half-even to the currency's
  minor unit. An invoice total is the exact sum of its rounded lines.
- Hours are priced at the rate version in force at that hour. A line is split at a new version only
  where the version changed that line's price (resource and tier): a price change mid-month yields one
  line per (namespace, resource, tier, price), each carrying the version it was priced at (the one in
  force at its first hour); a version that leaves the price alone splits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from pool_catalog.models import (
    BillingMode,
    Catalog,
    Price,
    RateCard,
    RateVersion,
    Resource,
    SharedNamespace,
    SharedSplit,
)
from pool_catalog.pricing import minor_unit, round_money
from pool_catalog.resources import names, spec_of

from ..errors import RatingError
from ..grouping import HOUR_NS, group_rows, row_slices, steps_since, take_columns
from ..period import Period
from .frames import check_frame, empty_frame

UNALLOCATED = "unallocated"
"""Business unit of namespaces no unit owns (and of shared namespaces with split `none`)."""
SHARED = "shared"
"""Business unit of a shared namespace before its cost is split across units."""

NANO = 10**9
QUANTUM = Decimal(1).scaleb(-9)
# Hourly quantities above this are refused: far beyond any real server, and it keeps month sums
# of nano units inside int64.
MAX_HOURLY_QUANTITY = 1e7

USAGE_KINDS = {
    "hour": "datetime-utc",
    "cluster": "str",
    "namespace": "str",
    "resource": "str",
    "tier": "str",
    "used": "float",
    "requested": "float",
    "allocated": "float",
    "coverage": "float",
    "used_peak": "float",
    "requested_peak": "float",
}
"""Column kinds of chargeback.collect.usage.USAGE_SCHEMA (whose values `check_usage_frame` checks in full)."""

ATTRIBUTED_SCHEMA = {
    **USAGE_KINDS,
    "business_unit": "str",
    "cost_center": "str",
    "shared": "bool",
}
"""The usage frame (chargeback.collect.usage.USAGE_SCHEMA) plus the owning unit; `shared` marks namespaces
whose cost is split across units."""

LINE_SCHEMA = {
    "period": "str",
    "business_unit": "str",
    "cost_center": "str",
    "cluster": "str",
    "namespace": "str",
    "resource": "str",
    "tier": "str",
    "usage_quantity": "decimal",
    "billed_quantity": "decimal",
    "unit": "str",
    "unit_price": "decimal",
    "amount": "decimal",
    "currency": "str",
    "usage_unit": "str",
    "rate_effective_from": "datetime-utc",
    "charge_period_start": "datetime-utc",
    "charge_period_end": "datetime-utc",
    "billing_mode": "str",
    "shared_split": "str",
    "share": "decimal",
}
"""A rated line. usage_quantity is measured use in `usage_unit`; billed_quantity and unit_price are
in `unit` (the price's unit). shared_split is '' for a unit's own namespace; share is the unit's
fraction of a shared namespace's line (1 for own lines)."""

COVERAGE_SCHEMA = {
    "cluster": "str",
    "namespace": "str",
    "hours_in_period": "int",
    "hours_seen": "int",
    "hours_covered": "float",
}
"""Per namespace: hours with any sample, and scrape-covered hours (sum of hourly coverage)."""

_LINE_KEY = ["business_unit", "cost_center", "cluster", "namespace", "resource", "tier"]
LINE_ORDER = ["business_unit", "cluster", "namespace", "resource", "tier", "rate_effective_from"]
"""Row order of rated lines and of every file made from them."""


def billing_mode_of(rates: RateCard, override: str | BillingMode | None = None) -> BillingMode:
    """The billing mode of a run: the flag if given, else rates.yaml's."""
    if override is None:
        return rates.billing_mode
    try:
        return BillingMode(override)
    except ValueError as e:
        modes = ", ".join(m.value for m in BillingMode)
        raise RatingError(f"billing mode {override!r} is unknown: use one of {modes}") from e


def shared_rule(rates: RateCard, namespace: str, cluster: str) -> SharedNamespace | None:
    """The rates.yaml shared_namespaces entry for this namespace, or None."""
    for rule in rates.shared_namespaces:
        if rule.namespace == namespace and rule.cluster in (None, cluster):
            return rule
    return None


def attribute(usage: pd.DataFrame, catalog: Catalog, period: Period) -> pd.DataFrame:
    """Add business_unit, cost_center and shared to the usage frame; check hours, resources and tiers.

    Shared namespaces win over ownership: their cost is split by the rate card's rule.
    """
    check_frame(usage, USAGE_KINDS, "rating (usage frame)")  # collect_usage checked every value already
    _check_rows(usage, period)
    _check_storage_tiers(usage, catalog)
    pairs = group_rows({"cluster": usage["cluster"], "namespace": usage["namespace"]})
    owners = []
    for cluster, namespace in pairs.keys.itertuples(index=False):
        rule = shared_rule(catalog.rates, namespace, cluster)
        if rule is not None and rule.split is not SharedSplit.NONE:
            owners.append((SHARED, "", True))
        elif rule is not None:
            owners.append((UNALLOCATED, "", False))
        else:
            unit = catalog.owner_of(namespace, cluster)
            owners.append((unit.id, unit.cost_center, False) if unit else (UNALLOCATED, "", False))
    unit_ids, cost_centers, shared = (np.array([owner[i] for owner in owners], dtype=object) for i in range(3))
    # New columns only, the usage columns are shared, not copied; text as categoricals like the frame's own.
    return usage.assign(
        business_unit=_per_row(unit_ids, pairs.codes),
        cost_center=_per_row(cost_centers, pairs.codes),
        shared=shared.astype(bool)[pairs.codes],
    )


def _per_row(per_pair: np.ndarray, pair_of_row: np.ndarray) -> pd.Categorical:
    categories, code_of_pair = np.unique(per_pair, return_inverse=True)
    codes = code_of_pair.astype(np.min_scalar_type(-len(categories)))[pair_of_row]
    return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


def _check_rows(usage: pd.DataFrame, period: Period) -> None:
    start, end = pd.Timestamp(period.start), pd.Timestamp(period.end)
    outside = usage[(usage["hour"] < start) | (usage["hour"] >= end)]
    if len(outside):
        first = outside["hour"].min()
        raise RatingError(f"usage frame has hours outside {period} (first: {first.isoformat()}); collect one month")
    for column in ("used", "requested", "allocated"):
        values = usage[column].to_numpy(dtype=float)
        bad = ~np.isnan(values) & (values >= MAX_HOURLY_QUANTITY)
        if bad.any():
            row = usage[bad].iloc[0]
            raise RatingError(
                f"namespace {row['namespace']!r} (cluster {row['cluster']}) has {column} {row[column]!r} "
                f"{row['resource']} in the hour {row['hour'].isoformat()}: quantities must stay below "
                f"{MAX_HOURLY_QUANTITY:.0e} per hour; check the Prometheus series"
            )


def _check_storage_tiers(usage: pd.DataFrame, catalog: Catalog) -> None:
    """Storage rows must name a tier of their cluster; an unknown StorageClass cannot be priced."""
    storage = usage[usage["resource"] == Resource.STORAGE.value][["cluster", "namespace", "tier"]].drop_duplicates()
    all_tiers = {t.name for c in catalog.pool.clusters for t in c.storage_tiers}
    problems = []
    for cluster_name, namespace, tier in sorted(storage.itertuples(index=False)):
        cluster = catalog.pool.cluster(cluster_name)
        known = {t.name for t in cluster.storage_tiers} if cluster else all_tiers
        if tier == "":
            problems.append(
                f"namespace {namespace!r} (cluster {cluster_name}) has volumes whose storage class is unknown "
                "(kube_persistentvolumeclaim_info has no series for them)"
            )
        elif tier not in known:
            classes = ", ".join(
                sorted(f"{t.class_name} ({t.name})" for c in catalog.pool.clusters for t in c.storage_tiers)
            )
            problems.append(
                f"namespace {namespace!r} (cluster {cluster_name}) has volumes of storage class {tier!r}, "
                f"which is no storage tier in pool.yaml (known classes: {classes})"
            )
    if problems:
        raise RatingError(
            "; ".join(problems) + ": add the class as a storage tier in pool.yaml (with a price in rates.yaml) "
            "or move the volumes to a pool storage class"
        )


def nano(values: pd.Series | np.ndarray) -> np.ndarray:
    """Hourly quantities as int64 nano units (half-even), NaN as 0: the one float→exact conversion."""
    scaled = np.array(values, dtype=float)  # one working copy, scaled in place: columns are millions of rows
    np.nan_to_num(scaled, copy=False, nan=0.0)
    scaled *= NANO
    np.rint(scaled, out=scaled)
    return scaled.astype(np.int64)


def from_nano(total: int) -> Decimal:
    return Decimal(int(total)).scaleb(-9)


def version_index(hours: pd.Series, rates: RateCard, what: str = "usage") -> np.ndarray:
    """Index into rates.sorted_versions() of the version in force at each hour."""
    versions = rates.sorted_versions()
    starts = pd.DatetimeIndex([pd.Timestamp(v.effective_from) for v in versions]).as_unit("ns").asi8
    nanoseconds = pd.DatetimeIndex(hours).as_unit("ns").asi8
    # 16 bits (a rate card has far fewer versions), searched a slice at a time: these are millions of hours.
    index = np.empty(len(nanoseconds), dtype=np.int16)
    for part in row_slices(len(nanoseconds)):
        index[part] = starts.searchsorted(nanoseconds[part], side="right")
    index -= 1
    if (index < 0).any():
        first = hours[index < 0].min()
        raise RatingError(
            f"rates.yaml has no price version in force at {first.isoformat()} ({what}): the first version starts "
            f"{versions[0].effective_from:%Y-%m-%d %H:%M}; add a version with an earlier effective_from"
        )
    return index


def billed_nano(used: pd.Series | np.ndarray, requested: pd.Series | np.ndarray, mode: BillingMode) -> np.ndarray:
    """Quantity to bill per row in nano usage units. Where a request means nothing (egress, or no
    request recorded: NaN) request and max modes bill the measured use."""
    used_nano = nano(used)
    if mode is BillingMode.USAGE:
        return used_nano
    billed = nano(requested)
    if mode is BillingMode.MAX:
        np.maximum(billed, used_nano, out=billed)
    np.copyto(billed, used_nano, where=np.isnan(np.asarray(requested, dtype=float)))
    return billed


def billed_rows(usage: pd.DataFrame) -> np.ndarray:
    """Which rows of a usage frame rating bills: a billable resource whose use is known (rows of unscraped
    hours carry coverage, not money)."""
    return (usage["resource"].isin(names()) & usage["used"].notna()).to_numpy()


def rate(attributed: pd.DataFrame, catalog: Catalog, period: Period, billing_mode: BillingMode) -> pd.DataFrame:
    """Priced lines per (unit, cluster, namespace, resource, tier, rate version); shared namespaces split."""
    check_frame(attributed, ATTRIBUTED_SCHEMA, "rating (attributed usage)")
    rates = catalog.rates
    versions = rates.sorted_versions()
    # Rows of unscraped hours (used unknown) are not billed; `coverage` reports them. Only the columns
    # rating reads are taken, one at a time: a month of a large cluster is millions of rows.
    rows = np.flatnonzero(billed_rows(attributed))
    if not len(rows):
        return empty_frame(LINE_SCHEMA)
    taken = take_columns(attributed, rows, [*_LINE_KEY, "shared", "hour"])
    version = version_index(taken.pop("hour"), rates)
    groups = group_rows({**taken, "version": version})
    del taken, version
    hour_ns = pd.DatetimeIndex(attributed["hour"]).as_unit("ns").asi8  # a view: first and last hour per line
    first_hours = _timestamps(groups.min_rows(rows, hour_ns))
    last_hours = _timestamps(groups.max_rows(rows, hour_ns))
    del hour_ns
    used, requested = attributed["used"].to_numpy(), attributed["requested"].to_numpy()
    used_sums = groups.sum_rows(rows, lambda at: nano(used[at]))
    billed_sums = groups.sum_rows(rows, lambda at: billed_nano(used[at], requested[at], billing_mode))
    sums = groups.keys.assign(
        used_nano=used_sums, billed_nano=billed_sums, first_hour=first_hours, last_hour=last_hours
    )
    sums = _merge_unchanged_prices(sums, rates)
    sums = sums[(sums["used_nano"] > 0) | (sums["billed_nano"] > 0)]  # nothing used, nothing billed: no line
    lines, missing = [], []
    for row in sums.to_dict("records"):
        unit_id, cost_center, cluster, namespace, resource_name, tier, shared, version_number = (
            row[column] for column in [*_LINE_KEY, "shared", "version"]
        )
        version = versions[version_number]
        resource = spec_of(resource_name)
        try:
            price = price_for(version, resource_name, tier, namespace, cluster)
        except RatingError as e:
            missing.append(str(e))
            continue
        billed_quantity = (from_nano(row["billed_nano"]) / resource.price_units[price.unit]).quantize(
            QUANTUM, rounding=ROUND_HALF_EVEN
        )
        lines.append(
            {
                "period": period.label,
                "business_unit": unit_id,
                "cost_center": cost_center,
                "cluster": cluster,
                "namespace": namespace,
                "resource": resource_name,
                "tier": tier,
                "usage_quantity": from_nano(row["used_nano"]),
                "billed_quantity": billed_quantity,
                "unit": price.unit,
                "unit_price": price.price,
                "amount": round_money(billed_quantity * price.price, rates.currency),
                "currency": rates.currency,
                "usage_unit": resource.usage_unit,
                "rate_effective_from": version.effective_from,
                "charge_period_start": row["first_hour"],
                "charge_period_end": row["last_hour"] + dt.timedelta(hours=1),
                "billing_mode": billing_mode.value,
                "shared_split": _split_of(rates, namespace, cluster) if shared else "",
                "share": Decimal(1),
            }
        )
    if missing:
        raise RatingError("; ".join(sorted(set(missing))))
    rated = split_shared(_lines_frame(lines), catalog)
    rated = rated.sort_values(LINE_ORDER, kind="stable").reset_index(drop=True)
    return check_frame(rated, LINE_SCHEMA, "rating (lines)")


def price_run(rates: RateCard) -> Callable[[str, str, int], int]:
    """(resource, tier, version index) → index of the first version of the run of adjacent versions that price
    (resource, tier) alike. Rating bills such a run as one line; a version that changes the price starts a
    new one."""
    versions = rates.sorted_versions()
    runs: dict[tuple[str, str], list[int]] = {}

    def run_of(resource: str, tier: str, version: int) -> int:
        if (resource, tier) not in runs:
            starts: list[int] = []
            for i, current in enumerate(versions):
                unchanged = i > 0 and current.price_of(resource, tier) == versions[i - 1].price_of(resource, tier)
                starts.append(starts[-1] if unchanged else i)
            runs[resource, tier] = starts
        return runs[resource, tier][version]

    return run_of


def _merge_unchanged_prices(sums: pd.DataFrame, rates: RateCard) -> pd.DataFrame:
    """One row per line and run of versions with one price: quantities summed (exact nano units), first and last
    hours widened, the version the earliest version present (the one in force at the line's first hour)."""
    if len(rates.versions) < 2 or sums.empty:
        return sums
    run_of = price_run(rates)
    runs = [run_of(*key) for key in zip(sums["resource"], sums["tier"], sums["version"], strict=True)]
    merged = sums.assign(run=runs).groupby([*_LINE_KEY, "shared", "run"], sort=False, observed=True)
    return merged.agg(
        version=("version", "min"),
        used_nano=("used_nano", "sum"),
        billed_nano=("billed_nano", "sum"),
        first_hour=("first_hour", "min"),
        last_hour=("last_hour", "max"),
    ).reset_index()


def _timestamps(nanoseconds: np.ndarray) -> list[dt.datetime]:
    return list(pd.to_datetime(nanoseconds, unit="ns", utc=True).to_pydatetime())


def _split_of(rates: RateCard, namespace: str, cluster: str) -> str:
    rule = shared_rule(rates, namespace, cluster)
    return rule.split.value if rule else ""


def price_for(version: RateVersion, resource: str, tier: str, namespace: str, cluster: str) -> Price:
    """The version's price of (resource, tier), or a RatingError naming the namespace and the version."""
    price = version.price_of(resource, tier)
    if price is not None:
        return price
    spec = spec_of(resource)
    what = f"{spec.name} tier {tier!r}" if spec.per_tier else spec.name
    field = f"{spec.name}.{tier}" if spec.per_tier else spec.name
    raise RatingError(
        f"rates.yaml version effective {version.effective_from:%Y-%m-%d %H:%M} has no price for {what}, "
        f"used by namespace {namespace!r} (cluster {cluster}): add `{field}: {{price: …, unit: …}}` to that version"
    )


def hourly_price_for(version: RateVersion, resource: str, tier: str, namespace: str, cluster: str) -> Decimal:
    """Price of one usage unit (core-hour, GiB-hour, GiB …) at `version`; RatingError if missing."""
    price = price_for(version, resource, tier, namespace, cluster)
    return price.price / spec_of(resource).price_units[price.unit]


def _lines_frame(lines: list[dict]) -> pd.DataFrame:
    if not lines:
        return empty_frame(LINE_SCHEMA)
    frame = pd.DataFrame(lines, columns=list(LINE_SCHEMA))
    for column, kind in LINE_SCHEMA.items():
        if kind == "datetime-utc":
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
        elif kind in ("str", "decimal"):
            frame[column] = frame[column].astype(object)
    return frame


def own_costs(lines: pd.DataFrame) -> dict[str, Decimal]:
    """Each unit's cost for its own namespaces (shared shares excluded)."""
    own = lines[lines["shared_split"] == ""]
    return {unit: sum(group["amount"], Decimal(0)) for unit, group in own.groupby("business_unit", sort=True)}


def split_shared(lines: pd.DataFrame, catalog: Catalog) -> pd.DataFrame:
    """Replace each line of a shared namespace by one line per receiving unit.

    Money is split in whole minor units by largest remainder (ties to the unit listed first), so the
    shares of a line add up to the line's amount exactly; quantities are split by the same share.
    `proportional` weighs units by their own cost in the period (evenly if none has any).
    """
    shared = lines[lines["business_unit"] == SHARED]
    if shared.empty:
        return lines
    rates = catalog.rates
    costs = own_costs(lines)
    units = {u.id: u for u in catalog.units}
    split_lines = []
    for line in shared.to_dict("records"):
        rule = shared_rule(rates, line["namespace"], line["cluster"])
        recipients = list(rule.among) or list(units)
        unknown = [r for r in recipients if r not in units]
        if unknown or not recipients:
            raise RatingError(
                f"rates.yaml shared_namespaces entry for {rule.namespace!r} lists units that are not in the "
                f"catalog: {', '.join(unknown) or 'none'}; use ids of business-units/*.yaml"
            )
        weights = [Fraction(1)] * len(recipients)
        if rule.split is SharedSplit.PROPORTIONAL and any(costs.get(r, 0) for r in recipients):
            weights = [Fraction(costs.get(r, Decimal(0))) for r in recipients]
        total_weight = sum(weights)
        amounts = allocate(line["amount"], weights, minor_unit(line["currency"]))
        for unit_id, weight, amount in zip(recipients, weights, amounts, strict=True):
            if not weight:
                continue  # a unit without own cost takes no part of a proportional split
            share = weight / total_weight
            split_lines.append(
                {
                    **line,
                    "business_unit": unit_id,
                    "cost_center": units[unit_id].cost_center,
                    "usage_quantity": _scaled(line["usage_quantity"], share),
                    "billed_quantity": _scaled(line["billed_quantity"], share),
                    "amount": amount,
                    "share": _scaled(Decimal(1), share),
                }
            )
    own = lines[lines["business_unit"] != SHARED]
    return pd.concat([own, _lines_frame(split_lines)], ignore_index=True) if len(own) else _lines_frame(split_lines)


def _scaled(quantity: Decimal, share: Fraction) -> Decimal:
    exact = Fraction(quantity) * share
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(QUANTUM, rounding=ROUND_HALF_EVEN)


def allocate(amount: Decimal, weights: list[Fraction], minor: Decimal) -> list[Decimal]:
    """Split `amount` by `weights` into multiples of `minor` that add up to `amount` exactly."""
    units = int(amount / minor)
    total = sum(weights)
    quotas = [Fraction(units) * w / total for w in weights]
    floors = [int(q) for q in quotas]
    left = units - sum(floors)
    by_remainder = sorted(range(len(quotas)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [Decimal(f) * minor for f in floors]


def coverage(attributed: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Per namespace: hours with rows, and how much of them scrapes covered (sum of each hour's coverage).

    An hour's coverage is the worst of the namespace's rows in that hour: a namespace whose CPU was not
    measured is not covered because its quota was (a root cgroup lost made CPU and memory unknown while
    kube-state-metrics answered, and the invoice said "complete"). Collection adds rows with
    coverage 0 for the hours a source was not scraped, so uncovered hours show here; hours before a
    namespace existed have no rows. Missing data is reported, never billed as zero silently.
    """
    check_frame(attributed, ATTRIBUTED_SCHEMA, "coverage")
    if attributed.empty:
        return empty_frame(COVERAGE_SCHEMA)
    hour_number = steps_since(attributed["hour"], pd.Timestamp(period.start).as_unit("ns").value, HOUR_NS)
    hours = group_rows({"cluster": attributed["cluster"], "namespace": attributed["namespace"], "hour": hour_number})
    del hour_number
    worst = np.full(len(hours), np.inf)
    np.minimum.at(worst, hours.codes, attributed["coverage"].to_numpy(dtype=float))
    hourly = hours.keys.assign(coverage=np.clip(worst, 0, 1))
    per_namespace = hourly.groupby(["cluster", "namespace"], sort=True)["coverage"]
    frame = pd.DataFrame(
        {
            "hours_in_period": period.hours,
            "hours_seen": per_namespace.size().astype("int64"),
            "hours_covered": per_namespace.sum().round(4),
        }
    ).reset_index()
    frame["cluster"] = frame["cluster"].astype(object)
    frame["namespace"] = frame["namespace"].astype(object)
    return check_frame(frame[list(COVERAGE_SCHEMA)], COVERAGE_SCHEMA, "coverage")
