"""Prometheus answers → the hourly calls frame: who called which capability how often.

The metric contract is `rates.yaml` `call_counting` (pool_catalog.models.CallCounting; default Istio's
`istio_requests_total`, one reporter). A call belongs to the capability exposed by the namespace that
served it (the provider label), its caller is the consumer label's namespace, its class the class
label's value (rating maps values to the call classes of the version in force).

Counted per hour with `increase`, evaluated like every other counter (chargeback.collect.promql: one
millisecond before the end of each hour over the server's hour window), so counter resets of restarted
proxies are corrected and every hour is counted once. Per-series increases are summed on the server;
`increase` extrapolates to the hour's edges, so each hour's figure is rounded half-even to whole calls.
Billable calls and the calls answered with a not-billable code (default 5xx) are two queries, so the
invoice can show what was left out. Callers the proxy could not identify (Istio: "unknown", a caller
without sidecar) are kept under `UNKNOWN_CALLER`, never dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

from pool_catalog.models import CallCounting, Catalog

from ..errors import UsageDataError
from ..period import Period
from . import promql
from .prometheus import PrometheusClient, RangeQuery, Series
from .promql import LabelMatcher

UNKNOWN_CALLER = "unknown"
"""`consumer_namespace` of calls whose caller names no namespace."""

CALLS_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",  # start of the hour
    "cluster": "object",  # str
    "consumer_namespace": "object",  # str; UNKNOWN_CALLER when the caller names no namespace
    "provider_namespace": "object",  # str
    "capability": "object",  # str
    "class_value": "object",  # str: the value of call_counting.class_label ("" without one)
    "billable": "bool",  # False: answered with a not-billable code (default 5xx)
    "calls": "int64",  # whole calls in the hour, > 0
}
"""Column → dtype of the calls frame: one row per (hour, cluster, consumer, provider, class value, billable)."""

CALLS_KEY = ("hour", "cluster", "consumer_namespace", "provider_namespace", "capability", "class_value", "billable")


def empty_calls_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in CALLS_SCHEMA.items()})


def check_calls_frame(frame: pd.DataFrame, stage: str) -> pd.DataFrame:
    """Return `frame` if it obeys CALLS_SCHEMA (columns, dtypes, calls > 0, names set); else UsageDataError."""
    problems = []
    if list(frame.columns) != list(CALLS_SCHEMA):
        raise UsageDataError(f"{stage}: calls frame columns are {list(frame.columns)}; expected {list(CALLS_SCHEMA)}")
    for name, dtype in CALLS_SCHEMA.items():
        if str(frame[name].dtype) != dtype:
            problems.append(f"column {name!r} has dtype {frame[name].dtype}, expected {dtype}")
    if not problems and len(frame):
        for name in ("cluster", "consumer_namespace", "provider_namespace", "capability"):
            if not frame[name].map(lambda v: isinstance(v, str) and v != "").all():
                problems.append(f"column {name!r} holds empty or non-text values")
        if not frame["class_value"].map(lambda v: isinstance(v, str)).all():
            problems.append("column 'class_value' holds non-text values")
        if (frame["calls"] <= 0).any():
            problems.append("column 'calls' holds counts that are not positive")
        if (frame["hour"] != frame["hour"].dt.floor("h")).any():
            problems.append("column 'hour' holds times that are not the start of an hour")
        if frame.duplicated(list(CALLS_KEY)).any():
            problems.append(f"the key {', '.join(CALLS_KEY)} repeats")
    if problems:
        raise UsageDataError(f"{stage}: the calls frame breaks its schema: " + "; ".join(problems))
    return frame


def capability_providers(catalog: Catalog, cluster: str) -> dict[str, str]:
    """Provider namespace → the capability it exposes, for one cluster (checks allow one billed per namespace)."""
    providers: dict[str, str] = {}
    for _unit, ns in catalog.namespaces(cluster):
        for capability in ns.exposes:
            providers.setdefault(ns.name, capability.name)
    return providers


def calls_query(
    counting: CallCounting,
    providers: Sequence[str],
    window: str,
    billable: bool,
    matchers: Sequence[LabelMatcher] = (),
) -> str:
    """The hourly call count of the providers' namespaces per (consumer, provider, class value)."""
    selectors = [LabelMatcher(name, value) for name, value in sorted(counting.matchers.items())]
    names = "|".join(sorted(providers))
    selectors.append(LabelMatcher(counting.provider_label, names, "=~"))
    if counting.code_label is not None:
        selectors.append(LabelMatcher(counting.code_label, counting.not_billable_codes, "!~" if billable else "=~"))
    elif not billable:
        return ""
    selectors += list(matchers)
    by = [counting.consumer_label, counting.provider_label]
    if counting.class_label is not None:
        by.append(counting.class_label)
    inner = ",".join(m.render() for m in selectors)
    return f"sum by ({', '.join(by)}) (increase({counting.metric}{{{inner}}}[{window}]))"


def collect_calls(
    client: PrometheusClient,
    catalog: Catalog,
    period: Period,
    cluster: str,
    matchers: Sequence[LabelMatcher] = (),
    hours: int | None = None,
) -> pd.DataFrame:
    """The calls frame of one cluster for `period` (or its first `hours`); empty when nothing is exposed."""
    providers = capability_providers(catalog, cluster)
    hours = period.hours if hours is None else hours
    if not providers or hours <= 0:
        return empty_calls_frame()
    counting = catalog.rates.call_counting
    window = promql.hour_window(client.build_version())
    first_end = period.start + dt.timedelta(hours=1) - dt.timedelta(milliseconds=1)
    last_end = first_end + (hours - 1) * dt.timedelta(hours=1)
    kinds = [True, False] if counting.code_label is not None else [True]
    queries = [
        RangeQuery(calls_query(counting, list(providers), window, billable, matchers), first_end, last_end,
                   dt.timedelta(hours=1))
        for billable in kinds
    ]  # fmt: skip
    answers = client.query_ranges(queries)
    rows: list[dict] = []
    for billable, answer in zip(kinds, answers, strict=True):
        rows += calls_rows(answer.series, counting, providers, cluster, period, billable)
    return calls_frame(rows)


def calls_rows(
    series: Sequence[Series],
    counting: CallCounting,
    providers: dict[str, str],
    cluster: str,
    period: Period,
    billable: bool,
) -> list[dict]:
    """Rows of the calls frame from one answer (hourly increases, rounded half-even to whole calls)."""
    hour0 = period.start.timestamp()
    rows = []
    for item in series:
        provider = item.labels.get(counting.provider_label, "")
        capability = providers.get(provider)
        if capability is None:
            raise UsageDataError(
                f"{counting.metric}: a series of provider namespace {provider!r} ({counting.provider_label}) "
                f"answered a query for {', '.join(sorted(providers))}; check call_counting.provider_label"
            )
        consumer = item.labels.get(counting.consumer_label, "")
        if consumer in counting.unknown_callers:
            consumer = UNKNOWN_CALLER
        class_value = item.labels.get(counting.class_label, "") if counting.class_label else ""
        times = np.asarray(item.timestamps, dtype=float)
        values = np.asarray(item.values, dtype=float)
        if np.isnan(values).any():
            raise UsageDataError(
                f"{counting.metric}: NaN call count for caller {consumer!r} of {capability} in {cluster}; "
                "a NaN sample in the counter — check the exporter"
            )
        counts = np.rint(values).astype(np.int64)  # rint rounds half to even
        hours = np.floor((times - hour0) / 3600).astype(np.int64)  # evaluated at H+1h-1ms: hour H
        for hour, count in zip(hours, counts, strict=True):
            if count > 0:
                rows.append(
                    {
                        "hour": period.start + dt.timedelta(hours=int(hour)),
                        "cluster": cluster,
                        "consumer_namespace": consumer,
                        "provider_namespace": provider,
                        "capability": capability,
                        "class_value": class_value,
                        "billable": billable,
                        "calls": int(count),
                    }
                )
    return rows


def calls_frame(rows: list[dict]) -> pd.DataFrame:
    """The checked calls frame of `rows`, summed per key (two unknown-caller values become one), sorted."""
    if not rows:
        return empty_calls_frame()
    frame = pd.DataFrame(rows, columns=list(CALLS_SCHEMA))
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True).astype("datetime64[ns, UTC]")
    frame = frame.groupby(list(CALLS_KEY), sort=True, as_index=False)["calls"].sum()
    frame = frame[list(CALLS_SCHEMA)].astype(CALLS_SCHEMA)
    return check_calls_frame(frame.reset_index(drop=True), "collection (calls)")
