"""Prometheus answers → the hourly usage frame, in one place.

The usage frame is the contract between collection and rating. One row per
(hour, cluster, namespace, resource, tier); see `USAGE_SCHEMA` for the columns and
`check_usage_frame` for the rules every frame obeys.

Units of `used`, `requested` and `allocated` (per row, i.e. per hour):
  cpu core-hours · memory GiB-hours · storage GiB-hours · egress GiB (2^30 bytes) ·
  gpu gpu-hours · load_balancer lb-hours · pods pod-hours (not billed).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from infra.catalog.models import Catalog, Resource

from . import promql
from .errors import UsageDataError
from .prometheus import PrometheusClient, RangeQuery, Series
from .promql import LabelMatcher

GIB_BYTES = float(2**30)

PODS = "pods"
"""Non-billable resource: running pod-hours, kept for reports and idle analysis."""

RESOURCES: tuple[str, ...] = (*(r.value for r in Resource), PODS)
"""Values of the `resource` column: the billable `Resource` values plus `pods`."""

USAGE_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",  # start of the hour
    "cluster": "object",  # str
    "namespace": "object",  # str
    "resource": "object",  # str, one of RESOURCES
    "tier": "object",  # str: storage tier ("" for other resources; raw StorageClass if no tier matches)
    "used": "float64",  # usage in the resource's usage unit for that hour; NaN only when coverage == 0
    "requested": "float64",  # request-hours in the same unit; NaN where meaningless (egress, pods)
    "allocated": "float64",  # quota-hours from kube_resourcequota{type="hard"}; NaN where no quota
    "coverage": "float64",  # 0..1 share of the hour covered by scrapes of the row's source
}
"""Column → dtype of the usage frame, in column order."""

USAGE_COLUMNS: tuple[str, ...] = tuple(USAGE_SCHEMA)
USAGE_KEY: tuple[str, ...] = ("hour", "cluster", "namespace", "resource", "tier")


def empty_usage_frame() -> pd.DataFrame:
    """A frame with the usage columns and dtypes and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in USAGE_SCHEMA.items()})


def check_usage_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` unchanged if it obeys the usage schema, else raise `UsageDataError` listing every breach."""
    problems: list[str] = []
    columns = list(frame.columns)
    if columns != list(USAGE_COLUMNS):
        missing = [c for c in USAGE_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in USAGE_SCHEMA]
        raise UsageDataError(
            f"usage frame columns are {columns}; expected {list(USAGE_COLUMNS)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )
    for name, dtype in USAGE_SCHEMA.items():
        if str(frame[name].dtype) != dtype:
            problems.append(f"column {name!r} has dtype {frame[name].dtype}, expected {dtype}")
    if problems:
        raise UsageDataError("usage frame breaks its schema:\n  " + "\n  ".join(problems))
    if frame.empty:
        return frame

    def rows(mask: pd.Series) -> str:
        sample = frame.loc[mask, list(USAGE_KEY)].head(3).to_dict("records")
        return f"{int(mask.sum())} rows, e.g. {sample}"

    for name in ("cluster", "namespace", "resource", "tier"):
        not_text = ~frame[name].map(lambda v: isinstance(v, str))
        if not_text.any():
            problems.append(f"column {name!r} holds non-text values: {rows(not_text)}")
    if problems:
        raise UsageDataError("usage frame breaks its schema:\n  " + "\n  ".join(problems))

    hours = frame["hour"]
    off_hour = hours != hours.dt.floor("h")
    if off_hour.any():
        problems.append(f"hour is not the start of an hour: {rows(off_hour)}")
    unknown = ~frame["resource"].isin(RESOURCES)
    if unknown.any():
        problems.append(f"resource is not one of {', '.join(RESOURCES)}: {rows(unknown)}")
    tier_outside_storage = (frame["resource"] != Resource.STORAGE.value) & (frame["tier"] != "")
    if tier_outside_storage.any():
        problems.append(f"tier is set on a resource other than storage: {rows(tier_outside_storage)}")
    empty_names = (frame["namespace"] == "") | (frame["cluster"] == "")
    if empty_names.any():
        problems.append(f"cluster or namespace is empty: {rows(empty_names)}")
    coverage = frame["coverage"]
    bad_coverage = coverage.isna() | (coverage < 0) | (coverage > 1)
    if bad_coverage.any():
        problems.append(f"coverage is outside 0..1: {rows(bad_coverage)}")
    unknown_used = frame["used"].isna() & (coverage > 0)
    if unknown_used.any():
        problems.append(f"used is NaN although the hour was scraped (coverage > 0): {rows(unknown_used)}")
    for name in ("used", "requested", "allocated"):
        negative = frame[name] < 0
        if negative.any():
            problems.append(f"{name} is negative: {rows(negative)}")
        infinite = frame[name].map(lambda v: isinstance(v, float) and math.isinf(v))
        if infinite.any():
            problems.append(f"{name} is infinite: {rows(infinite)}")
    duplicated = frame.duplicated(list(USAGE_KEY), keep=False)
    if duplicated.any():
        problems.append(f"rows repeat the key {USAGE_KEY}: {rows(duplicated)}")
    if problems:
        raise UsageDataError("usage frame breaks its rules:\n  " + "\n  ".join(problems))
    return frame


# ---------------------------------------------------------------- collection

CADVISOR = "cadvisor"
KUBE_STATE = "kube-state-metrics"
KUBELET = "kubelet-volume-stats"
SOURCES: tuple[str, ...] = (CADVISOR, KUBE_STATE, KUBELET)
"""Scrape sources whose per-hour coverage is measured: each one is a separate scrape job."""

_SCRAPE_QUERY = {CADVISOR: "cadvisor_scrapes", KUBE_STATE: "kube_state_scrapes", KUBELET: "kubelet_volume_scrapes"}

USED_SOURCE: dict[str, str] = {
    "cpu": CADVISOR,
    "memory": CADVISOR,
    "egress": CADVISOR,
    "storage": KUBELET,
    "gpu": KUBE_STATE,
    "load_balancer": KUBE_STATE,
    PODS: KUBE_STATE,
}
"""Where each resource's `used` comes from; requests and quotas always come from kube-state-metrics."""

_HAS_REQUEST = ("cpu", "memory", "storage", "gpu", "load_balancer")

_QUOTA_RESOURCES: dict[str, tuple[str, float]] = {
    "requests.cpu": ("cpu", 1.0),
    "cpu": ("cpu", 1.0),
    "requests.memory": ("memory", 1.0 / GIB_BYTES),
    "memory": ("memory", 1.0 / GIB_BYTES),
    "requests.nvidia.com/gpu": ("gpu", 1.0),
    "services.loadbalancers": ("load_balancer", 1.0),
    "pods": (PODS, 1.0),
}
_STORAGE_QUOTA_SUFFIX = ".storageclass.storage.k8s.io/requests.storage"
_REQUEST_RESOURCES = {"cpu": ("cpu", 1.0), "memory": ("memory", 1.0 / GIB_BYTES), "nvidia_com_gpu": ("gpu", 1.0)}

COVERAGE_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",
    "cluster": "object",
    "source": "object",  # one of SOURCES
    "scrapes": "float64",  # largest sample count of any series of the source in the hour
    "expected": "float64",  # scrapes a fully covered hour has
    "coverage": "float64",  # min(1, scrapes / expected); 0 for an hour without any scrape
}


@dataclass
class UsageResult:
    """What `collect_usage` returns: the frame, everything worth telling the user, and how it was measured."""

    frame: pd.DataFrame  # USAGE_SCHEMA
    coverage: pd.DataFrame  # COVERAGE_SCHEMA: every hour of the period × source
    warnings: list[str] = field(default_factory=list)  # Prometheus warnings (partial answers) and data warnings
    queries: dict[str, str] = field(default_factory=dict)  # name → the exact PromQL run

    def incomplete_hours(self) -> pd.DataFrame:
        """Coverage rows of hours that were not fully scraped."""
        return self.coverage[self.coverage["coverage"] < 1].reset_index(drop=True)


def usage_queries(window: str, matchers: Sequence[LabelMatcher] = ()) -> dict[str, str]:
    """Every query `collect_usage` runs, rendered for the hour `window` and the extra matchers."""
    return {name: promql.render(template, window, tuple(matchers)) for name, template in promql.QUERIES.items()}


def storage_tiers(catalog: Catalog, cluster: str) -> dict[str, str]:
    """StorageClass name → tier name of `cluster`; UsageDataError if the catalog has no such cluster."""
    found = catalog.pool.cluster(cluster)
    if found is None:
        names = ", ".join(c.name for c in catalog.pool.clusters)
        raise UsageDataError(f"cluster {cluster!r} is not in pool.yaml (clusters: {names}); check --cluster")
    return {tier.class_name: tier.name for tier in found.storage_tiers}


def _check_period(start: dt.datetime, end: dt.datetime) -> None:
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() != dt.timedelta(0):
            raise UsageDataError(f"{name} {value.isoformat()} must be a UTC time")
        if value.minute or value.second or value.microsecond:
            raise UsageDataError(f"{name} {value.isoformat()} is not on the hour; usage is collected per whole hour")
    if end <= start:
        raise UsageDataError(f"the period {start.isoformat()} – {end.isoformat()} is empty: end must be after start")


def collect_usage(
    client: PrometheusClient,
    catalog: Catalog,
    start: dt.datetime,
    end: dt.datetime,
    cluster: str,
    matchers: Sequence[LabelMatcher] = (),
    scrape_interval: float | None = None,
) -> UsageResult:
    """Hourly usage of `cluster` for the hours in [start, end) (UTC, on the hour).

    Phase one issues every query (split into pieces, concurrently) and raises one PrometheusError if
    any failed; phase two (`build_usage_frame`) is pure. `matchers` select the cluster's series on a
    Prometheus that holds several (e.g. cluster="dc1"); `scrape_interval` (seconds) fixes how many
    scrapes a full hour has — by default the most seen in any hour of the period.
    """
    _check_period(start, end)
    tiers = storage_tiers(catalog, cluster)
    window = promql.hour_window(client.build_version())
    queries = usage_queries(window, matchers)
    step = dt.timedelta(hours=1)
    first_eval = start + step - dt.timedelta(milliseconds=1)
    last_eval = end - dt.timedelta(milliseconds=1)
    results = client.query_ranges([RangeQuery(q, first_eval, last_eval, step) for q in queries.values()])
    warnings = [
        f"Prometheus warned on {name}: {w}" for name, r in zip(queries, results, strict=True) for w in r.warnings
    ]
    series = {name: result.series for name, result in zip(queries, results, strict=True)}
    frame, coverage, data_warnings = build_usage_frame(series, cluster, tiers, start, end, scrape_interval)
    return UsageResult(frame=frame, coverage=coverage, warnings=warnings + data_warnings, queries=queries)


# ---------------------------------------------------------------- pure: series → frame


def _long(series: Sequence[Series], labels: Sequence[str]) -> pd.DataFrame:
    """Series → one row per point: hour (unix seconds of the hour start), the given labels, value."""
    if not series:
        return pd.DataFrame({"hour": np.array([], dtype=np.int64), **{k: [] for k in labels}, "value": []})
    counts = np.array([len(s.timestamps) for s in series])
    timestamps = np.concatenate([s.timestamps for s in series])
    data: dict[str, object] = {"hour": (np.floor(timestamps / 3600.0) * 3600).astype(np.int64)}
    for key in labels:
        data[key] = np.repeat(np.array([s.labels.get(key, "") for s in series], dtype=object), counts)
    data["value"] = np.concatenate([s.values for s in series])
    return pd.DataFrame(data)


def _per_hour(series: Sequence[Series]) -> pd.Series:
    frame = _long(series, ())
    return frame.groupby("hour")["value"].max()


def build_usage_frame(
    series: Mapping[str, Sequence[Series]],
    cluster: str,
    tiers: Mapping[str, str],
    start: dt.datetime,
    end: dt.datetime,
    scrape_interval: float | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """The usage frame, the coverage table and data warnings from the answers of `usage_queries`."""
    warnings: list[str] = []
    hours = np.arange(int(start.timestamp()), int(end.timestamp()), 3600, dtype=np.int64)

    # Scrapes per hour and source: divide gauge sums, and measure coverage.
    scrapes: dict[str, pd.Series] = {}
    coverage_parts = []
    for source in SOURCES:
        counts = _per_hour(series.get(_SCRAPE_QUERY[source], ())).reindex(hours, fill_value=0.0).astype(float)
        expected = 3600.0 / scrape_interval if scrape_interval else float(counts.max())
        share = (counts / expected).clip(upper=1.0) if expected > 0 else counts * 0.0
        scrapes[source] = counts
        coverage_parts.append(
            pd.DataFrame(
                {
                    "hour": hours,
                    "source": source,
                    "scrapes": counts.to_numpy(),
                    "expected": expected,
                    "coverage": share.to_numpy(),
                }
            )
        )
    coverage = pd.concat(coverage_parts, ignore_index=True)

    parts: list[pd.DataFrame] = []

    def add(
        frame: pd.DataFrame, resource: str | pd.Series, tier: str | pd.Series, column: str, value: pd.Series
    ) -> None:
        parts.append(
            pd.DataFrame(
                {
                    "hour": frame["hour"].to_numpy(),
                    "namespace": frame["namespace"].to_numpy(),
                    "resource": resource,
                    "tier": tier,
                    "column": column,
                    "value": np.asarray(value, dtype=float),
                }
            )
        )

    def per_scrape(frame: pd.DataFrame, source: str) -> pd.Series:
        divisor = frame["hour"].map(scrapes[source])
        missing = ~(divisor > 0)
        if missing.any():
            fallback = float(coverage.loc[coverage["source"] == source, "expected"].iloc[0]) or 1.0
            warnings.append(
                f"{int(missing.sum())} {source} values fall in hours without any {source} scrape count; "
                f"divided by {fallback:g} scrapes per hour instead"
            )
            divisor = divisor.where(~missing, fallback)
        return frame["value"] / divisor

    cpu = _long(series.get("cpu_used", ()), ("namespace",))
    add(cpu, "cpu", "", "used", cpu["value"] / 3600.0)
    memory = _long(series.get("memory_used", ()), ("namespace",))
    add(memory, "memory", "", "used", per_scrape(memory, CADVISOR) / GIB_BYTES)
    egress = _long(series.get("egress_used", ()), ("namespace",))
    add(egress, "egress", "", "used", egress["value"] / GIB_BYTES)
    balancers = _long(series.get("load_balancers_used", ()), ("namespace",))
    add(balancers, "load_balancer", "", "used", per_scrape(balancers, KUBE_STATE))
    add(balancers, "load_balancer", "", "requested", per_scrape(balancers, KUBE_STATE))
    pods = _long(series.get("pods_running", ()), ("namespace",))
    add(pods, PODS, "", "used", per_scrape(pods, KUBE_STATE))

    requests = _long(series.get("container_requests", ()), ("namespace", "resource"))
    for kube_name, (resource, factor) in _REQUEST_RESOURCES.items():
        rows = requests[requests["resource"] == kube_name]
        hours_of = per_scrape(rows, KUBE_STATE) * factor
        add(rows, resource, "", "requested", hours_of)
        if resource == "gpu":  # GPU use is GPU requests of running pods: no utilisation series in the contract
            add(rows, resource, "", "used", hours_of)

    def tier_column(frame: pd.DataFrame) -> pd.Series:
        return frame["storageclass"].map(lambda name: tiers.get(name, name) if name else "")

    storage_used = _long(series.get("storage_used", ()), ("namespace", "storageclass"))
    add(storage_used, "storage", tier_column(storage_used), "used", per_scrape(storage_used, KUBELET) / GIB_BYTES)
    storage_requested = _long(series.get("storage_requested", ()), ("namespace", "storageclass"))
    add(
        storage_requested,
        "storage",
        tier_column(storage_requested),
        "requested",
        per_scrape(storage_requested, KUBE_STATE) / GIB_BYTES,
    )

    quota = _long(series.get("quota_hard", ()), ("namespace", "resource"))
    if len(quota):
        quota_hours = per_scrape(quota, KUBE_STATE)
        names = quota["resource"]
        storage_class = names.str.removesuffix(_STORAGE_QUOTA_SUFFIX)
        is_storage = names.str.endswith(_STORAGE_QUOTA_SUFFIX)
        mapped = names.map(lambda n: _QUOTA_RESOURCES.get(n, ("", 0.0)))
        resource = pd.Series([m[0] for m in mapped], index=quota.index).where(~is_storage, "storage")
        factor = pd.Series([m[1] for m in mapped], index=quota.index).where(~is_storage, 1.0 / GIB_BYTES)
        tier = storage_class.map(lambda name: tiers.get(name, name)).where(is_storage, "")
        quota_part = pd.DataFrame(
            {
                "hour": quota["hour"],
                "namespace": quota["namespace"],
                "resource": resource,
                "tier": tier,
                "value": quota_hours * factor,
            }
        )
        # `cpu` and `requests.cpu` (or several quota objects) limit the same thing: the smallest applies.
        quota_part = quota_part.groupby(["hour", "namespace", "resource", "tier"], as_index=False)["value"].min()
        quota_part["column"] = "allocated"
        parts.append(quota_part)

    long = pd.concat([p for p in parts if len(p)], ignore_index=True) if any(len(p) for p in parts) else None
    key = ["hour", "namespace", "resource", "tier"]
    if long is None:
        wide = pd.DataFrame(columns=[*key, "used", "requested", "allocated"])
    else:
        wide = long.pivot_table(index=key, columns="column", values="value", aggfunc="sum").reset_index()
        wide.columns.name = None
    for column in ("used", "requested", "allocated"):
        if column not in wide.columns:
            wide[column] = np.nan
    wide = wide[[*key, "used", "requested", "allocated"]]

    # Scrape coverage of each row's sources.
    share = {s: coverage[coverage["source"] == s].set_index("hour")["coverage"] for s in SOURCES}
    if not scrapes[KUBELET].any():
        # No volume statistics at all: fine without PVCs (storage use is 0 wherever kube-state-metrics
        # saw the quota), a blind spot with them.
        share[KUBELET] = share[KUBE_STATE]
        if len(storage_requested):
            warnings.append(
                "PVCs exist but kubelet_volume_stats_used_bytes has no series: storage use cannot be measured; "
                "scrape the kubelets' /metrics endpoint (volume statistics are not part of /metrics/cadvisor)"
            )
    used_source = wide["resource"].map(USED_SOURCE)
    used_coverage = np.zeros(len(wide))
    for source in SOURCES:
        mask = (used_source == source).to_numpy()
        used_coverage[mask] = wide.loc[mask, "hour"].map(share[source]).fillna(0.0).to_numpy()
    kube_state_coverage = wide["hour"].map(share[KUBE_STATE]).fillna(0.0).to_numpy()
    from_kube_state = wide["resource"].isin([*_HAS_REQUEST, PODS]).to_numpy()
    wide["coverage"] = np.where(from_kube_state, np.minimum(used_coverage, kube_state_coverage), used_coverage)
    wide["used"] = wide["used"].where(wide["used"].notna() | (used_coverage == 0), 0.0)
    has_request = wide["resource"].isin(_HAS_REQUEST) & (kube_state_coverage > 0)
    wide["requested"] = wide["requested"].where(wide["requested"].notna() | ~has_request, 0.0)

    # Hours a source was not scraped at all: every key it reported elsewhere in the period gets an
    # explicit row with unknown (NaN) quantities and coverage 0, never a silent zero.
    gap_rows = []
    for source in SOURCES:
        gap_hours = share[source][share[source] == 0].index.to_numpy()
        if not len(gap_hours):
            continue
        keys = wide.loc[used_source == source, ["namespace", "resource", "tier"]].drop_duplicates()
        if keys.empty:
            continue
        grid = keys.merge(pd.DataFrame({"hour": gap_hours}), how="cross")
        gap_rows.append(grid)
    if gap_rows:
        gaps = pd.concat(gap_rows, ignore_index=True)
        gaps = gaps.merge(wide[key], on=key, how="left", indicator=True)
        gaps = gaps[gaps["_merge"] == "left_only"].drop(columns="_merge")
        gaps = gaps.assign(used=np.nan, requested=np.nan, allocated=np.nan, coverage=0.0)
        wide = pd.concat([wide, gaps[wide.columns]], ignore_index=True)
    frame = _finish(wide, cluster)
    coverage_frame = coverage.assign(cluster=cluster)
    coverage_frame["hour"] = pd.to_datetime(coverage_frame["hour"], unit="s", utc=True).astype("datetime64[ns, UTC]")
    coverage_frame = coverage_frame[list(COVERAGE_SCHEMA)].astype(COVERAGE_SCHEMA)
    warnings += _data_warnings(frame, coverage_frame, tiers, cluster)
    return check_usage_frame(frame), coverage_frame, warnings


def _finish(wide: pd.DataFrame, cluster: str) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "hour": pd.to_datetime(wide["hour"].astype(np.int64), unit="s", utc=True).astype("datetime64[ns, UTC]"),
            "cluster": pd.Series(cluster, index=wide.index, dtype=object),
            "namespace": wide["namespace"].astype(object),
            "resource": wide["resource"].astype(object),
            "tier": wide["tier"].astype(object),
            "used": wide["used"].astype("float64"),
            "requested": wide["requested"].astype("float64"),
            "allocated": wide["allocated"].astype("float64"),
            "coverage": wide["coverage"].astype("float64"),
        }
    )
    return frame.sort_values(list(USAGE_KEY), kind="stable").reset_index(drop=True)


def _data_warnings(frame: pd.DataFrame, coverage: pd.DataFrame, tiers: Mapping[str, str], cluster: str) -> list[str]:
    """What the user should know before billing this frame: gaps, unknown storage classes."""
    warnings = []
    for source, rows in coverage[coverage["coverage"] < 1].groupby("source", sort=False):
        if (coverage.loc[coverage["source"] == source, "expected"] == 0).all():
            continue
        shown = ", ".join(
            f"{h:%Y-%m-%d %H:00} {c:.0%}" for h, c in list(zip(rows["hour"], rows["coverage"], strict=True))[:6]
        )
        more = f" and {len(rows) - 6} more" if len(rows) > 6 else ""
        warnings.append(
            f"{source} of cluster {cluster} was not fully scraped in {len(rows)} hour(s): {shown}{more}; "
            "hours with coverage 0 have unknown (NaN) use"
        )
    storage = frame[frame["resource"] == "storage"]
    known = set(tiers.values())
    for (namespace, tier), _ in storage.groupby(["namespace", "tier"], sort=True):
        if tier == "":
            warnings.append(
                f"namespace {namespace!r} (cluster {cluster}) has PVCs without kube_persistentvolumeclaim_info, so "
                "their StorageClass is unknown (tier ''); check that kube-state-metrics exports PVCs"
            )
        elif tier not in known:
            warnings.append(
                f"namespace {namespace!r} (cluster {cluster}) uses StorageClass {tier!r}, which is no storage tier "
                f"of cluster {cluster} in pool.yaml (classes: {', '.join(sorted(tiers)) or 'none'})"
            )
    return warnings
