"""Idle allocations: quota or requests held but mostly unused, what that money is, and a safe right-size.

For each namespace, resource and tier, over the hours where the allocation existed (quota or
request above zero), compare the hourly allocation with the hourly use:
- utilization = average use / average allocation; flagged below rates.idle.utilization_threshold,
  and always for cpu, memory and gpu of a namespace that ran no pod in the whole period;
- idle value = Σ over hours of (allocation − use, if positive) × the price in force at that hour: what
  the unused part is worth at the rate card. Two figures come from it, each counted once per allocation:
  - capacity held from the pool: the idle value of the allocation's binding row — its quota where it has
    one (the pool reserves quotas against its servers), else its requests (or claims); the other row of
    the same allocation is information (capacity 0) so that totals never add quota and requests together;
  - what the unit pays for it: the idle value of its requests (or claims) rows under request or max
    billing (the unit is billed max(request, use) or the request, so the unused request is on its bill);
    nothing under usage billing, and never for a quota (no mode bills quotas).
- recommended allocation = max(peak use, floor) × (1 + headroom), rounded up to a step a person would
  write in a quota. Peak use is the hours' peak levels (`used_peak`: the highest 5-minute CPU rate, the
  highest memory working set, the claims' highest bytes used; other resources their hourly level): CPU the
  99th percentile of the hourly peaks, everything else the highest. The floor of a quota row is the peak of
  the pods' requests (and of the claims' sizes) in the period: a quota below it refuses the unit's own
  pods. A requests row is advice on the requests themselves, so its floor is the peak use alone. No advice
  (None) on a namespace measured for fewer than rates.idle.min_history_hours hours of the period.
Allocations that existed for fewer than rates.idle.min_hours hours are not judged.
Storage requests are judged per PersistentVolumeClaim when the per-PVC detail is given (the `pvc`
column names the claim to shrink); the namespace's storage quota is judged as a whole.
Hourly values are levels: a core-hour in one hour is one core held (or used) for that hour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

import numpy as np
import pandas as pd

from pool_catalog.models import BillingMode, Catalog, Resource
from pool_catalog.pricing import round_money
from pool_catalog.resources import spec_of, specs

from ..collect.usage import PODS
from ..grouping import Column, Groups, group_rows, row_slices, take_columns
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
    "used_peak": "decimal",
    "requests_peak": "decimal-or-none",
    "utilization": "decimal",
    "idle_value": "decimal",
    "capacity_held": "decimal",
    "unit_pays": "decimal",
    "recommended_allocation": "decimal-or-none",
    "advice_basis": "str",
    "reason": "str",
    "cluster": "str",
    "basis": "str",
    "hours": "int",
    "unit": "str",
    "pvc": "str",
}
"""Flagged allocations; `basis` is quota or requests, levels are in `unit` (cores, GiB, …); `pvc` names the
claim of a per-volume row ("" for namespace-wide rows). `used_peak` is the use level the advice rests on,
`requests_peak` the floor of a quota row (None on requests rows); `idle_value` is every row's unused part at
the rate card, `capacity_held` the same on the allocation's binding row only (0 on the other), `unit_pays`
the part the unit is billed for; `recommended_allocation` is None where there is no advice, and
`advice_basis` says how it was found (or why there is none)."""

LEVEL = Decimal("0.0001")
_KEY = ["business_unit", "cluster", "namespace", "resource", "tier", "pvc"]


CPU_PERCENTILE = 0.99
"""Share of the hourly CPU peaks the advice covers (KRR's CPU strategy: a high percentile of fine-grained
use); memory and the other resources take the highest peak (an OOM kill follows one peak)."""


def recommend(resource: str, level: Decimal, floor: Decimal, headroom: float) -> Decimal:
    """max(level, floor) × (1 + headroom) rounded up to a step a quota is written in; zero stays zero.

    The headroom applies to the floor too: a rolling update briefly runs new pods beside the old."""
    target = max(level, floor) * (1 + Decimal(str(headroom)))
    if target <= 0:
        return Decimal(0)
    step = _step(resource, target)
    return (target / step).to_integral_value(rounding=ROUND_CEILING) * step


def _step(resource: str, target: Decimal) -> Decimal:
    return spec_of(resource).idle_step(target)


def find_idle(
    attributed: pd.DataFrame,
    catalog: Catalog,
    period: Period,
    volumes: pd.DataFrame | None = None,
    billing_mode: BillingMode | None = None,
) -> pd.DataFrame:
    """Flagged allocations of the period, sorted by unit, namespace, resource, tier, claim and reason.

    `volumes` (usage.VOLUME_SCHEMA) is the per-PVC detail of storage; without it storage requests are
    judged per namespace and tier. `billing_mode` (the rate card's by default) decides what the unit pays."""
    check_frame(attributed, ATTRIBUTED_SCHEMA, "idle (attributed usage)")
    mode = billing_mode or catalog.rates.billing_mode
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
            levels = ["used_peak", "requested", "requested_peak"] if basis == "quota" else ["used_peak"]
            frame = take_columns(attributed, rows, list(dict.fromkeys([*_KEY[:-1], "hour", "used", column, *levels])))
            del rows
            idle_rows.extend(_judge(frame, column, basis, no_pods, catalog, mode))
            del frame
    if per_volume:
        frame = _volume_requests(volumes, attributed)
        if not frame.empty:
            idle_rows.extend(_judge(frame, "requested", "requests", no_pods, catalog, mode))
    if not idle_rows:
        return empty_frame(IDLE_SCHEMA)
    result = pd.DataFrame(idle_rows, columns=list(IDLE_SCHEMA))
    result["hours"] = result["hours"].astype("int64")
    result = result.sort_values(
        ["business_unit", "namespace", "resource", "tier", "pvc", "cluster", "reason"], kind="stable"
    )
    return check_frame(_count_once(result.reset_index(drop=True)), IDLE_SCHEMA, "idle")


def _count_once(idle: pd.DataFrame) -> pd.DataFrame:
    """Capacity held counted once per allocation: where its quota is flagged, its requests (or claims) rows
    are information (capacity 0) — a quota bounds the requests within it, so the quota is what the pool holds."""
    allocation = ["cluster", "namespace", "resource", "tier"]
    quotas = idle.loc[idle["basis"] == "quota", allocation].drop_duplicates()
    covered = idle[allocation].merge(quotas.assign(_quota=True), on=allocation, how="left")["_quota"].notna()
    info = (idle["basis"] != "quota").to_numpy() & covered.to_numpy()
    if info.any():
        idle.loc[info, "capacity_held"] = [value * 0 for value in idle.loc[info, "idle_value"]]
    return idle


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
    frame: Mapping[str, Column] | pd.DataFrame,
    column: str,
    basis: str,
    no_pods: set,
    catalog: Catalog,
    mode: BillingMode,
) -> list[dict]:
    """Rows of allocations used below the policy's threshold; `frame` has the key columns (`pvc` only for
    per-volume rows), hour, used and `column`, the allocation judged, and where collected the peaks
    (`used_peak`; for quota rows `requested` and `requested_peak`, the floor)."""
    policy = catalog.rates.idle
    versions = catalog.rates.sorted_versions()
    version = version_index(frame.pop("hour"), catalog.rates, "idle allocations")  # hours: no longer needed
    groups = group_rows({key: frame[key] for key in _KEY if key in frame})
    hour_counts = groups.size()
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
    measured_hours = np.bincount(groups.codes, weights=~np.isnan(used_column), minlength=len(groups))
    levels = _levels(groups, frame, used_column)
    stats = groups.keys.assign(hours=hour_counts, measured=measured_hours, held_nano=held_sums, used_nano=used_sums)
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
        percentile = CPU_PERCENTILE if resource == Resource.CPU.value else 1.0
        peak = _level(levels.peak_percentile[group] if percentile < 1 else levels.peak_max[group])
        floor = _level(levels.floor[group]) if basis == "quota" else None
        measured = int(stat["measured"])
        if measured < policy.min_history_hours:
            recommended = None
            advice = f"no advice: {measured} h measured, fewer than the {policy.min_history_hours} h rates.idle asks"
        else:
            recommended = recommend(resource, peak, floor or Decimal(0), policy.headroom)
            measured_peaks = bool(levels.peaks_measured[group])
            advice = _advice_text(resource, percentile, peak, floor, policy.headroom, measured_peaks)

        def price_at(version_number: int) -> Decimal:
            return hourly_price_for(versions[version_number], resource, tier, namespace, cluster)  # noqa: B023

        idle_value = round_money(
            sum(
                (from_nano(idle_nano) * price_at(number) for number, idle_nano in idle_by_version[group]),
                Decimal(0),
            ),
            catalog.rates.currency,
        )
        billed = basis == "requests" and mode is not BillingMode.USAGE
        rows.append(
            {
                "business_unit": unit_id,
                "namespace": namespace,
                "resource": resource,
                "tier": tier,
                "allocated": allocated.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "used_avg": used_avg.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "used_peak": peak,
                "requests_peak": floor,
                "utilization": utilization.quantize(LEVEL, rounding=ROUND_HALF_EVEN),
                "idle_value": idle_value,
                "capacity_held": idle_value,  # 0 on the information row of an allocation: `_count_once`
                "unit_pays": idle_value if billed else idle_value * 0,  # 0 in the currency's minor unit
                "recommended_allocation": recommended,
                "advice_basis": advice,
                "reason": _reason(basis, resource, idle_pods),
                "cluster": cluster,
                "basis": basis,
                "hours": hours,
                "unit": level_unit(resource),
                "pvc": pvc,
            }
        )
    return rows


@dataclass(frozen=True)
class _Levels:
    """Per group: the CPU percentile and the highest of the hourly peak levels, and the highest requests."""

    peak_percentile: np.ndarray
    peak_max: np.ndarray
    floor: np.ndarray
    peaks_measured: np.ndarray  # whether any hour had a measured peak (else the hourly figures stand in)


def _levels(groups: Groups, frame: Mapping[str, Column] | pd.DataFrame, used: np.ndarray) -> _Levels:
    """Each hour's level is its peak where collected, else its hourly figure (a level too: a GiB-hour in
    an hour is a GiB held); unmeasured hours count as 0. The floor is the highest of the hourly requests
    and their peaks (quota rows only: other frames have no `requested_peak`)."""
    peaks = np.asarray(frame["used_peak"], dtype=float) if "used_peak" in frame else np.full(len(used), np.nan)
    measured = np.bincount(groups.codes, weights=~np.isnan(peaks), minlength=len(groups)) > 0
    level = np.fmax(used, peaks)
    np.nan_to_num(level, copy=False)
    peak_max = np.full(len(groups), 0.0)
    np.maximum.at(peak_max, groups.codes, level)
    floor = np.full(len(groups), 0.0)
    if "requested_peak" in frame:
        requests = np.fmax(
            np.asarray(frame["requested"], dtype=float), np.asarray(frame["requested_peak"], dtype=float)
        )
        np.maximum.at(floor, groups.codes, np.nan_to_num(requests))
    return _Levels(groups.quantile(level, CPU_PERCENTILE), peak_max, floor, measured)


def _level(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(LEVEL, rounding=ROUND_HALF_EVEN)


def _advice_text(
    resource: str, percentile: float, peak: Decimal, floor: Decimal | None, headroom: float, measured_peaks: bool
) -> str:
    """How the advice was found, in the words the invoice prints (e.g. "p99 of hourly peak 5-minute CPU …");
    where no hour had a collected peak (a 5-minute rate needs two scrapes in 5 minutes) it says hourly averages."""
    unit = level_unit(resource)
    statistic = f"p{round(percentile * 100)} of" if percentile < 1 else "highest"
    if resource in ("cpu", "memory") and not measured_peaks:
        what = f"hourly average {resource} (no peak collected)"
    else:
        what = {"cpu": "hourly peak 5-minute CPU", "memory": "working set", "storage": "bytes used"}.get(
            resource, f"hourly {resource} use"
        )
    parts = [f"{statistic} {what} {_plain(peak)} {unit}"]
    if floor is not None:
        parts.append(f"floor = peak requests {_plain(floor)} {unit}")
    parts.append(f"+{_plain(Decimal(str(headroom)) * 100)} % headroom")
    return ", ".join(parts)


def _plain(value: Decimal) -> str:
    """A level without trailing zeros (19.7, 25, 0.25)."""
    text = f"{value.normalize():f}"
    return text


def _reason(basis: str, resource: str, idle_pods: bool) -> str:
    if idle_pods:
        return NO_RUNNING_PODS
    if basis == "quota":
        return QUOTA_UNDERUSED
    return VOLUMES_UNDERUSED if resource == Resource.STORAGE.value else REQUESTS_UNDERUSED
