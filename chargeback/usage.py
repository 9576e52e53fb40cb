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
        if pd.api.types.infer_dtype(frame[name], skipna=False) != "string":
            not_text = ~frame[name].map(lambda v: isinstance(v, str))
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
        infinite = pd.Series(np.isinf(frame[name].to_numpy()), index=frame.index)
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
    volumes: pd.DataFrame = field(default_factory=lambda: empty_volume_frame())  # VOLUME_SCHEMA, per PVC
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
    volumes = build_volume_frame(series, cluster, tiers, start, end, scrape_interval)
    return UsageResult(
        frame=frame, coverage=coverage, volumes=volumes, warnings=warnings + data_warnings, queries=queries
    )


# ---------------------------------------------------------------- pure: series → frame

_COLUMNS = ("used", "requested", "allocated")


class _Grid:
    """Dense hour × key matrices of used / requested / allocated, filled series by series.

    Keys are three names: (namespace, resource, tier) for the usage frame, (namespace, claim, tier) for
    the per-PVC frame. Each series maps to one key and its points to hour indices, so filling is
    vectorised per series and the frame is cut out of the matrices at the end — no joins, no pivots
    over millions of rows.
    """

    def __init__(self, hour0: float, hours: int) -> None:
        self.hour0 = hour0
        self.hours = hours
        self.keys: dict[tuple[str, str, str], int] = {}
        self._pending: list[tuple[str, int, np.ndarray, np.ndarray, str]] = []

    def add(
        self, column: str, key: tuple[str, str, str], series: Series, scale: np.ndarray | float, combine: str = "sum"
    ) -> None:
        index = self.keys.setdefault(key, len(self.keys))
        hour, inside = _hour_index(series.timestamps, self.hour0, self.hours)
        values = series.values[inside] * (scale[hour] if isinstance(scale, np.ndarray) else scale)
        self._pending.append((column, index, hour, values, combine))

    def matrices(self, order: np.ndarray) -> dict[str, np.ndarray]:
        """column → (hours × keys) matrix, keys in `order` (position of each key index in the output)."""
        out = {c: np.full((self.hours, len(self.keys)), np.nan) for c in _COLUMNS}
        for column, index, hour, values, combine in self._pending:
            target = out[column]
            current = target[hour, order[index]]
            if combine == "min":
                target[hour, order[index]] = np.fmin(current, values)
            else:
                target[hour, order[index]] = np.where(np.isnan(current), values, current + values)
        self._pending.clear()
        return out


def _hour_index(timestamps: np.ndarray, hour0: float, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the hour each timestamp falls in, for those inside the period, and the mask that chose them."""
    hour = np.floor((timestamps - hour0) / 3600.0).astype(np.int64)
    inside = (hour >= 0) & (hour < hours)
    return hour[inside], inside


def _scrapes_per_hour(series: Sequence[Series], hour0: float, hours: int) -> np.ndarray:
    counts = np.zeros(hours)
    for item in series:
        hour, inside = _hour_index(item.timestamps, hour0, hours)
        np.maximum.at(counts, hour, item.values[inside])
    return counts


@dataclass(frozen=True)
class _Scrapes:
    """Scrapes per hour of each source, the count of a fully scraped hour, and the covered share."""

    counts: dict[str, np.ndarray]
    expected: dict[str, float]
    share: dict[str, np.ndarray]

    @classmethod
    def measure(
        cls, series: Mapping[str, Sequence[Series]], hour0: float, hours: int, scrape_interval: float | None
    ) -> _Scrapes:
        counts, expected, share = {}, {}, {}
        for source in SOURCES:
            found = _scrapes_per_hour(series.get(_SCRAPE_QUERY[source], ()), hour0, hours)
            expected[source] = 3600.0 / scrape_interval if scrape_interval else float(found.max(initial=0.0))
            counts[source] = found
            share[source] = np.minimum(found / expected[source], 1.0) if expected[source] > 0 else np.zeros(hours)
        return cls(counts, expected, share)

    def per_scrape(self, source: str, factor: float = 1.0) -> np.ndarray:
        """Scale turning a sum of samples into value-hours: factor / scrapes in the hour."""
        divisor = self.counts[source].copy()
        missing = divisor <= 0
        if missing.any():
            divisor[missing] = self.expected[source] or 1.0
        return factor / divisor


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
    hour0 = start.timestamp()
    hours = round((end.timestamp() - hour0) / 3600)

    # Scrapes per hour and source: they divide gauge sums and measure coverage.
    measured = _Scrapes.measure(series, hour0, hours, scrape_interval)
    scrapes, share, expected, per_scrape = measured.counts, dict(measured.share), measured.expected, measured.per_scrape
    coverage = pd.DataFrame(
        {
            "hour": pd.to_datetime(np.repeat(np.arange(hours), 1) * 3600 + int(hour0), unit="s", utc=True)
            .astype("datetime64[ns, UTC]")
            .repeat(len(SOURCES))
            .to_numpy(),
            "cluster": cluster,
            "source": np.tile(np.array(SOURCES, dtype=object), hours),
            "scrapes": np.column_stack([scrapes[s] for s in SOURCES]).ravel(),
            "expected": np.tile([expected[s] for s in SOURCES], hours),
            "coverage": np.column_stack([share[s] for s in SOURCES]).ravel(),
        }
    ).astype(COVERAGE_SCHEMA)

    grid = _Grid(hour0, hours)
    for item in series.get("cpu_used", ()):
        grid.add("used", (item.labels.get("namespace", ""), "cpu", ""), item, 1 / 3600.0)
    for item in series.get("memory_used", ()):
        grid.add("used", (item.labels.get("namespace", ""), "memory", ""), item, per_scrape(CADVISOR, 1 / GIB_BYTES))
    for item in series.get("egress_used", ()):
        grid.add("used", (item.labels.get("namespace", ""), "egress", ""), item, 1 / GIB_BYTES)
    for item in series.get("load_balancers_used", ()):
        key = (item.labels.get("namespace", ""), "load_balancer", "")
        grid.add("used", key, item, per_scrape(KUBE_STATE))
        grid.add("requested", key, item, per_scrape(KUBE_STATE))  # a LoadBalancer Service is its own request
    for item in series.get("pods_running", ()):
        grid.add("used", (item.labels.get("namespace", ""), PODS, ""), item, per_scrape(KUBE_STATE))
    for item in series.get("container_requests", ()):
        resource, factor = _REQUEST_RESOURCES.get(item.labels.get("resource", ""), ("", 0.0))
        if not resource:
            continue
        key = (item.labels.get("namespace", ""), resource, "")
        grid.add("requested", key, item, per_scrape(KUBE_STATE, factor))
        if resource == "gpu":  # GPU use is GPU requests of running pods: no utilisation series in the contract
            grid.add("used", key, item, per_scrape(KUBE_STATE))

    def tier_of(item: Series) -> str:
        return _tier_of(item, tiers)

    for item in series.get("storage_used", ()):
        grid.add(
            "used",
            (item.labels.get("namespace", ""), "storage", tier_of(item)),
            item,
            per_scrape(KUBELET, 1 / GIB_BYTES),
        )
    storage_requested = series.get("storage_requested", ())
    for item in storage_requested:
        grid.add(
            "requested",
            (item.labels.get("namespace", ""), "storage", tier_of(item)),
            item,
            per_scrape(KUBE_STATE, 1 / GIB_BYTES),
        )
    for item in series.get("quota_hard", ()):
        name = item.labels.get("resource", "")
        if name.endswith(_STORAGE_QUOTA_SUFFIX):
            storage_class = name.removesuffix(_STORAGE_QUOTA_SUFFIX)
            resource, tier, factor = "storage", tiers.get(storage_class, storage_class), 1 / GIB_BYTES
        elif name in _QUOTA_RESOURCES:
            (resource, factor), tier = _QUOTA_RESOURCES[name], ""
        else:
            continue
        # `cpu` and `requests.cpu` (or several quota objects) limit the same thing: the smallest applies.
        grid.add(
            "allocated",
            (item.labels.get("namespace", ""), resource, tier),
            item,
            per_scrape(KUBE_STATE, factor),
            combine="min",
        )

    if not scrapes[KUBELET].any():
        # No volume statistics at all: fine without PVCs (storage use is 0 wherever kube-state-metrics
        # saw the quota), a blind spot with them.
        share[KUBELET] = share[KUBE_STATE]
        if storage_requested:
            warnings.append(
                "PVCs exist but kubelet_volume_stats_used_bytes has no series: storage use cannot be measured; "
                "scrape the kubelets' /metrics endpoint (volume statistics are not part of /metrics/cadvisor)"
            )

    frame = _cut_frame(grid, share, cluster, hour0)
    warnings += _data_warnings(frame, coverage, tiers, cluster)
    return check_usage_frame(frame), coverage, warnings


def _tier_of(item: Series, tiers: Mapping[str, str]) -> str:
    """The storage tier of a per-PVC series: its StorageClass's tier, the raw class if none, "" if unknown."""
    name = item.labels.get("storageclass", "")
    return tiers.get(name, name) if name else ""


VOLUME_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",
    "cluster": "object",
    "namespace": "object",
    "pvc": "object",  # PersistentVolumeClaim name
    "tier": "object",  # as in the usage frame
    "used": "float64",  # GiB-hours used on the volume; NaN when the kubelets were not scraped that hour
    "requested": "float64",  # GiB-hours the claim asked for
}
"""Per-PVC hourly storage, the detail behind the usage frame's storage rows (idle volumes are named by it)."""


def empty_volume_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in VOLUME_SCHEMA.items()})


def build_volume_frame(
    series: Mapping[str, Sequence[Series]],
    cluster: str,
    tiers: Mapping[str, str],
    start: dt.datetime,
    end: dt.datetime,
    scrape_interval: float | None = None,
) -> pd.DataFrame:
    """Hourly used and requested GiB-hours per PVC, for the hours its claim existed (requested > 0)."""
    hour0 = start.timestamp()
    hours = round((end.timestamp() - hour0) / 3600)
    scrapes = _Scrapes.measure(series, hour0, hours, scrape_interval)
    grid = _Grid(hour0, hours)  # keys (namespace, claim, tier)
    for column, query, source in (("requested", "storage_requested", KUBE_STATE), ("used", "storage_used", KUBELET)):
        scale = scrapes.per_scrape(source, 1 / GIB_BYTES)
        for item in series.get(query, ()):
            claim = item.labels.get("persistentvolumeclaim", "")
            grid.add(column, (item.labels.get("namespace", ""), claim, _tier_of(item, tiers)), item, scale)
    if not grid.keys:
        return empty_volume_frame()
    names = list(grid.keys)  # in index order: the matrices keep it
    matrices = grid.matrices(np.arange(len(names)))
    hour_index, key_index = np.nonzero(matrices["requested"] > 0)
    used = matrices["used"][hour_index, key_index]
    scraped = scrapes.share[KUBELET][hour_index] > 0
    used = np.where(np.isnan(used) & scraped, 0.0, used)
    used[~scraped] = np.nan
    frame = pd.DataFrame(
        {
            "hour": pd.to_datetime(hour_index * 3600 + int(hour0), unit="s", utc=True).astype("datetime64[ns, UTC]"),
            "cluster": pd.Series(np.full(len(hour_index), cluster, dtype=object), dtype=object),
            "namespace": pd.Series([names[k][0] for k in key_index], dtype=object),
            "pvc": pd.Series([names[k][1] for k in key_index], dtype=object),
            "tier": pd.Series([names[k][2] for k in key_index], dtype=object),
            "used": used,
            "requested": matrices["requested"][hour_index, key_index],
        }
    )
    return frame.sort_values(["namespace", "tier", "pvc", "hour"], kind="stable").reset_index(drop=True)


def _cut_frame(grid: _Grid, share: Mapping[str, np.ndarray], cluster: str, hour0: float) -> pd.DataFrame:
    """The rows of the grid that hold a value, or whose hour was not scraped at all (coverage 0, NaN use)."""
    keys = sorted(grid.keys, key=lambda k: (k[0], k[1], k[2]))
    order = np.empty(len(keys), dtype=np.int64)
    for position, key in enumerate(keys):
        order[grid.keys[key]] = position
    namespaces = np.array([k[0] for k in keys], dtype=object)
    resources = np.array([k[1] for k in keys], dtype=object)
    tier_names = np.array([k[2] for k in keys], dtype=object)
    source_of = np.array([SOURCES.index(USED_SOURCE[r]) for r in resources], dtype=np.int64)
    has_request = np.isin(resources, _HAS_REQUEST)
    from_kube_state = has_request | (resources == PODS)

    by_source = np.column_stack([share[s] for s in SOURCES]) if len(SOURCES) else np.zeros((grid.hours, 0))
    used_coverage = by_source[:, source_of]  # hours × keys
    matrices = grid.matrices(order)
    present = ~np.isnan(matrices["used"]) | ~np.isnan(matrices["requested"]) | ~np.isnan(matrices["allocated"])
    present |= used_coverage == 0  # an hour the source was not scraped: an explicit row with unknown use
    hour_index, key_index = np.nonzero(present)

    kube_state = share[KUBE_STATE][hour_index]
    row_used_coverage = used_coverage[hour_index, key_index]
    del used_coverage
    used = matrices.pop("used")[hour_index, key_index]
    used = np.where(np.isnan(used) & (row_used_coverage > 0), 0.0, used)
    used[row_used_coverage == 0] = np.nan
    requested = matrices.pop("requested")[hour_index, key_index]
    requested = np.where(np.isnan(requested) & has_request[key_index] & (kube_state > 0), 0.0, requested)
    allocated = matrices.pop("allocated")[hour_index, key_index]
    coverage = np.where(from_kube_state[key_index], np.minimum(row_used_coverage, kube_state), row_used_coverage)
    hours = pd.to_datetime(hour_index * 3600 + int(hour0), unit="s", utc=True).astype("datetime64[ns, UTC]")
    return pd.DataFrame(
        {
            "hour": hours,
            "cluster": pd.Series(np.full(len(hour_index), cluster, dtype=object), dtype=object),
            "namespace": pd.Series(namespaces[key_index], dtype=object),
            "resource": pd.Series(resources[key_index], dtype=object),
            "tier": pd.Series(tier_names[key_index], dtype=object),
            "used": used,
            "requested": requested,
            "allocated": allocated,
            "coverage": coverage,
        }
    )


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
