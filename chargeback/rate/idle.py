"""Idle allocations: quota or requests held but mostly unused, what they cost, and a right-size.

For each namespace, resource and tier, over the hours where the allocation existed (quota or
request above zero), compare the hourly allocation with the hourly use:
- utilization = average use / average allocation; flagged below rates.idle.utilization_threshold,
  and always for cpu, memory and gpu of a namespace that ran no pod in the whole period;
- idle cost = Σ over hours of (allocation − use, if positive) × the price in force at that hour;
- recommended allocation = p95 of hourly use × (1 + headroom), rounded up to a step a person
  would write in a quota (never below the p95);
- monthly savings = (allocation − recommended) × 730 h × the latest price of the period.
Allocations that existed for fewer than rates.idle.min_hours hours are not judged.
Storage requests are judged per PersistentVolumeClaim when the per-PVC detail is given (the `pvc`
column names the claim to shrink); the namespace's storage quota is judged as a whole.
Hourly values are levels: a core-hour in one hour is one core held (or used) for that hour.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd

from pool_catalog.models import HOURS_PER_MONTH, Catalog, Resource
from pool_catalog.pricing import round_money
from pool_catalog.resources import spec_of, specs

from ..collect.usage import PODS
from ..grouping import Column, group_rows, row_slices, take_columns
from ..period import Period
from .frames import check_frame, empty_frame
from .rating import ATTRIBUTED_SCHEMA, from_nano, hourly_price_for, nano, version_index


def allocated_resources() -> tuple[str, ...]:
    """Resources a namespace allocates (egress has no quota or request): their spec has a level unit."""
    return tuple(spec.name for spec in specs() if spec.allocated)


QUOTA_UNDERUSED = "quota-underused"
REQUESTS_UNDERUSED = "requests-underused"
VOLUMES_UNDERUSED = "volumes-underused"
NO_RUNNING_PODS = "no-running-pods"
REASONS = {
    QUOTA_UNDERUSED: "quota mostly unused",
    REQUESTS_UNDERUSED: "pod requests mostly unused",
    VOLUMES_UNDERUSED: "volume claims mostly empty",
    NO_RUNNING_PODS: "no pod ran in the whole period",
}
"""Reason codes of idle.csv and what they mean."""


def level_unit(resource: str) -> str:
    """Unit of allocation and use levels in idle reports (the usage unit per hour), from the resource's spec."""
    unit = spec_of(resource).level_unit
    if unit is None:
        raise ValueError(f"resource {resource!r} is never allocated, so it has no level unit")
    return unit


IDLE_SCHEMA = {
    "business_unit": "str",
    "namespace": "str",
    "resource": "str",
    "tier": "str",
    "allocated": "decimal",
    "used_avg": "decimal",
    "used_p95": "decimal",
    "utilization": "decimal",
    "idle_cost": "decimal",
    "recommended_allocation": "decimal",
    "monthly_savings": "decimal",
    "reason": "str",
    "cluster": "str",
    "basis": "str",
    "hours": "int",
    "unit": "str",
    "pvc": "str",
}
"""Flagged allocations; `basis` is quota or requests, levels are in `unit` (cores, GiB, …); `pvc` names the
claim of a per-volume row ("" for namespace-wide rows)."""

LEVEL = Decimal("0.0001")
_KEY = ["business_unit", "cluster", "namespace", "resource", "tier", "pvc"]


def recommend(resource: str, p95: Decimal, headroom: float) -> Decimal:
    """p95 × (1 + headroom) rounded up to a step a quota is written in; zero stays zero."""
    target = p95 * (1 + Decimal(str(headroom)))
    if target <= 0:
        return Decimal(0)
    step = _step(resource, target)
    return (target / step).to_integral_value(rounding=ROUND_CEILING) * step


def _step(resource: str, target: Decimal) -> Decimal:
    return spec_of(resource).idle_step(target)


def find_idle(
    attributed: pd.DataFrame, catalog: Catalog, period: Period, volumes: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Flagged allocations of the period, sorted by unit, namespace, resource, tier, claim and reason.

    `volumes` (usage.VOLUME_SCHEMA) is the per-PVC detail of storage; without it storage requests are
    judged per namespace and tier."""
    check_frame(attributed, ATTRIBUTED_SCHEMA, "idle (attributed usage)")
    idle_rows = []
    no_pods = _namespaces_without_pods(attributed)
    per_volume = volumes is not None and not volumes.empty
    for basis, column in (("quota", "allocated"), ("requests", "requested")):
        judged = attributed["resource"].isin(allocated_resources()) & (attributed[column].to_numpy() > 0)  # NaN: no
        if basis == "requests" and per_volume:
            judged &= attributed["resource"] != Resource.STORAGE.value
        rows = np.flatnonzero(judged.to_numpy())
        del judged
        if len(rows):  # namespace-wide rows: no pvc
            frame = take_columns(attributed, rows, [*_KEY[:-1], "hour", "used", column])
            del rows
            idle_rows.extend(_judge(frame, column, basis, no_pods, catalog))
            del frame
    if per_volume:
        frame = _volume_requests(volumes, attributed)
        if not frame.empty:
            idle_rows.extend(_judge(frame, "requested", "requests", no_pods, catalog))
    if not idle_rows:
        return empty_frame(IDLE_SCHEMA)
    result = pd.DataFrame(idle_rows, columns=list(IDLE_SCHEMA))
    result["hours"] = result["hours"].astype("int64")
    result = result.sort_values(
        ["business_unit", "namespace", "resource", "tier", "pvc", "cluster", "reason"], kind="stable"
    )
    return check_frame(result.reset_index(drop=True), IDLE_SCHEMA, "idle")


def _volume_requests(volumes: pd.DataFrame, attributed: pd.DataFrame) -> pd.DataFrame:
    """Per-PVC hours shaped like attributed storage rows: the namespace's owner, hours the use is known."""
    owners = group_rows({key: attributed[key] for key in ("cluster", "namespace", "business_unit")}).keys
    frame = volumes[volumes["used"].notna()].merge(owners, on=["cluster", "namespace"], how="inner")
    return frame.assign(resource=Resource.STORAGE.value)


def _namespaces_without_pods(attributed: pd.DataFrame) -> set[tuple[str, str]]:
    """(cluster, namespace) pairs with no running pod-hour in the whole period (no pods row counts as none)."""
    pairs = group_rows({"cluster": attributed["cluster"], "namespace": attributed["namespace"]})
    running = pairs.sum(np.where(attributed["resource"] == PODS, attributed["used"].fillna(0.0), 0.0))
    keys = zip(pairs.keys["cluster"], pairs.keys["namespace"], running, strict=True)
    return {(cluster, namespace) for cluster, namespace, pods in keys if pods <= 0}


def _judge(
    frame: Mapping[str, Column] | pd.DataFrame, column: str, basis: str, no_pods: set, catalog: Catalog
) -> list[dict]:
    """Rows of allocations used below the policy's threshold; `frame` has the key columns (`pvc` only for
    per-volume rows), hour, used and `column`, the allocation judged."""
    policy = catalog.rates.idle
    versions = catalog.rates.sorted_versions()
    version = version_index(frame.pop("hour"), catalog.rates, "idle allocations")  # hours: no longer needed
    groups = group_rows({key: frame[key] for key in _KEY if key in frame})
    hour_counts, last_versions = groups.size(), groups.max(version)
    by_version = group_rows({"group": groups.codes, "version": version})
    del version
    # Held, used and idle (held − used, at least 0) per group, a slice of rows at a time: millions of rows.
    held_column, used_column = np.asarray(frame[column], dtype=float), np.asarray(frame["used"], dtype=float)
    held_sums, used_sums = np.zeros(len(groups), dtype=np.int64), np.zeros(len(groups), dtype=np.int64)
    idle_sums = np.zeros(len(by_version), dtype=np.int64)
    for part in row_slices(len(groups.codes)):
        held, used = nano(held_column[part]), nano(used_column[part])
        np.add.at(held_sums, groups.codes[part], held)
        np.add.at(used_sums, groups.codes[part], used)
        held -= used
        np.clip(held, 0, None, out=held)
        np.add.at(idle_sums, by_version.codes[part], held)
    idle_by_version: dict[int, list[tuple[int, int]]] = {}
    pairs = zip(by_version.keys["group"], by_version.keys["version"], idle_sums, strict=True)
    for group, version_number, idle in pairs:
        idle_by_version.setdefault(int(group), []).append((int(version_number), int(idle)))
    del by_version
    # NaN (unscraped hours) count as 0: in place where `used_column` is this function's own (taken rows).
    p95_of = groups.quantile(np.nan_to_num(used_column, copy=not used_column.flags.writeable), 0.95)
    stats = groups.keys.assign(
        hours=hour_counts, held_nano=held_sums, used_nano=used_sums, last_version=last_versions, p95=p95_of
    )
    if "pvc" not in stats:
        stats["pvc"] = ""
    rows = []
    for group, stat in enumerate(stats.to_dict("records")):
        unit_id, cluster, namespace, resource, tier, pvc = (stat[key] for key in _KEY)
        hours = int(stat["hours"])
        if hours < policy.min_hours or stat["held_nano"] == 0:  # less than a nano-unit held: nothing to judge
            continue
        allocated = from_nano(stat["held_nano"]) / hours
        used_avg = from_nano(stat["used_nano"]) / hours
        utilization = used_avg / allocated
        idle_pods = (cluster, namespace) in no_pods and spec_of(resource).pod_driven
        if utilization >= Decimal(str(policy.utilization_threshold)) and not idle_pods:
            continue
        used_p95 = Decimal(repr(float(stat["p95"]))).quantize(LEVEL, rounding=ROUND_HALF_EVEN)
        recommended = recommend(resource, used_p95, policy.headroom)

        def price_at(version_number: int) -> Decimal:
            return hourly_price_for(versions[version_number], resource, tier, namespace, cluster)  # noqa: B023

        idle_cost = sum(
            (from_nano(idle_nano) * price_at(number) for number, idle_nano in idle_by_version[group]),
            Decimal(0),
        )
        latest_price = price_at(int(stat["last_version"]))
        savings = max(allocated - recommended, Decimal(0)) * HOURS_PER_MONTH * latest_price
        currency = catalog.rates.currency
        rows.append(
            {
                "business_unit": unit_id,
                "namespace": namespace,
                "resource": resource,
                "tier": tier,
                "allocated": allocated.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "used_avg": used_avg.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "used_p95": used_p95,
                "utilization": utilization.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "idle_cost": round_money(idle_cost, currency),
                "recommended_allocation": recommended,
                "monthly_savings": round_money(savings, currency),
                "reason": _reason(basis, resource, idle_pods),
                "cluster": cluster,
                "basis": basis,
                "hours": hours,
                "unit": level_unit(resource),
                "pvc": pvc,
            }
        )
    return rows


def _reason(basis: str, resource: str, idle_pods: bool) -> str:
    if idle_pods:
        return NO_RUNNING_PODS
    if basis == "quota":
        return QUOTA_UNDERUSED
    return VOLUMES_UNDERUSED if resource == Resource.STORAGE.value else REQUESTS_UNDERUSED
