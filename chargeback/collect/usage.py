"""Prometheus answers → the hourly usage frame, in one place.

The usage frame is the contract between collection and rating. One row per
(hour, cluster, namespace, resource, tier); see `USAGE_SCHEMA` for the columns and
`check_usage_frame` for the rules every frame obeys.

Units of `used`, `requested` and `allocated` (per row, i.e. per hour):
  cpu core-hours · memory GiB-hours · storage GiB-hours · egress GiB (2^30 bytes) ·
  gpu gpu-hours · load_balancer lb-hours · pods pod-hours (not billed).
`used_peak` and `requested_peak` are levels (cores, GiB, GPUs): the highest in the hour, for right-sizing
only (never billed); measured for cpu, memory and storage use and for pod requests, NaN elsewhere.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pool_catalog.models import Catalog
from pool_catalog.resources import (
    CADVISOR,
    KUBE_STATE,
    KUBELET,
    STORAGE_CLASS_QUOTA_SUFFIX,
    names,
    quota_resource,
    request_resource,
    spec_of,
    specs,
)

from ..errors import UsageDataError
from ..grouping import HOUR_NS, fold, row_slices, steps_since
from ..heap import give_back
from . import promql
from .prometheus import PrometheusClient, RangeQuery, Series
from .promql import LabelMatcher

GIB_BYTES = float(2**30)

PODS = "pods"
"""Non-billable resource: running pod-hours, kept for reports and idle analysis."""


def resources() -> tuple[str, ...]:
    """Values of the `resource` column: the billable resources (`pool_catalog.resources`) plus `pods`."""
    return (*names(), PODS)


def usage_unit(resource: str) -> str:
    """Unit of a `resource` row's figures per hour: the resource's usage unit, pod-hours for `pods`."""
    return "pod-hour" if resource == PODS else spec_of(resource).usage_unit


USAGE_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",  # start of the hour
    "cluster": "category",  # str
    "namespace": "category",  # str
    "resource": "category",  # str, one of resources()
    "tier": "category",  # str: storage tier ("" for other resources; raw StorageClass if no tier matches)
    "used": "float64",  # usage in the resource's usage unit for that hour; NaN only when coverage == 0
    "requested": "float64",  # request-hours in the same unit; NaN where meaningless (egress, pods)
    "allocated": "float64",  # quota-hours from kube_resourcequota{type="hard"}; NaN where no quota
    "coverage": "float64",  # 0..1 share of the hour covered by scrapes of the row's source
    # Advice only, quantized to 0.0001 of a level: single precision keeps a month of a large cluster small.
    "used_peak": "float32",  # highest level of use in the hour (cpu: 5-minute rate, cores); NaN: not measured
    "requested_peak": "float32",  # highest total of running pods' requests in the hour; NaN: not measured
}
"""Column → dtype of the usage frame, in column order. The text columns are categorical (a month of a large
cluster is millions of rows over a few thousand names: a code per row, not an object pointer), with their
categories in sorted order so that grouping and sorting order them as the plain strings would."""

TEXT_COLUMNS: tuple[str, ...] = tuple(name for name, dtype in USAGE_SCHEMA.items() if dtype == "category")

USAGE_COLUMNS: tuple[str, ...] = tuple(USAGE_SCHEMA)
USAGE_KEY: tuple[str, ...] = ("hour", "cluster", "namespace", "resource", "tier")
PEAK_COLUMNS: tuple[str, ...] = ("used_peak", "requested_peak")


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

    for name in TEXT_COLUMNS:
        categories = frame[name].cat.categories
        if frame[name].isna().any() or pd.api.types.infer_dtype(categories, skipna=False) not in ("string", "empty"):
            not_text = ~frame[name].astype(object).map(lambda v: isinstance(v, str))
            problems.append(f"column {name!r} holds non-text values: {rows(not_text)}")
        elif not categories.is_monotonic_increasing:
            problems.append(
                f"column {name!r} has unsorted categories (build it with text_column or astype('category'))"
            )
    if problems:
        raise UsageDataError("usage frame breaks its schema:\n  " + "\n  ".join(problems))

    hours = frame["hour"]
    off_hour = hours != hours.dt.floor("h")
    if off_hour.any():
        problems.append(f"hour is not the start of an hour: {rows(off_hour)}")
    unknown = ~frame["resource"].isin(resources())
    if unknown.any():
        problems.append(f"resource is not one of {', '.join(resources())}: {rows(unknown)}")
    tiered = [spec.name for spec in specs() if spec.per_tier]
    tier_outside_storage = ~frame["resource"].isin(tiered) & (frame["tier"] != "")
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
    for name in ("used", "requested", "allocated", *PEAK_COLUMNS):
        negative = frame[name] < 0
        if negative.any():
            problems.append(f"{name} is negative: {rows(negative)}")
        infinite = pd.Series(np.isinf(frame[name].to_numpy()), index=frame.index)
        if infinite.any():
            problems.append(f"{name} is infinite: {rows(infinite)}")
    peak_without_use = frame["used"].isna() & frame["used_peak"].notna()
    if peak_without_use.any():
        problems.append(f"used_peak is set where used is unknown (NaN): {rows(peak_without_use)}")
    duplicated = _repeated_keys(frame, USAGE_KEY)
    if duplicated.any():
        problems.append(f"rows repeat the key {USAGE_KEY}: {rows(duplicated)}")
    if problems:
        raise UsageDataError("usage frame breaks its rules:\n  " + "\n  ".join(problems))
    return frame


def _repeated_keys(frame: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    """Rows whose `key` columns repeat another row's (all of them), like `duplicated(keep=False)`, from one
    folded integer per row (`grouping`): a month of a large cluster is millions of rows."""
    columns = {name: frame[name] for name in key}
    if "hour" in columns:
        nanoseconds = pd.DatetimeIndex(frame["hour"]).as_unit("ns").asi8
        # Whole hours (the usual case) are numbered from the first as 32-bit integers; anything else keeps its
        # exact time.
        if len(nanoseconds) and not (nanoseconds % HOUR_NS).any():
            columns["hour"] = steps_since(frame["hour"], int(nanoseconds.min()), HOUR_NS)
        else:
            columns["hour"] = nanoseconds
    folded = fold(columns).values
    ordered = np.sort(folded)
    repeated = np.zeros(len(folded), dtype=bool)
    if len(folded) and (ordered[1:] == ordered[:-1]).any():  # the rare case: find the rows
        values, counts = np.unique(ordered, return_counts=True)
        repeated = np.isin(folded, values[counts > 1])
    return pd.Series(repeated, index=frame.index)


def _same_text(rows: int, text: str) -> np.ndarray:
    """An object column holding one string object `rows` times (np.full would copy the string per row)."""
    column = np.empty(rows, dtype=object)
    column.fill(text)
    return column


def text_column(per_key: np.ndarray, key_index: np.ndarray) -> pd.Categorical:
    """The text column `per_key[key_index]` as the usage frame holds it: codes into sorted categories."""
    categories, code_of_key = np.unique(per_key.astype(object), return_inverse=True)
    code_of_key = code_of_key.astype(np.min_scalar_type(-len(categories)))  # int8/16/32: the codes pandas keeps
    return pd.Categorical.from_codes(code_of_key[key_index], categories=pd.Index(categories, dtype=object))


def union_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its text columns categorical again after a concat of frames whose categories differ."""
    for name in TEXT_COLUMNS:
        if not isinstance(frame[name].dtype, pd.CategoricalDtype):
            frame[name] = frame[name].astype(object).astype("category")
    return frame


# ---------------------------------------------------------------- collection

SOURCES: tuple[str, ...] = (CADVISOR, KUBE_STATE, KUBELET)
"""Scrape sources whose per-hour coverage is measured: each one is a separate scrape job."""

_SCRAPE_SOURCE = {
    "kube_state_scrapes": KUBE_STATE,
    "kube_state_scrapes_by_quota": KUBE_STATE,
    "kubelet_volume_scrapes": KUBELET,
}
"""Queries whose answer is a source's scrapes per hour (cAdvisor's come per node: `cadvisor_node_scrapes`)."""


def used_source(resource: str) -> str:
    """Where a resource's `used` comes from (its spec); requests and quotas always come from kube-state-metrics."""
    return KUBE_STATE if resource == PODS else spec_of(resource).used_source


COVERAGE_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",
    "cluster": "object",
    "source": "object",  # one of SOURCES
    "scrapes": "float64",  # largest sample count of any series of the source in the hour
    "expected": "float64",  # scrapes a fully covered hour has
    "coverage": "float64",  # min(1, scrapes / expected); 0 for an hour without any scrape
}

NOT_MEASURED = "not measured"
"""Estimate kind: the quantity cannot be measured per namespace (egress of hostNetwork pods); not billed."""
CARRIED = "carried forward"
"""Estimate kind: an unmounted claim's use, carried forward from its last observation (never above its request)."""
NEVER_OBSERVED = "never observed"
"""Estimate kind: a claim no kubelet ever reported in the period nor the day before: its use counts as 0."""
NODE_GAP = "node not scraped"
"""Estimate kind: a node's cAdvisor was not (fully) scraped while the namespace ran pods on it."""
UNREPORTED = "containers not reported"
"""Estimate kind: the namespace ran pods while cAdvisor was scraped but reported none of its containers."""
NAN_SAMPLES = "NaN samples"
"""Estimate kind: the hour's samples included NaN: the hour is left unknown (coverage 0), never billed as 0."""

ESTIMATE_SCHEMA: dict[str, str] = {
    "cluster": "object",
    "namespace": "object",
    "resource": "object",
    "tier": "object",
    "kind": "object",  # one of the estimate kinds above
    "hours": "int64",  # hours of the period affected
    "detail": "object",  # what: pods, claims, nodes
}
"""What an invoice must say about a namespace's figures that are estimates or gaps, one row per kind."""


def empty_estimate_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in ESTIMATE_SCHEMA.items()})


@dataclass
class UsageResult:
    """What `collect_usage` returns: the frame, everything worth telling the user, and how it was measured."""

    frame: pd.DataFrame  # USAGE_SCHEMA
    coverage: pd.DataFrame  # COVERAGE_SCHEMA: every hour of the period × source
    volumes: pd.DataFrame = field(default_factory=lambda: empty_volume_frame())  # VOLUME_SCHEMA, per PVC
    warnings: list[str] = field(default_factory=list)  # Prometheus warnings (partial answers) and data warnings
    queries: dict[str, str] = field(default_factory=dict)  # name → the exact PromQL run
    estimates: pd.DataFrame = field(default_factory=lambda: empty_estimate_frame())  # ESTIMATE_SCHEMA
    dropped: dict[str, int] = field(default_factory=dict)  # query → series dropped for having no namespace

    def incomplete_hours(self) -> pd.DataFrame:
        """Coverage rows of hours that were not fully scraped."""
        return self.coverage[self.coverage["coverage"] < 1].reset_index(drop=True)


def usage_queries(window: str, matchers: Sequence[LabelMatcher] = ()) -> dict[str, str]:
    """Every query `collect_usage` runs, rendered for the hour `window` and the extra matchers."""
    return {name: promql.render(template, window, tuple(matchers)) for name, template in promql.QUERIES.items()}


def follow_up_queries(names: Sequence[str], window: str, matchers: Sequence[LabelMatcher] = ()) -> dict[str, str]:
    """The follow-up queries `names` (promql.FOLLOW_UPS), rendered like `usage_queries`."""
    return {name: promql.render(promql.FOLLOW_UPS[name], window, tuple(matchers)) for name in names}


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


CARRY_LOOKBACK = "1d"
"""How far before the period an unmounted claim's last observation is looked for (longer ranges read a lot)."""


def collect_usage(
    client: PrometheusClient,
    catalog: Catalog,
    start: dt.datetime,
    end: dt.datetime,
    cluster: str,
    matchers: Sequence[LabelMatcher] = (),
    scrape_interval: float | None = None,
    strict: bool = True,
) -> UsageResult:
    """Hourly usage of `cluster` for the hours in [start, end) (UTC, on the hour).

    Phase one issues every query (split into pieces, concurrently) and reduces each piece as it
    arrives into per-key hourly arrays (`_Reducer`), raising one PrometheusError if any failed;
    phase two (`_Reducer.finish`) is pure. `matchers` select the cluster's series on a Prometheus
    that holds several (e.g. cluster="dc1"); `scrape_interval` (seconds) fixes how many scrapes a
    full hour has — by default the most seen in any hour of the period. Answers whose figures cannot be
    right (a family missing) raise UsageDataError; with `strict` off (billing with --allow-incomplete)
    they become warnings and the figures are what the answers allow.
    """
    _check_period(start, end)
    tiers = storage_tiers(catalog, cluster)
    window = promql.hour_window(client.build_version())
    queries = usage_queries(window, matchers)
    step = dt.timedelta(hours=1)
    first_eval = start + step - dt.timedelta(milliseconds=1)
    last_eval = end - dt.timedelta(milliseconds=1)
    reducer = _Reducer(start, end, tiers)
    warnings: list[str] = []

    def run(batch: Mapping[str, str]) -> None:
        names = list(batch)

        def consume(index: int, series: list[Series], answer_warnings: list[str]) -> None:
            warnings.extend(f"Prometheus warned on {names[index]}: {w}" for w in answer_warnings)
            reducer.add(names[index], series)

        client.stream_ranges([RangeQuery(q, first_eval, last_eval, step) for q in batch.values()], consume)

    run(queries)
    # What the first answers ask for: a fallback scrape clock, the pods behind a silent node.
    follow_ups = follow_up_queries(reducer.follow_ups(), window, matchers)
    if follow_ups:
        run(follow_ups)
        queries = {**queries, **follow_ups}
    before = promql.render(promql.STORAGE_LAST, CARRY_LOOKBACK, tuple(matchers))
    carried_in = client.query(before, start - dt.timedelta(milliseconds=1))
    warnings.extend(f"Prometheus warned on storage_before: {w}" for w in carried_in.warnings)
    reducer.add_last_before(carried_in.series)
    result = reducer.finish(cluster, scrape_interval, strict)
    give_back()  # the reducer's drained arrays and the checks' temporaries, before rating starts
    result.warnings[:0] = list(dict.fromkeys(warnings))
    result.queries = {**queries, "storage_before": before}
    return result


# ---------------------------------------------------------------- the table of measures

KeyOf = Callable[[Mapping[str, str], Mapping[str, str]], "tuple[str, str, float] | None"]
"""(series labels, StorageClass → tier) → (resource, tier, unit factor), or None to leave the series out."""


@dataclass(frozen=True)
class Measure:
    """How one query's series become one column of the usage frame.

    `scrapes` names the source whose scrapes in the hour divide a gauge's sum of samples (value-hours);
    None for counters, whose `increase` already is the hour's quantity. `combine` joins series that land
    on one key: summed, or the smallest (several quotas limit the same thing). `per_claim` measures are
    kept per PersistentVolumeClaim first (for carrying unmounted claims and naming idle volumes), then
    summed per tier into the frame.
    """

    query: str
    column: str
    key: KeyOf
    scrapes: str | None
    combine: str = "sum"
    per_claim: bool = False
    counter_source: str | None = None  # the source of a counter's series (`scrapes` is None for counters)

    @property
    def source(self) -> str | None:
        return self.scrapes or self.counter_source


def _fixed(resource: str, factor: float) -> KeyOf:
    return lambda _labels, _tiers: (resource, "", factor)


def _request_key(labels: Mapping[str, str], _tiers: Mapping[str, str]) -> tuple[str, str, float] | None:
    found = request_resource(labels.get("resource", ""))
    return (found[0], "", found[1]) if found else None


def _used_as_requested_key(labels: Mapping[str, str], _tiers: Mapping[str, str]) -> tuple[str, str, float] | None:
    # GPU use is GPU requests of running pods: no utilisation series is part of the metric contract.
    found = request_resource(labels.get("resource", ""))
    return (found[0], "", found[1]) if found and spec_of(found[0]).used_from_requests else None


def _quota_key(labels: Mapping[str, str], tiers: Mapping[str, str]) -> tuple[str, str, float] | None:
    name = labels.get("resource", "")
    if name.endswith(STORAGE_CLASS_QUOTA_SUFFIX):
        storage_class = name.removesuffix(STORAGE_CLASS_QUOTA_SUFFIX)
        return "storage", tiers.get(storage_class, storage_class), 1 / GIB_BYTES
    if name == "pods":
        return PODS, "", 1.0
    found = quota_resource(name)
    return (found[0], "", found[1]) if found else None


def _claim_key(_labels: Mapping[str, str], _tiers: Mapping[str, str]) -> tuple[str, str, float]:
    return "storage", "", 1 / GIB_BYTES  # the tier comes with the claim's class (claim_classes) at the end


def measures() -> tuple[Measure, ...]:
    """Every query that fills the usage frame, and how: one row per billable quantity's source.

    The resources measured by a query of their own come from the resource table (`ResourceSpec.measured`);
    requests, claims and quotas are one query each for every resource."""
    own = []
    for spec in specs():
        if spec.measured is None:
            continue
        if spec.measured.peak is not None:  # a level already (a rate is per second): no division by scrapes
            per_second = 3600.0 if spec.measured.counter else 1.0
            peak_key = _fixed(spec.name, per_second / spec.measured.per_unit)
            own.append(Measure(spec.measured.peak, "used_peak", peak_key, None, counter_source=spec.used_source))
        key = _fixed(spec.name, 1.0 / spec.measured.per_unit)
        if spec.measured.counter:
            own.append(Measure(spec.measured.query, "used", key, None, counter_source=spec.used_source))
            continue
        own.append(Measure(spec.measured.query, "used", key, spec.used_source))
        if spec.measured.also_requested:
            own.append(Measure(spec.measured.query, "requested", key, spec.used_source))
    return (
        *own,
        Measure("pods_running", "used", _fixed(PODS, 1.0), KUBE_STATE),
        Measure("container_requests", "requested", _request_key, KUBE_STATE),
        Measure("container_requests", "used", _used_as_requested_key, KUBE_STATE),
        Measure("requests_peak", "requested_peak", _request_key, None, counter_source=KUBE_STATE),
        Measure("requests_peak", "used_peak", _used_as_requested_key, None, counter_source=KUBE_STATE),
        Measure("storage_used", "used", _claim_key, KUBELET, per_claim=True),
        Measure("storage_peak", "used_peak", _claim_key, None, per_claim=True, counter_source=KUBELET),
        Measure("storage_requested", "requested", _claim_key, KUBE_STATE, per_claim=True),
        # `cpu` and `requests.cpu` (or several quota objects) limit the same thing: the smallest applies.
        Measure("quota_hard", "allocated", _quota_key, KUBE_STATE, combine="min"),
    )


# ---------------------------------------------------------------- phase one: reduce pieces as they arrive


def _hour_index(timestamps: np.ndarray, hour0: float, hours: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the hour each timestamp falls in, for those inside the period, and the mask that chose them."""
    hour = np.floor((timestamps - hour0) / 3600.0).astype(np.int64)
    inside = (hour >= 0) & (hour < hours)
    return hour[inside], inside


_RELEASED = np.empty(0)


class _Hourly:
    """Per-key hourly arrays of one measure: the combined values, which hours had a value, which a NaN."""

    def __init__(self, hours: int, combine: str) -> None:
        self.hours = hours
        self.combine = combine
        self.keys: dict[tuple[str, ...], int] = {}
        self.values: list[np.ndarray] = []
        self.seen: list[np.ndarray] = []
        self.nan: list[np.ndarray] = []

    def add(self, key: tuple[str, ...], hour: np.ndarray, values: np.ndarray) -> None:
        index = self.keys.get(key)
        if index is None:
            index = self.keys[key] = len(self.values)
            self.values.append(np.full(self.hours, np.inf if self.combine == "min" else 0.0))
            self.seen.append(np.zeros(self.hours, dtype=bool))
            self.nan.append(np.zeros(self.hours, dtype=bool))
        bad = np.isnan(values)
        if bad.any():
            self.nan[index][hour[bad]] = True
            hour, values = hour[~bad], values[~bad]
        # One series has at most one point per hour (the step), so its hour indices are unique and plain
        # fancy-index arithmetic is exact (and much faster than ufunc.at).
        target = self.values[index]
        if self.combine == "min":
            target[hour] = np.minimum(target[hour], values)
        else:
            target[hour] += values
        self.seen[index][hour] = True

    def drain(self) -> Iterator[tuple[tuple[str, ...], np.ndarray, np.ndarray]]:
        """(key, values with NaN where unseen, NaN flags) per key, each key's arrays released once yielded."""
        for key, index in self.keys.items():
            values = self.values[index]
            values[~self.seen[index]] = np.nan
            yield key, values, self.nan[index]
            self.values[index] = self.seen[index] = self.nan[index] = _RELEASED
        self.keys, self.values, self.seen, self.nan = {}, [], [], []

    def matrix(self) -> tuple[list[tuple[str, ...]], np.ndarray, np.ndarray]:
        """(keys in index order, hours × keys values with NaN where unseen, hours × keys NaN flags)."""
        keys = list(self.keys)
        if not keys:
            empty = np.zeros((self.hours, 0))
            return keys, empty, empty.astype(bool)
        values = np.column_stack(self.values)
        self.values.clear()
        values[~np.column_stack(self.seen)] = np.nan
        self.seen.clear()
        nan = np.column_stack(self.nan)
        self.nan.clear()
        self.keys = {}
        return keys, values, nan


class _Reducer:
    """Folds every answer piece into hourly arrays as it arrives; `finish` turns them into the result."""

    def __init__(self, start: dt.datetime, end: dt.datetime, tiers: Mapping[str, str]) -> None:
        self.start = start
        self.hour0 = start.timestamp()
        self.hours = round((end.timestamp() - self.hour0) / 3600)
        self.tiers = tiers
        table = measures()
        self.measures = {m: _Hourly(self.hours, m.combine) for m in table}
        self.measures_of = {query: tuple(m for m in table if m.query == query) for query in {m.query for m in table}}
        self.scrapes = {source: np.zeros(self.hours) for source in SOURCES}
        self.node_scrapes: dict[str, np.ndarray] = {}
        self.on_node: dict[tuple[str, str], np.ndarray] = {}
        self.host_network: dict[str, np.ndarray] = {}
        self.last: _Hourly = _Hourly(self.hours, "sum")  # (namespace, claim) → last bytes used in the hour
        self.last_before: dict[tuple[str, str], float] = {}
        self.claim_class: dict[tuple[str, str], str] = {}
        self.dropped: dict[str, int] = {}

    def _points(self, item: Series) -> tuple[np.ndarray, np.ndarray]:
        hour, inside = _hour_index(item.timestamps, self.hour0, self.hours)
        return hour, item.values[inside]

    def _maximum(self, table: dict, key: object, hour: np.ndarray, values: np.ndarray) -> None:
        target = table.setdefault(key, np.zeros(self.hours))
        np.maximum.at(target, hour, np.nan_to_num(values, nan=0.0))

    def add(self, query: str, series: Sequence[Series]) -> None:
        """Fold one piece of one query's answer in."""
        source = _SCRAPE_SOURCE.get(query)
        for item in series:
            hour, values = self._points(item)
            if source is not None:
                np.maximum.at(self.scrapes[source], hour, np.nan_to_num(values, nan=0.0))
                continue
            if query == "cadvisor_node_scrapes":
                np.maximum.at(self.scrapes[CADVISOR], hour, np.nan_to_num(values, nan=0.0))
                if item.labels.get("node"):
                    self._maximum(self.node_scrapes, item.labels["node"], hour, values)
                continue
            namespace = item.labels.get("namespace", "")
            if not namespace:  # no namespace to bill: counted and reported, never a crash or an empty name
                self.dropped[query] = self.dropped.get(query, 0) + 1
                continue
            if query == "namespaces_on_nodes":
                self._maximum(self.on_node, (namespace, item.labels.get("node", "")), hour, values)
            elif query == "host_network_pods":
                self._maximum(self.host_network, namespace, hour, values)
            elif query == "claim_classes":
                if item.labels.get("storageclass") and np.nan_to_num(values).any():
                    self.claim_class[(namespace, item.labels.get("persistentvolumeclaim", ""))] = item.labels[
                        "storageclass"
                    ]
            elif query == "storage_last":
                self.last.add((namespace, item.labels.get("persistentvolumeclaim", "")), hour, values)
            for measure in self.measures_of.get(query, ()):
                found = measure.key(item.labels, self.tiers)
                if found is None:
                    continue
                resource, tier, factor = found
                if measure.per_claim:
                    key: tuple[str, ...] = (namespace, item.labels.get("persistentvolumeclaim", ""), tier)
                else:
                    key = (namespace, resource, tier)
                self.measures[measure].add(key, hour, values * factor)

    def follow_ups(self) -> list[str]:
        """Follow-up queries (promql.FOLLOW_UPS) the answers so far ask for."""
        wanted = []
        if not self.scrapes[KUBE_STATE].any():
            wanted.append("kube_state_scrapes_by_quota")
        cluster = self.scrapes[CADVISOR]
        if any((counts < cluster).any() for counts in self.node_scrapes.values()):
            wanted.append("namespaces_on_nodes")  # some node was scraped less than another: it may hide pods
        return wanted

    def add_last_before(self, series: Sequence[Series]) -> None:
        """Each claim's last bytes-used sample before the period: where an unmounted claim starts from."""
        for item in series:
            if len(item.values) and not np.isnan(item.values[-1]):
                key = (item.labels.get("namespace", ""), item.labels.get("persistentvolumeclaim", ""))
                self.last_before[key] = float(item.values[-1])

    # ------------------------------------------------------------ phase two

    def finish(self, cluster: str, scrape_interval: float | None, strict: bool = True) -> UsageResult:
        # Volume statistics come from the same kubelets as cAdvisor: an hour in which cAdvisor answered but
        # no volume series exists is an hour with nothing mounted (unmounted claims are carried), not a gap.
        answered = (self.scrapes[KUBELET] == 0) & (self.scrapes[CADVISOR] > 0) & self.scrapes[KUBELET].any()
        if answered.any():
            kubelet = self.scrapes[KUBELET].copy()
            kubelet[answered] = kubelet.max() * np.minimum(
                self.scrapes[CADVISOR][answered] / self.scrapes[CADVISOR].max(), 1.0
            )
            self.scrapes[KUBELET] = kubelet
        scrapes = _Scrapes.measure(self.scrapes, scrape_interval)
        share = dict(scrapes.share)
        warnings: list[str] = []
        refusals = self._refusals(cluster, scrapes)
        if refusals and strict:
            raise UsageDataError("\n".join(refusals))
        warnings += refusals
        node_share, node_estimates, node_warnings = self._node_coverage(cluster, scrapes)
        container_share, unreported_estimates, unreported_warnings = self._unreported(cluster, scrapes, node_share)
        keys = {key for m, h in self.measures.items() if not m.per_claim for key in h.keys}
        claims = {key for m, h in self.measures.items() if m.per_claim for key in h.keys}
        keys |= {(namespace, "storage", self._tier(namespace, claim)) for namespace, claim, _ in claims}
        frame_grid = _FrameGrid(self.hours, keys)
        for measure, hourly in self.measures.items():
            if not measure.per_claim:
                scale = scrapes.per_scrape(measure.scrapes) if measure.scrapes is not None else None
                frame_grid.put_hourly(measure.column, hourly, scale)
        give_back()  # the per-key arrays just copied into the matrices

        volumes, claim_estimates, claim_warnings = self._claims(cluster, scrapes, frame_grid)
        warnings += claim_warnings
        if not scrapes.counts[KUBELET].any():
            # No volume statistics at all: fine without PVCs (storage use is 0 wherever kube-state-metrics
            # saw the quota), a blind spot with them.
            share[KUBELET] = share[KUBE_STATE]
            if len(volumes):
                warnings.append(
                    "PVCs exist but kubelet_volume_stats_used_bytes has no series: storage use cannot be measured; "
                    "scrape the kubelets' /metrics endpoint (volume statistics are not part of /metrics/cadvisor)"
                )
        warnings += node_warnings
        coverage = _coverage_frame(scrapes, share, cluster, self.hour0, self.hours)
        warnings += unreported_warnings
        frame, nan_estimates = frame_grid.cut(share, node_share, cluster, self.hour0, container_share)
        give_back()  # the matrices, now rows
        host_network = self._host_network_estimates()
        if host_network:
            pods = ", ".join(f"{e['namespace']} ({e['detail']})" for e in host_network)
            warnings.append(
                f"cluster {cluster}: egress of hostNetwork pods is not measured (they send as the node, so their "
                f"counters are the host's) and not billed: {pods}"
            )
        estimates = [*host_network, *claim_estimates, *node_estimates, *unreported_estimates, *nan_estimates]
        warnings += _data_warnings(frame, coverage, self.tiers, cluster)
        if self.dropped:
            counts = ", ".join(f"{n} from {q}" for q, n in sorted(self.dropped.items()))
            warnings.append(
                f"cluster {cluster}: {sum(self.dropped.values())} series without a namespace were left out ({counts})"
            )
        return UsageResult(
            frame=check_usage_frame(frame),
            coverage=coverage,
            volumes=volumes,
            warnings=warnings,
            estimates=_estimate_frame(estimates, cluster),
            dropped=dict(self.dropped),
        )

    def _refusals(self, cluster: str, scrapes: _Scrapes) -> list[str]:
        """Why these answers cannot give right figures: a missing family, or no scrape clock to divide by."""
        refusals = []
        running = next(h for m, h in self.measures.items() if m.query == "pods_running")
        if scrapes.counts[KUBE_STATE].any() and not running.keys:
            # kube-state-metrics itself runs in a pod: a scraped cluster without any running pod lacks the metric.
            refusals.append(
                f"cluster {cluster}: kube_pod_status_phase has no running pod although kube-state-metrics is "
                "scraped, so running pods, their requests and GPUs cannot be measured; add "
                "kube_pod_status_phase to kube-state-metrics --metric-allowlist (or remove it from "
                "--metric-denylist)"
            )
        measured = {m.source for m, h in self.measures.items() if h.keys}
        if CADVISOR in measured and not scrapes.counts[CADVISOR].any():
            refusals.append(
                f"cluster {cluster}: containers report CPU but no node's root cgroup does "
                '(container_cpu_usage_seconds_total{id="/"}), so the cAdvisor scrapes cannot be counted; keep the '
                'root cgroup in the kubelet scrape (do not drop id="/" in metricRelabelings)'
            )
        if not scrapes.counts[KUBE_STATE].any() and (scrapes.counts[CADVISOR].any() or KUBE_STATE in measured):
            refusals.append(
                f"cluster {cluster}: kube-state-metrics has neither kube_node_info nor kube_resourcequota in the "
                "period, so its scrapes cannot be counted and requests, quotas, storage classes and load balancers "
                "cannot be measured; check that kube-state-metrics runs, is scraped and exports both "
                "(`chargeback doctor` lists what is missing)"
            )
        return refusals

    def _claims(
        self, cluster: str, scrapes: _Scrapes, frame_grid: _FrameGrid
    ) -> tuple[pd.DataFrame, list[dict], list[str]]:
        """The per-claim frame (unmounted claims carried forward), folded into the frame's storage rows."""
        used_hourly = next(h for m, h in self.measures.items() if m.per_claim and m.column == "used")
        requested_hourly = next(h for m, h in self.measures.items() if m.per_claim and m.column == "requested")
        peak_hourly = next(h for m, h in self.measures.items() if m.per_claim and m.column == "used_peak")
        found = list(dict.fromkeys([*requested_hourly.keys, *used_hourly.keys]))
        if not found:
            return empty_volume_frame(), [], []
        hours = self.hours
        position = {key: i for i, key in enumerate(found)}
        claims = [(namespace, claim, self._tier(namespace, claim)) for namespace, claim, _ in found]

        def dense(hourly: _Hourly, source: str | None) -> tuple[np.ndarray, np.ndarray]:
            """Hours × claims; a gauge's sums divided by the source's scrapes (None: levels as they are)."""
            values = np.full((hours, len(claims)), np.nan)
            nan = np.zeros((hours, len(claims)), dtype=bool)
            keys, matrix, flags = hourly.matrix()
            known = [i for i, key in enumerate(keys) if key in position]  # a peak of a claim nothing else saw: no
            columns = [position[keys[i]] for i in known]
            scale = 1.0 if source is None else scrapes.per_scrape(source)[:, None]
            values[:, columns] = matrix[:, known] * scale
            nan[:, columns] = flags[:, known]
            return values, nan

        used, used_nan = dense(used_hourly, KUBELET)
        requested, requested_nan = dense(requested_hourly, KUBE_STATE)
        peak, _ = dense(peak_hourly, None)
        scraped = scrapes.share[KUBELET] > 0

        # Last bytes-used level known at each hour: the hour's own last sample, else the latest before it.
        last_keys, last_matrix, _ = self.last.matrix()
        level = np.full((hours, len(claims)), np.nan)
        for column, (namespace, claim) in enumerate(last_keys):
            if (namespace, claim, "") in position:
                level[:, position[(namespace, claim, "")]] = last_matrix[:, column]
        for (namespace, claim), value in self.last_before.items():
            at = position.get((namespace, claim, ""))
            if at is not None and np.isnan(level[0, at]):
                level[0, at] = value
        index = np.where(~np.isnan(level), np.arange(hours)[:, None], 0)
        np.maximum.accumulate(index, axis=0, out=index)
        known = np.take_along_axis(level, index, axis=0) / GIB_BYTES  # NaN where nothing seen yet

        exists = requested > 0
        unmounted = exists & np.isnan(used) & ~used_nan & scraped[:, None]
        carry = unmounted & ~np.isnan(known)
        used = np.where(carry, np.minimum(known, requested), used)
        never = unmounted & np.isnan(known)
        used = np.where(never, 0.0, used)
        used = np.where(np.isnan(used) & scraped[:, None] & ~used_nan, 0.0, used)
        used[~scraped] = np.nan
        # A claim's peak: its highest sample, else (unmounted, carried) its hour's level; never below it.
        peak = np.fmax(peak, used)

        estimates: list[dict] = []
        warnings: list[str] = []
        for column, (namespace, claim, tier) in enumerate(claims):
            for kind, mask in ((CARRIED, carry[:, column]), (NEVER_OBSERVED, never[:, column])):
                if mask.any():
                    estimates.append(
                        {
                            "namespace": namespace,
                            "resource": "storage",
                            "tier": tier,
                            "kind": kind,
                            "hours": int(mask.sum()),
                            "detail": claim,
                        }
                    )
        if carry.any():
            carried = sorted(
                f"{claims[c][0]}/{claims[c][1]} ({int(carry[:, c].sum())} h)" for c in np.nonzero(carry.any(axis=0))[0]
            )
            warnings.append(
                f"cluster {cluster}: {len(carried)} PVC(s) were mounted nowhere for part of the period; their use is "
                f"carried forward from the last observation, at most their request: {', '.join(carried[:10])}"
                + (f" and {len(carried) - 10} more" if len(carried) > 10 else "")
            )
        if never.any():
            names = sorted({f"{claims[c][0]}/{claims[c][1]}" for c in np.nonzero(never.any(axis=0))[0]})
            warnings.append(
                f"cluster {cluster}: {len(names)} PVC(s) were never reported by a kubelet in the period nor the "
                f"{CARRY_LOOKBACK} before (not mounted): their use counts as 0: {', '.join(names[:10])}"
                + (f" and {len(names) - 10} more" if len(names) > 10 else "")
            )

        # Fold claims into the frame's (namespace, storage, tier) rows.
        folded: dict[tuple[str, str, str], list[int]] = {}
        for column, (namespace, _claim, tier) in enumerate(claims):
            folded.setdefault((namespace, "storage", tier), []).append(column)
        keys = list(folded)
        no_flags = np.zeros_like(used_nan)
        folds = (("used", used, used_nan), ("requested", requested, requested_nan), ("used_peak", peak, no_flags))
        for name, matrix, flags in folds:
            summed = np.column_stack([_nansum_or_nan(matrix[:, cols]) for cols in folded.values()])
            flagged = np.column_stack([flags[:, cols].any(axis=1) for cols in folded.values()])
            frame_grid.put(name, keys, summed, flagged)

        # Rows in (namespace, tier, claim, hour) order, built in that order: no sort of text columns.
        claim_order = sorted(range(len(claims)), key=lambda c: (claims[c][0], claims[c][2], claims[c][1]))
        rank = np.empty(len(claims), dtype=np.int64)
        rank[claim_order] = np.arange(len(claims))
        hour_index, key_index = np.nonzero(exists)
        order = np.lexsort((hour_index, rank[key_index]))
        hour_index, key_index = hour_index[order], key_index[order]
        del order

        def per_claim(part: int) -> np.ndarray:
            return np.array([claim[part] for claim in claims], dtype=object)[key_index]

        frame = pd.DataFrame(
            {
                "hour": _hours(hour_index, self.hour0),
                "cluster": pd.Series(_same_text(len(hour_index), cluster), dtype=object),
                "namespace": pd.Series(per_claim(0), dtype=object),
                "pvc": pd.Series(per_claim(1), dtype=object),
                "tier": pd.Series(per_claim(2), dtype=object),
                "used": used[hour_index, key_index],
                "requested": requested[hour_index, key_index],
            }
        )
        return frame, estimates, warnings

    def _tier(self, namespace: str, claim: str) -> str:
        """The claim's storage tier: its StorageClass's tier, the raw class if none, "" if the class is unknown."""
        name = self.claim_class.get((namespace, claim), "")
        return self.tiers.get(name, name) if name else ""

    def _node_coverage(self, cluster: str, scrapes: _Scrapes) -> tuple[dict[str, np.ndarray], list[dict], list[str]]:
        """namespace → its coverage per hour on the nodes its pods ran on, for namespaces a node scraped less
        than the others hid (1 in the other hours), with the estimates and warnings that name them."""
        if not self.node_scrapes and self.scrapes[CADVISOR].any():
            return (
                {},
                [],
                [
                    f"cluster {cluster}: cAdvisor series carry no `node` label, so a node that stops being scraped "
                    "cannot be told apart; add the node target label to the kubelet scrape (kube-prometheus does)"
                ],
            )
        if not self.on_node:  # no node scraped less than the cluster (`follow_ups`), or no pod placed on one
            return {}, [], []
        expected = scrapes.expected[CADVISOR] or max((float(c.max()) for c in self.node_scrapes.values()), default=0)
        if expected <= 0:
            return {}, [], []
        node_share = {n: np.minimum(c / expected, 1.0) for n, c in self.node_scrapes.items()}
        per_namespace: dict[str, np.ndarray] = {}
        hidden: dict[str, dict[str, np.ndarray]] = {}
        cluster_share = scrapes.share[CADVISOR]
        for (namespace, node), running in self.on_node.items():
            share = node_share.get(node, np.zeros(self.hours))
            # A node scraped less than the cluster's cAdvisor as a whole (hours nobody was scraped are the
            # source's own gaps, reported per source).
            gap = (running > 0) & (share < cluster_share - 1e-9)
            if gap.any():
                current = per_namespace.setdefault(namespace, np.ones(self.hours))
                np.minimum(current, np.where(gap, share, 1.0), out=current)
                hidden.setdefault(node, {})[namespace] = gap
        estimates, warnings = [], []
        for node in sorted(hidden):
            namespaces = hidden[node]
            gap_hours = np.logical_or.reduce(list(namespaces.values()))
            shown = ", ".join(f"{self._hour(h):%Y-%m-%d %H:00}" for h in np.nonzero(gap_hours)[0][:6])
            more = f" and {int(gap_hours.sum()) - 6} more" if gap_hours.sum() > 6 else ""
            warnings.append(
                f"node {node} of cluster {cluster} was not fully scraped (cAdvisor) in {int(gap_hours.sum())} hour(s) "
                f"while it ran pods of {', '.join(sorted(namespaces))}: {shown}{more}; their cpu, memory, egress "
                "and storage use in those hours are incomplete"
            )
            for namespace, gap in sorted(namespaces.items()):
                for resource in ("cpu", "memory", "egress", "storage"):
                    estimates.append(
                        {
                            "namespace": namespace,
                            "resource": resource,
                            "tier": "",
                            "kind": NODE_GAP,
                            "hours": int(gap.sum()),
                            "detail": node,
                        }
                    )
        return per_namespace, estimates, warnings

    def _unreported(
        self, cluster: str, scrapes: _Scrapes, node_share: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[dict], list[str]]:
        """namespace → 0 in the hours it ran pods (kube-state-metrics) while cAdvisor was scraped but reported
        no CPU nor memory of its containers (1 elsewhere), with the estimates and warnings naming them.

        Every running container has a cgroup cAdvisor reports, so such an hour is data lost between the node and
        this answer (a dropped or lost series), not an idle namespace: its use is unknown, never billed as 0.
        Hours a node not scraped explains are the node gap's (`node_share`), not counted twice. Measured before
        the arrays are moved into the frame."""
        running = next(h for m, h in self.measures.items() if m.query == "pods_running")
        reported: dict[str, np.ndarray] = {}
        for measure, hourly in self.measures.items():
            if measure.column != "used" or measure.source != CADVISOR or measure.per_claim:
                continue
            for key, index in hourly.keys.items():
                if key[1] in UNREPORTED_RESOURCES:
                    seen = reported.setdefault(key[0], np.zeros(self.hours, dtype=bool))
                    seen |= hourly.seen[index]
        kube_state = scrapes.counts[KUBE_STATE]
        scraped = scrapes.counts[CADVISOR] > 0
        per_namespace: dict[str, np.ndarray] = {}
        estimates, named = [], []
        for key, index in sorted(running.keys.items()):
            namespace = key[0]
            counted = (kube_state > 0) & running.seen[index]
            pods = np.divide(running.values[index], kube_state, out=np.zeros(self.hours), where=counted)
            gap = (pods >= UNREPORTED_MIN_PODS) & scraped & ~reported.get(namespace, np.zeros(self.hours, dtype=bool))
            if namespace in node_share:
                gap &= node_share[namespace] >= 1
            if not gap.any():
                continue
            per_namespace[namespace] = np.where(gap, 0.0, 1.0)
            named.append(f"{namespace} ({_hours_list(self.start, gap)})")
            for resource in ("cpu", "memory", "egress"):
                estimates.append(
                    {
                        "namespace": namespace,
                        "resource": resource,
                        "tier": "",
                        "kind": UNREPORTED,
                        "hours": int(gap.sum()),
                        "detail": f"{int(gap.sum())} hour(s) of running pods without cAdvisor series",
                    }
                )
        warnings = []
        if named:
            warnings.append(
                f"cluster {cluster}: cAdvisor was scraped but reported no container of these namespaces while they "
                f"ran pods: {'; '.join(named)}; their cpu, memory and egress in those hours are unknown, not billed "
                "(`chargeback doctor` shows it as unreported-containers)"
            )
        return per_namespace, estimates, warnings

    def _host_network_estimates(self) -> list[dict]:
        return [
            {
                "namespace": namespace,
                "resource": "egress",
                "tier": "",
                "kind": NOT_MEASURED,
                "hours": int((pods > 0).sum()),
                "detail": f"{int(pods.max())} hostNetwork pod(s)",
            }
            for namespace, pods in sorted(self.host_network.items())
            if (pods > 0).any()
        ]

    def _hour(self, index: int) -> dt.datetime:
        return self.start + dt.timedelta(hours=int(index))


UNREPORTED_RESOURCES = ("cpu", "memory")
"""cAdvisor reports both for every running container (egress may be the node's, for hostNetwork pods)."""
UNREPORTED_MIN_PODS = 0.5
"""Running pods on average in an hour from which a namespace without any container series is a gap: a pod
started in the hour's last seconds may not have been scraped by cAdvisor yet."""


def _hours_list(start: dt.datetime, mask: np.ndarray, limit: int = 4) -> str:
    """'24 hour(s) from 2026-10-02 00:00' style text of an hour mask."""
    index = np.flatnonzero(mask)
    stamps = [start + dt.timedelta(hours=int(i)) for i in index[:limit]]
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"{len(index)} hour(s): " + ", ".join(f"{s:%Y-%m-%d %H:00}" for s in stamps) + more


def _nansum_or_nan(matrix: np.ndarray) -> np.ndarray:
    """Row sums that stay NaN where every value of the row is NaN."""
    summed = np.nansum(matrix, axis=1)
    summed[np.isnan(matrix).all(axis=1)] = np.nan
    return summed


def _hours(index: np.ndarray, hour0: float) -> pd.Series:
    """Start of each indexed hour as a UTC timestamp column (built in place: these columns are long)."""
    nanoseconds = index.astype(np.int64)
    nanoseconds *= 3600
    nanoseconds += int(hour0)
    nanoseconds *= 10**9
    return pd.Series(nanoseconds, dtype="datetime64[ns, UTC]", copy=False)  # epoch nanoseconds, no copy


@dataclass(frozen=True)
class _Scrapes:
    """Scrapes per hour of each source, the count of a fully scraped hour, and the covered share."""

    counts: dict[str, np.ndarray]
    expected: dict[str, float]
    share: dict[str, np.ndarray]

    @classmethod
    def measure(cls, counts: Mapping[str, np.ndarray], scrape_interval: float | None) -> _Scrapes:
        expected, share = {}, {}
        for source, found in counts.items():
            expected[source] = 3600.0 / scrape_interval if scrape_interval else float(found.max(initial=0.0))
            share[source] = np.minimum(found / expected[source], 1.0) if expected[source] > 0 else np.zeros(len(found))
        return cls(dict(counts), expected, share)

    def per_scrape(self, source: str, factor: float = 1.0) -> np.ndarray:
        """Scale turning a sum of samples into value-hours: factor / scrapes in the hour."""
        divisor = self.counts[source].copy()
        missing = divisor <= 0
        if missing.any():
            divisor[missing] = self.expected[source] or 1.0
        return factor / divisor


def _coverage_frame(
    scrapes: _Scrapes, share: Mapping[str, np.ndarray], cluster: str, hour0: float, hours: int
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "hour": _hours(np.arange(hours), hour0).repeat(len(SOURCES)).to_numpy(),
            "cluster": cluster,
            "source": np.tile(np.array(SOURCES, dtype=object), hours),
            "scrapes": np.column_stack([scrapes.counts[s] for s in SOURCES]).ravel(),
            "expected": np.tile([scrapes.expected[s] for s in SOURCES], hours),
            "coverage": np.column_stack([share[s] for s in SOURCES]).ravel(),
        }
    ).astype(COVERAGE_SCHEMA)


def _estimate_frame(rows: list[dict], cluster: str) -> pd.DataFrame:
    if not rows:
        return empty_estimate_frame()
    frame = pd.DataFrame([{"cluster": cluster, **row} for row in rows], columns=list(ESTIMATE_SCHEMA))
    return frame.astype(ESTIMATE_SCHEMA)


_COLUMNS = ("used", "requested", "allocated", *PEAK_COLUMNS)
_NODE_SOURCES = (CADVISOR, KUBELET)
"""Sources scraped from each node's kubelet: a silent node leaves the namespaces it runs pods of incomplete."""


class _FrameGrid:
    """The usage frame's hour × (namespace, resource, tier) matrices, filled measure by measure."""

    def __init__(self, hours: int, keys: set[tuple[str, ...]]) -> None:
        self.hours = hours
        self.keys = sorted(keys)
        self.position = {key: i for i, key in enumerate(self.keys)}
        self.matrices = {
            c: np.full((hours, len(self.keys)), np.nan, dtype=np.float32 if c in PEAK_COLUMNS else np.float64)
            for c in _COLUMNS
        }
        self.poisoned = np.zeros((hours, len(self.keys)), dtype=bool)

    def _write(self, column: str, at: int | list[int], values: np.ndarray, nan: np.ndarray) -> None:
        # Each (column, resource) has one measure, so a cell is written once; adding keeps that true anyway.
        target = self.matrices[column]
        current = target[:, at]
        target[:, at] = np.where(np.isnan(current), values, current + np.nan_to_num(values))
        if column not in PEAK_COLUMNS:  # a NaN peak leaves the peak unknown, never the hour's billed figures
            self.poisoned[:, at] |= nan

    def put_hourly(self, column: str, hourly: _Hourly, scale: np.ndarray | None) -> None:
        """Move a measure's per-key arrays in (scaled per hour), releasing each as it goes."""
        for key, values, nan in hourly.drain():
            self._write(column, self.position[key], values if scale is None else values * scale, nan)

    def put(self, column: str, keys: list[tuple[str, ...]], values: np.ndarray, nan: np.ndarray) -> None:
        if keys:
            self._write(column, [self.position[k] for k in keys], values, nan)

    def cut(
        self,
        share: Mapping[str, np.ndarray],
        node_share: Mapping[str, np.ndarray],
        cluster: str,
        hour0: float,
        container_share: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[pd.DataFrame, list[dict]]:
        """The rows that hold a value, or whose hour was not scraped at all (coverage 0, NaN use).

        `node_share`: namespace → its coverage on the nodes it ran on (node-scraped keys); `container_share`:
        namespace → 0 in hours cAdvisor reported none of its running containers (cAdvisor keys)."""
        keys, matrices, poisoned = self.keys, self.matrices, self.poisoned
        self.matrices = {}
        namespaces = np.array([k[0] for k in keys], dtype=object)
        resources = np.array([k[1] for k in keys], dtype=object)
        tier_names = np.array([k[2] for k in keys], dtype=object)
        source_of = np.array([SOURCES.index(used_source(r)) for r in resources], dtype=np.int64)
        has_request = np.isin(resources, [spec.name for spec in specs() if spec.has_request])
        from_kube_state = has_request | (resources == PODS)

        by_source = np.column_stack([share[s] for s in SOURCES])
        # Namespaces a silent node hid, or whose containers cAdvisor did not report: their node-scraped keys take
        # that coverage (hours × such keys).
        containers = container_share or {}
        key_shares: dict[int, np.ndarray] = {}
        for k, (n, r) in enumerate(zip(namespaces, resources, strict=True)):
            parts = [node_share[n]] if n in node_share and used_source(r) in _NODE_SOURCES else []
            if n in containers and used_source(r) == CADVISOR:
                parts.append(containers[n])
            if parts:
                key_shares[k] = np.minimum.reduce(parts)
        node_keys = list(key_shares)
        node_column = np.full(len(keys), -1, dtype=np.int64)
        node_coverage = np.column_stack([key_shares[k] for k in node_keys]) if node_keys else None
        node_column[node_keys] = np.arange(len(node_keys))
        unscraped = (by_source == 0)[:, source_of]  # hours × keys, bool
        present = unscraped | poisoned  # explicit rows: unknown use
        if node_coverage is not None:
            present[:, node_keys] |= node_coverage < 1  # a hidden namespace says so, never a silent zero
        for name, matrix in matrices.items():
            if name not in PEAK_COLUMNS:  # a peak alone (a 5-minute rate reaching back before the hour) is no row
                present |= ~np.isnan(matrix)
        # One flat position per row into the hours × keys matrices: indexing by two arrays would convert
        # both to 64-bit for every column cut (hundreds of MB for a month of a large cluster).
        flat = np.flatnonzero(present)
        del present
        hour_index = (flat // len(keys)).astype(np.int32)
        key_index = (flat % len(keys)).astype(np.int32)

        # The matrices' columns first, each matrix dropped once cut, so that the row arrays replace them before
        # anything else is built: a month of a large cluster is millions of rows, and the matrices are as
        # large as the frame. The frame is made from the arrays at the end (adding columns one by one copies).
        row_scraped = ~unscraped.ravel()[flat]
        del unscraped
        row_poisoned = poisoned.ravel()[flat]
        used = matrices.pop("used").ravel()[flat]
        used[np.isnan(used) & row_scraped] = 0.0
        used[~row_scraped | row_poisoned] = np.nan
        requested = matrices.pop("requested").ravel()[flat]
        kube_state_scraped = share[KUBE_STATE] > 0
        requested[np.isnan(requested) & has_request[key_index] & kube_state_scraped[hour_index]] = 0.0
        allocated = matrices.pop("allocated").ravel()[flat]
        used_peak = matrices.pop("used_peak").ravel()[flat]
        used_peak[np.isnan(used)] = np.nan
        requested_peak = matrices.pop("requested_peak").ravel()[flat]
        del flat

        # Coverage of each row's `used` source, per node where a silent node hid the namespace's pods; rows
        # from kube-state-metrics also need its scrapes. Computed a slice of rows at a time: the index
        # arithmetic of millions of rows at once would double the frame's size for a moment.
        coverage = np.empty(len(hour_index))
        for rows in row_slices(len(hour_index)):
            hour, key = hour_index[rows], key_index[rows]
            part = by_source[hour, source_of[key]]
            if node_coverage is not None:
                on = node_column[key] >= 0
                part[on] = np.minimum(part[on], node_coverage[hour[on], node_column[key[on]]])
            kube = from_kube_state[key]
            part[kube] = np.minimum(part[kube], share[KUBE_STATE][hour[kube]])
            part[row_poisoned[rows] | ~row_scraped[rows]] = 0.0
            coverage[rows] = part
        del row_poisoned, row_scraped, node_coverage

        frame = pd.DataFrame(
            {
                "hour": _hours(hour_index, hour0),
                "cluster": pd.Categorical.from_codes(
                    np.zeros(len(hour_index), dtype=np.int8), categories=pd.Index([cluster], dtype=object)
                ),
                "namespace": text_column(namespaces, key_index),
                "resource": text_column(resources, key_index),
                "tier": text_column(tier_names, key_index),
                "used": used,
                "requested": requested,
                "allocated": allocated,
                "coverage": coverage,
                "used_peak": used_peak,
                "requested_peak": requested_peak,
            },
            copy=False,
        )
        estimates = []
        if poisoned.any():
            for column in np.nonzero(poisoned.any(axis=0))[0]:
                estimates.append(
                    {
                        "namespace": namespaces[column],
                        "resource": resources[column],
                        "tier": tier_names[column],
                        "kind": NAN_SAMPLES,
                        "hours": int(poisoned[:, column].sum()),
                        "detail": "",
                    }
                )
        return frame, estimates


VOLUME_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",
    "cluster": "object",
    "namespace": "object",
    "pvc": "object",  # PersistentVolumeClaim name
    "tier": "object",  # as in the usage frame
    "used": "float64",  # GiB-hours used on the volume (carried forward while unmounted); NaN: kubelets unscraped
    "requested": "float64",  # GiB-hours the claim asked for
}
"""Per-PVC hourly storage, the detail behind the usage frame's storage rows (idle volumes are named by it)."""


def empty_volume_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in VOLUME_SCHEMA.items()})


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
