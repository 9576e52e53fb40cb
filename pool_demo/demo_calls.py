"""Capability traffic of the demo group: who calls the Platform's shared APIs, when and how often.

Each `CallStream` is one caller workload calling one capability endpoint: the mini-program backend
signs every user in at identity (the consumer day, busiest in the evening), Data Insight's nightly
ETL encrypts at the key service from 01:00 to 03:00 local and re-scores customers on the bulk
credit-scoring endpoint, both units score interactively, and Edge Security's weekly bench run calls
credit scoring without declaring it (the doctor's undeclared caller). A few 5xx bursts come from the
provider (not billed) and one identity proxy restarts once a month (a counter reset).

Series: Istio's `istio_requests_total` with the label set of istio/proxy
testdata/metric/server_request_total.yaml.tmpl (reporter="destination", the server's proxy) and
client_request_total.yaml.tmpl (reporter="source", the caller's proxy: it reports every call again).
Chargeback counts one reporter (rates.yaml call_counting); writing both checks that it does.

Closed form (`expected_calls`), following what two scrapes an hour let Prometheus observe: calls
arrive at a constant rate within each hour (counted from the hour's first scrape), so `increase`
extrapolated over the hour gives the hour's calls exactly; every hourly count is even (half in each
half-hour); a proxy restarts right after a scrape, so no call falls between the last sample and the
reset; counters start each month from the calls they carried from before (never 0, which would cut
the extrapolation short). The oracle sums the hourly counts of the traffic model; it never reads the
series written, nor chargeback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pool_catalog.models import CallMethod, Catalog

from .demo_business import MONTH_SECONDS
from .demo_usage import SCRAPE_INTERVAL, daily_curve, generator, local_hours, local_weekday, revision_hash

CALL_METRIC = "istio_requests_total"
CALL_HELP = "Total number of requests handled by the proxy."
CALL_SCRAPE_PHASE = 11.0
"""Seconds after each half hour at which the sidecars are scraped (not on an hour's edge)."""
DEFAULT_CLASS = "default"
"""Call class of a per_call endpoint that rates.yaml does not price apart."""


@dataclass(frozen=True)
class CallStream:
    """One caller workload calling one capability endpoint, on a rhythm or in a nightly window."""

    consumer: str  # the caller's namespace (source_workload_namespace)
    workload: str  # the caller's Deployment or Job (source_workload)
    provider: str  # the serving namespace (destination_workload_namespace)
    service: str  # destination_service_name: rates.yaml classes map it to a call class
    per_day: float  # billable calls a day on average in the demo's first month
    rhythm: str | None = None  # a demo_usage rhythm (business, consumer, flat); None: `window`
    window: tuple[int, int] = (0, 24)  # local hours [from, to) of calls when there is no rhythm
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # local weekdays with calls (Monday = 0), window only
    growth_per_month: float = 0.03
    failures: tuple[int, int] = (0, 0)  # 5xx: (bursts a month, calls in a burst hour) — never billed
    restarts: int = 0  # restarts a month of the serving proxy (destination counter resets)


DEMO_CALLS: tuple[CallStream, ...] = (
    # Community Services: every sign-in of the mini-program is an identity call.
    CallStream("cs-miniapp", "miniapp", "pf-identity", "identity", 30_000, "consumer", restarts=1),
    CallStream("cs-miniapp", "miniapp", "pf-crypto", "kms", 24_000, "consumer"),
    CallStream("cs-miniapp", "miniapp", "pf-credit", "credit-scoring", 4_000, "consumer", failures=(2, 600)),
    CallStream("cs-miniapp-staging", "miniapp-staging", "pf-identity", "identity", 1_200, "business"),
    # Data Insight: the APIs in office hours, the nightly ETL in bulk.
    CallStream("di-api", "api", "pf-identity", "identity", 20_000, "business", failures=(1, 300)),
    CallStream("di-api", "api", "pf-credit", "credit-scoring", 14_000, "business"),
    CallStream("di-batch", "etl", "pf-crypto", "kms", 1_400_000, window=(1, 3), failures=(1, 12_000)),
    CallStream("di-batch", "etl", "pf-credit", "credit-scoring-bulk", 60_000, window=(2, 4)),
    # Edge Security's weekly bench run (Thursday 10:00–12:00 local) scores test customers without
    # declaring `consumes: [credit-scoring]`: the undeclared caller of `chargeback doctor`.
    CallStream("es-testbed", "hil-run", "pf-credit", "credit-scoring", 200, window=(10, 12), weekdays=(3,)),
)
"""The demo's traffic; streams whose namespaces the catalog lacks are left out."""


@dataclass(frozen=True)
class StreamMonth:
    """One stream's traffic over one month: whole calls per hour from the month start."""

    stream: CallStream
    cluster: str
    capability: str
    billable: np.ndarray  # int64, even, per hour
    failed: np.ndarray  # int64, even, per hour: calls answered 503
    restarts: tuple[int, ...]  # sample indexes at which the serving proxy's counter restarts


def _hour_starts(start: dt.datetime, end: dt.datetime) -> np.ndarray:
    return np.arange(start.timestamp(), end.timestamp(), 3600.0)


def _weights(stream: CallStream, hours: np.ndarray) -> np.ndarray:
    """Relative load of each hour (by the middle of its counted interval)."""
    middle = hours + CALL_SCRAPE_PHASE + 1800.0
    if stream.rhythm is not None:
        return daily_curve(stream.rhythm, middle)
    local = local_hours(middle)
    inside = (local >= stream.window[0]) & (local < stream.window[1])
    return (inside & np.isin(local_weekday(middle), stream.weekdays)).astype(np.float64)


def stream_month(
    stream: CallStream,
    cluster: str,
    capability: str,
    first: dt.datetime,
    start: dt.datetime,
    end: dt.datetime,
    seed: int,
) -> StreamMonth:
    """The stream's hourly calls over [start, end); `first` is the start of the demo's first month."""
    hours = _hour_starts(start, end)
    rng = generator(seed, "calls", stream.consumer, stream.service, start.isoformat())
    weights = _weights(stream, hours)
    days = len(hours) / 24
    growth = (1 + stream.growth_per_month) ** ((hours - first.timestamp()) / MONTH_SECONDS)
    noise = np.clip(1 + 0.06 * rng.standard_normal(len(hours)), 0.8, 1.2)
    scale = stream.per_day * days / weights.sum() if weights.sum() else 0.0
    half = np.floor(scale * weights * growth * noise / 2).astype(np.int64)
    billable = 2 * half
    failed = np.zeros(len(hours), dtype=np.int64)
    bursts, size = stream.failures
    busy = np.flatnonzero(billable > 0)
    if bursts and len(busy):
        for hour in rng.choice(busy, size=min(bursts, len(busy)), replace=False):
            failed[hour] = 2 * (size // 2)
    restarts: tuple[int, ...] = ()
    if stream.restarts:
        # Right after a scrape at least a day into the month, on an hour with calls before and after.
        candidates = [h for h in busy if h >= 24 and billable[h - 1] > 0]
        picked = sorted(rng.choice(candidates, size=stream.restarts, replace=False).tolist())
        restarts = tuple(2 * h + int(rng.integers(0, 2)) for h in picked)
    return StreamMonth(stream, cluster, capability, billable, failed, restarts)


def counter_samples(per_hour: np.ndarray, start: dt.datetime, restarts: tuple[int, ...] = ()) -> tuple[np.ndarray, ...]:
    """Times (two scrapes an hour, at the phase) and counter values of a proxy counting `per_hour` calls.

    Half of an hour's calls fall between its two scrapes, half before the next hour's first. The counter
    starts from the calls it carried from before the month (the month's busiest hour, so that
    `increase` extrapolates every hour fully: see the module docstring) and restarts from zero right
    after the scrape before each index in `restarts`."""
    samples = 2 * len(per_hour)
    times = start.timestamp() + CALL_SCRAPE_PHASE + SCRAPE_INTERVAL * np.arange(samples)
    step = np.repeat(per_hour // 2, 2)  # calls between sample k and k + 1
    values = np.empty(samples, dtype=np.float64)
    value = float(max(int(per_hour.max()), 2))
    for index in range(samples):
        if index:
            value = float(step[index - 1]) if index in restarts else value + float(step[index - 1])
        values[index] = value
    # `increase` extrapolates an hour's first sample back to the hour's start unless the counter would reach
    # zero first; keep every hour clear of that cut, or the closed form no longer holds.
    first, second = values[0::2], values[1::2]
    growth = np.where(second >= first, second - first, second)
    if (first * SCRAPE_INTERVAL < growth * (CALL_SCRAPE_PHASE + 1)).any():
        raise ValueError("a call counter starts an hour too close to zero for `increase` to extrapolate it fully")
    return times, values


# ---------------------------------------------------------------- Istio's labels


def _pod(namespace: str, workload: str) -> str:
    return f"{workload}-{revision_hash(namespace, workload, 0)}-x7k2p"


def istio_labels(stream: CallStream, cluster: str, reporter: str, code: str) -> dict[str, str]:
    """The labels of one istio_requests_total series (istio/proxy testdata/metric/*_request_total.yaml.tmpl),
    with the `cluster` external label and the `namespace`/`pod` of the scraped proxy."""
    source, destination = stream.consumer, stream.provider
    server = stream.service.split("-bulk")[0]  # the Deployment behind both credit-scoring Services
    scraped = (destination, _pod(destination, server)) if reporter == "destination" else (
        source, _pod(source, stream.workload))  # fmt: skip
    return {
        "cluster": cluster,
        "namespace": scraped[0],
        "pod": scraped[1],
        "reporter": reporter,
        "source_workload": stream.workload,
        "source_canonical_service": stream.workload,
        "source_canonical_revision": "latest",
        "source_workload_namespace": source,
        "source_principal": f"spiffe://cluster.local/ns/{source}/sa/{stream.workload}",
        "source_app": stream.workload,
        "source_version": "unknown",
        "source_cluster": cluster,
        "destination_workload": server,
        "destination_workload_namespace": destination,
        "destination_principal": f"spiffe://cluster.local/ns/{destination}/sa/{server}",
        "destination_app": server,
        "destination_version": "v1",
        "destination_service": f"{stream.service}.{destination}.svc.cluster.local",
        "destination_canonical_service": server,
        "destination_canonical_revision": "v1",
        "destination_service_name": stream.service,
        "destination_service_namespace": destination,
        "destination_cluster": cluster,
        "request_protocol": "http",
        "response_code": code,
        "response_flags": "-",
        # The server's proxy sees the mTLS handshake; the client's cannot tell (client template: unknown).
        "connection_security_policy": "mutual_tls" if reporter == "destination" else "unknown",
    }


# ---------------------------------------------------------------- the month's traffic


def _capabilities(catalog: Catalog) -> dict[tuple[str, str], str]:
    """(cluster, provider namespace) → the capability it exposes."""
    return {
        (cluster.name, ns.name): ns.exposes[0].name
        for cluster in catalog.pool.clusters
        for _unit, ns in catalog.namespaces(cluster.name)
        if ns.exposes
    }


def month_traffic(
    catalog: Catalog, first: dt.datetime, start: dt.datetime, end: dt.datetime, seed: int
) -> list[StreamMonth]:
    """Every demo stream the catalog has both namespaces of, over [start, end)."""
    providers = _capabilities(catalog)
    traffic = []
    for cluster in catalog.pool.clusters:
        names = {ns.name for _unit, ns in catalog.namespaces(cluster.name)}
        for stream in DEMO_CALLS:
            capability = providers.get((cluster.name, stream.provider))
            if capability is not None and stream.consumer in names:
                traffic.append(stream_month(stream, cluster.name, capability, first, start, end, seed))
    return traffic


def call_families(
    catalog: Catalog, first: dt.datetime, start: dt.datetime, end: dt.datetime, seed: int
) -> Iterator[tuple[str, str, str, dict[str, str], tuple[np.ndarray, np.ndarray]]]:
    """(name, type, help, labels, samples) of every istio_requests_total series of the month, both reporters."""
    for month in month_traffic(catalog, first, start, end, seed):
        for code, per_hour in (("200", month.billable), ("503", month.failed)):
            if not per_hour.any():
                continue
            for reporter in ("destination", "source"):
                # Only the serving proxy restarts; the caller's keeps counting.
                restarts = month.restarts if reporter == "destination" else ()
                labels = istio_labels(month.stream, month.cluster, reporter, code)
                yield CALL_METRIC, "counter", CALL_HELP, labels, counter_samples(per_hour, start, restarts)


# ---------------------------------------------------------------- the oracle

CallKey = tuple[str, str, str, str]
"""(month label YYYY-MM, consumer namespace, capability, call class)."""


def call_class(catalog: Catalog, capability: str, service: str, when: dt.datetime) -> str:
    """The rates.yaml class of an endpoint (its destination_service_name) at `when`, as invoice lines name it:
    per_call: the matching class or DEFAULT_CLASS; other methods price no classes: ""."""
    rate = next((r for r in catalog.rates.capabilities if r.capability == capability), None)
    version = rate.version_at(when) if rate is not None else None
    if version is None or version.method is not CallMethod.PER_CALL:
        return ""
    found = version.class_of(service)
    return found.name if found is not None else DEFAULT_CLASS


def expected_calls(
    catalog: Catalog, first: dt.datetime, months: list[tuple[str, dt.datetime, dt.datetime]], seed: int
) -> dict[CallKey, tuple[int, int]]:
    """(month, consumer, capability, call class) → (billable calls, calls answered 5xx) of the generated
    traffic; `months` are (label, start, end)."""
    expected: dict[CallKey, tuple[int, int]] = {}
    for label, start, end in months:
        for month in month_traffic(catalog, first, start, end, seed):
            key = (
                label,
                month.stream.consumer,
                month.capability,
                call_class(catalog, month.capability, month.stream.service, start),
            )
            billable, failed = expected.get(key, (0, 0))
            expected[key] = (billable + int(month.billable.sum()), failed + int(month.failed.sum()))
    return expected


def collected_totals(
    calls: pd.DataFrame, catalog: Catalog, label: str, start: dt.datetime
) -> dict[CallKey, tuple[int, int]]:
    """The same keys from a calls frame as chargeback collected it (chargeback.collect.calls.CALLS_SCHEMA)."""
    totals: dict[CallKey, tuple[int, int]] = {}
    grouped = calls.groupby(["consumer_namespace", "capability", "class_value", "billable"], sort=True)["calls"].sum()
    for (consumer, capability, value, billable), count in grouped.items():
        key = (label, consumer, capability, call_class(catalog, capability, value, start))
        paid, failed = totals.get(key, (0, 0))
        totals[key] = (paid + int(count), failed) if billable else (paid, failed + int(count))
    return totals


def differences(expected: dict[CallKey, tuple[int, int]], collected: dict[CallKey, tuple[int, int]]) -> list[str]:
    """One line per key whose collected (billable, 5xx) calls differ from the generated traffic; empty when equal."""
    lines = []
    for key in sorted(expected.keys() | collected.keys()):
        want, got = expected.get(key, (0, 0)), collected.get(key, (0, 0))
        if want != got:
            month, consumer, capability, kind = key
            lines.append(
                f"{month} {consumer} → {capability} ({kind}): generated {want[0]:,} billable + {want[1]:,} 5xx, "
                f"collected {got[0]:,} + {got[1]:,}"
            )
    return lines
