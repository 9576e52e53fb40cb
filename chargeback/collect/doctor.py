"""The metric-contract doctor: before anyone bills a period, check the series it is billed from.

`diagnose` runs a handful of aggregated queries per cluster (everything is counted on the server,
so a big cluster answers in seconds), then pure checks turn the answers into `Finding`s:

1. per hour window (`[1h]`, the same window the usage queries use): NaN samples, and samples per
   hour of each job, which give the scrape interval;
2. a census at the middle of every hour (`count by (job) (metric)`: with scrapes up to 2 minutes
   apart the plain selector reads one sample per series and hour, cheap over a month; sparser
   scrapes use `last_over_time` over twice the interval) — which contract series exist, from which
   jobs, from which hour on, root-cgroup and sandbox network series, hostNetwork pods, runtimes;
3. per hour (same grid): nodes running pods that their kubelet's cAdvisor does not report (silent
   targets), claims with requests but no volume statistics (unmounted); every 6 hours: series of
   one source scraped by two targets at once (duplicates).

Real shapes the checks rely on (each cited where it is used):
* kube-state-metrics `internal/store/pod.go`: kube_pod_info{namespace, pod, uid, host_ip, pod_ip,
  node, created_by_kind, created_by_name, priority_class, host_network};
  `internal/store/node.go`: kube_node_info{node, container_runtime_version="containerd://…" |
  "cri-o://…" | "docker://…", kernel_version, os_image, kubelet_version, …}.
* kubelet `pkg/kubelet/server/server.go` `containerPrometheusLabelsFunc`: cAdvisor series carry id,
  name, image, container, pod, namespace — empty for the root cgroup (id="/") and system slices.
* cAdvisor `container/crio/handler.go`, `container/docker/handler.go` (cri-dockerd): the pod sandbox
  (infra/pause container) is labelled io.kubernetes.container.name="POD" and holds the pod's network.
* kube-prometheus `manifests/kubernetesControlPlane-serviceMonitorKubelet.yaml` with
  prometheus-operator's relabelling: kubelet series get job="kubelet", instance="<node ip>:10250",
  node=<node name> (from the endpoint's target), metrics_path, endpoint="https-metrics",
  service="kubelet"; /metrics/cadvisor and /metrics (volume statistics) are one job, 30 s apart.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pool_catalog.models import Catalog
from pool_catalog.time_zones import UTC_NAME

from ..errors import ChargebackError
from ..period import Period, iso_utc
from . import promql
from .calls import UNKNOWN_CALLER, collect_calls
from .findings import ERROR, INFO, WARNING, Finding, sort_findings
from .prometheus import PrometheusClient, RangeQuery, Series
from .promql import LabelMatcher

CADVISOR = "kubelet /metrics/cadvisor"
KUBE_STATE = "kube-state-metrics"
KUBELET = "kubelet /metrics (volume statistics)"

PROBE = "doctor_probe"
"""Label naming which part of a combined query a series answers."""


@dataclass(frozen=True)
class Requirement:
    """One series of the metric contract (DESIGN.md), what billing loses without it and how to get it."""

    metric: str
    source: str
    severity: str
    loses: str
    fix: str
    needed_with: str = ""
    """Only required when this other metric has series (e.g. volume statistics when PVCs exist)."""


_KSM_FIX = "add {metric} to kube-state-metrics --metric-allowlist (or take it off --metric-denylist){extra}"

CONTRACT: tuple[Requirement, ...] = (
    Requirement(
        "container_cpu_usage_seconds_total",
        CADVISOR,
        ERROR,
        "CPU use cannot be measured",
        "scrape every kubelet's /metrics/cadvisor endpoint (kube-prometheus: the kubelet ServiceMonitor) and do not "
        "drop container_cpu_usage_seconds_total in its metricRelabelings",
    ),
    Requirement(
        "container_memory_working_set_bytes",
        CADVISOR,
        ERROR,
        "memory use cannot be measured",
        "scrape every kubelet's /metrics/cadvisor endpoint and do not drop container_memory_working_set_bytes",
    ),
    Requirement(
        "container_network_transmit_bytes_total",
        CADVISOR,
        WARNING,
        "egress cannot be measured and is billed as 0",
        "do not drop container_network_transmit_bytes_total in the /metrics/cadvisor metricRelabelings",
    ),
    Requirement(
        "kube_pod_container_resource_requests",
        KUBE_STATE,
        ERROR,
        "requests cannot be measured (request and max billing, GPU use, idle requests)",
        _KSM_FIX.format(metric="kube_pod_container_resource_requests", extra=" and keep pods in --resources"),
    ),
    Requirement(
        "kube_pod_status_phase",
        KUBE_STATE,
        ERROR,
        "which pods run is unknown: requests would count 0 and kube-state-metrics gauges would be divided by a "
        "missing scrape count",
        _KSM_FIX.format(metric="kube_pod_status_phase", extra=""),
    ),
    Requirement(
        "kube_resourcequota",
        KUBE_STATE,
        ERROR,
        "allocations (ResourceQuota hard limits) cannot be measured: idle analysis and quota figures would be wrong",
        _KSM_FIX.format(metric="kube_resourcequota", extra=" and keep resourcequotas in --resources"),
    ),
    Requirement(
        "kube_persistentvolumeclaim_resource_requests_storage_bytes",
        KUBE_STATE,
        WARNING,
        "the sizes claims request are unknown although volumes report use",
        _KSM_FIX.format(
            metric="kube_persistentvolumeclaim_resource_requests_storage_bytes",
            extra=" and keep persistentvolumeclaims in --resources",
        ),
        needed_with="kubelet_volume_stats_used_bytes",
    ),
    Requirement(
        "kube_persistentvolumeclaim_info",
        KUBE_STATE,
        WARNING,
        "the StorageClass (storage tier) of every claim is unknown",
        _KSM_FIX.format(metric="kube_persistentvolumeclaim_info", extra=""),
        needed_with="kube_persistentvolumeclaim_resource_requests_storage_bytes",
    ),
    Requirement(
        "kubelet_volume_stats_used_bytes",
        KUBELET,
        WARNING,
        "PVCs exist but their use cannot be measured",
        "scrape the kubelets' /metrics endpoint as well (volume statistics are not part of /metrics/cadvisor)",
        needed_with="kube_persistentvolumeclaim_resource_requests_storage_bytes",
    ),
    Requirement(
        "kube_service_spec_type",
        KUBE_STATE,
        WARNING,
        "load balancers cannot be measured and are billed as 0",
        _KSM_FIX.format(metric="kube_service_spec_type", extra=" and keep services in --resources"),
    ),
    Requirement(
        "kube_pod_info",
        KUBE_STATE,
        WARNING,
        "hostNetwork pods cannot be told apart (their host traffic would count as egress) and silent nodes "
        "cannot be found",
        _KSM_FIX.format(metric="kube_pod_info", extra=""),
    ),
    Requirement(
        "kube_node_info",
        KUBE_STATE,
        INFO,
        "the container runtime of the nodes is unknown",
        _KSM_FIX.format(metric="kube_node_info", extra=" and keep nodes in --resources"),
    ),
)
"""Every series billing reads; `severity` is what its absence does to the bill."""

CONTRACT_METRICS: tuple[str, ...] = tuple(r.metric for r in CONTRACT)


@dataclass(frozen=True)
class _Duplicate:
    """A source's representative series and the labels that identify one object regardless of who scraped it."""

    source: str
    metric: str
    filters: tuple[str, ...]
    identity: tuple[str, ...]
    by_target: tuple[str, ...]
    what: str


DUPLICATES: tuple[_Duplicate, ...] = (
    _Duplicate(
        CADVISOR,
        "container_cpu_usage_seconds_total",
        ('container!=""', 'container!="POD"'),
        ("namespace", "pod", "container"),
        ("job", "instance"),
        "containers",
    ),
    _Duplicate(
        KUBE_STATE, "kube_pod_status_phase", (), ("namespace", "pod", "uid", "phase"), ("job", "instance"), "pod phases"
    ),
    # A ReadWriteMany claim is reported by every node mounting it (one instance each): only the same
    # claim from the same instance under two jobs is a duplicate.
    _Duplicate(
        KUBELET,
        "kubelet_volume_stats_used_bytes",
        (),
        ("namespace", "persistentvolumeclaim", "instance"),
        ("job",),
        "claims",
    ),
)

INTERVAL_METRICS: dict[str, tuple[str, tuple[str, ...]]] = {
    CADVISOR: ("container_memory_working_set_bytes", ('container!=""',)),
    KUBE_STATE: ("kube_pod_status_phase", ()),
    KUBELET: ("kubelet_volume_stats_used_bytes", ()),
}
"""Per source, the series whose samples per hour give the scrape interval of each job."""

NAN_METRICS: tuple[str, ...] = (
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_network_transmit_bytes_total",
    "kubelet_volume_stats_used_bytes",
    "kube_pod_container_resource_requests",
    "kube_persistentvolumeclaim_resource_requests_storage_bytes",
    "kube_resourcequota",
)
"""Series whose samples are summed into figures: a NaN there is a silent hole."""

RETENTION_LOOKBACK = dt.timedelta(days=31)
"""How far before the period the doctor looks for older samples when the period's first hours are empty."""


# ---------------------------------------------------------------- queries


def selector(metric: str, matchers: Sequence[LabelMatcher], *filters: str) -> str:
    """`metric{filters…, extra matchers…}` with label values escaped."""
    parts = [*filters, *(m.render() for m in matchers)]
    return f"{metric}{{{','.join(parts)}}}" if parts else metric


def _is(label: str, value: str) -> str:
    return f'{label}="{promql.escape_label_value(value)}"'


def _empty(label: str) -> str:
    return f'{label}=""'


def _not_empty(label: str) -> str:
    return f'{label}!=""'


def _latest(series: str, lookback: str | None) -> str:
    """The latest sample of each series at the evaluation time: the plain selector (Prometheus' 5-minute
    staleness lookback, one sample read per series) when scrapes are at most 2 minutes apart, else
    `last_over_time` over a window holding at least two scrapes."""
    return series if lookback is None else f"last_over_time({series}[{lookback}])"


def lookback_for(intervals: Mapping[str, Mapping[str, float]]) -> str | None:
    """The census window for these detected scrape intervals (source → job → seconds): None (the plain
    selector) up to 120 s, else twice the longest interval, at most an hour."""
    longest = max((s for jobs in intervals.values() for s in jobs.values()), default=0.0)
    if longest <= 120:
        return None
    return f"{min(3600, math.ceil(2 * longest))}s"


def _probe(name: str, expression: str) -> str:
    return f'label_replace({expression}, "{PROBE}", "{promql.escape_label_value(name)}", "", "")'


def _union(probes: Mapping[str, str]) -> str:
    """One query answering several expressions, each series labelled with its probe's name."""
    return " or ".join(_probe(name, expression) for name, expression in probes.items())


def census_query(matchers: Sequence[LabelMatcher], lookback: str | None = None) -> str:
    """Hourly census: series per job of every contract metric, and the shapes the checks look for.

    `lookback`: see `lookback_for`."""

    def sel(metric: str, *filters: str) -> str:
        return _latest(selector(metric, matchers, *filters), lookback)

    probes = {f"series:{m}": f"count by (job) ({sel(m)})" for m in CONTRACT_METRICS if m not in _SPLIT}
    # One pass each over the two largest families, split client-side (`split_census`): network series by
    # container and a flag for "no namespace", CPU series by a flag for "no node" — the node label is a
    # target label (prometheus-operator sets it from the endpoint's Node target).
    network = sel("container_network_transmit_bytes_total")
    flagged = f'label_replace({network}, "{_NO_NAMESPACE}", "true", "namespace", "")'
    probes["network"] = f"count by (job, container, {_NO_NAMESPACE}) ({flagged})"
    cpu = sel("container_cpu_usage_seconds_total")
    no_node = f'label_replace({cpu}, "{_NO_NODE}", "true", "node", "")'
    probes["cpu"] = f'count by (job, {_NO_NODE}, {_ROOT}) (label_replace({no_node}, "{_ROOT}", "true", "id", "/"))'
    host_network = sel("kube_pod_info", _is("host_network", "true"))
    probes["host-network"] = f"count by (namespace) (max by (namespace, pod, uid) ({host_network}))"
    probes["runtime"] = (
        f"count by (container_runtime_version) (max by (node, container_runtime_version) ({sel('kube_node_info')}))"
    )
    return _union(probes)


_NO_NAMESPACE = "doctor_no_namespace"
_NO_NODE = "doctor_no_node"
_ROOT = "doctor_root_cgroup"
_SPLIT = ("container_network_transmit_bytes_total", "container_cpu_usage_seconds_total")


def split_census(table: Table) -> Table:
    """The census probes of the split passes: series:<metric> per job, and the network rows without a
    namespace (no-namespace), on the POD sandbox (sandbox-network) or pod level (pod-network), the CPU
    rows without a node (no-node) and those of a node's root cgroup (root-cgroup)."""
    derived: dict[str, dict[tuple[tuple[str, str], ...], np.ndarray]] = {}

    def add(probe: str, labels: Mapping[str, str], hourly: np.ndarray) -> None:
        key = tuple(sorted(labels.items()))
        rows = derived.setdefault(probe, {})
        rows[key] = rows[key] + hourly if key in rows else hourly.copy()

    for row in table.get("network", []):
        job = {"job": row.labels.get("job", "")}
        add("series:container_network_transmit_bytes_total", job, row.hourly)
        if row.labels.get(_NO_NAMESPACE):
            add("no-namespace", job, row.hourly)
        elif row.labels.get("container", "") == "POD":
            add("sandbox-network", job, row.hourly)
        elif not row.labels.get("container"):
            add("pod-network", job, row.hourly)
    for row in table.get("cpu", []):
        job = {"job": row.labels.get("job", "")}
        add("series:container_cpu_usage_seconds_total", job, row.hourly)
        if row.labels.get(_NO_NODE):
            add("no-node", job, row.hourly)
        if row.labels.get(_ROOT):
            add("root-cgroup", job, row.hourly)
    result = {k: v for k, v in table.items() if k not in ("network", "cpu")}
    for probe, rows in derived.items():
        result[probe] = [Row(dict(key), hourly) for key, hourly in rows.items()]
    return result


DUPLICATE_STEP_HOURS = 6
"""Duplicates are looked for every 6 hours: a second scrape job or replica stays for days, and the join
over every object is the doctor's heaviest query (6× less work than hourly)."""


def duplicates_query(matchers: Sequence[LabelMatcher], lookback: str | None = None) -> str:
    """Objects that more than one target reports at the same time, counted per reporting target."""

    def sel(metric: str, *filters: str) -> str:
        return _latest(selector(metric, matchers, *filters), lookback)

    probes = {}
    for item in DUPLICATES:
        identity = ", ".join(item.identity)
        per_target = f"count by ({identity}, {', '.join(item.by_target)}) ({sel(item.metric, *item.filters)})"
        # Objects that more than one target reports at the same time …
        twice = f"count by ({identity}) ({per_target}) > 1"
        # … counted per target that reports them.
        probes[f"duplicate:{item.source}"] = f"count by (job, instance) ({per_target} and on ({identity}) ({twice}))"
    return _union(probes)


def targets_query(
    matchers: Sequence[LabelMatcher],
    silent: bool,
    unmounted: bool,
    lookback: str | None = None,
    containers: bool = False,
) -> str | None:
    """Hourly: silent nodes with the namespaces they hide, unmounted claims, namespaces whose running pods have
    no container series (`containers`) (None: none can be checked)."""

    def sel(metric: str, *filters: str) -> str:
        return _latest(selector(metric, matchers, *filters), lookback)

    probes = {}
    if silent:
        placed = sel("kube_pod_info", _not_empty("node"))
        phase = sel("kube_pod_status_phase", _is("phase", "Running"))
        # max by: a second kube-state-metrics replica must not break the one-to-one join.
        running = (
            f"max by (node, namespace, pod, uid) ({placed}) * on (namespace, pod, uid) group_left () "
            f"max by (namespace, pod, uid) ({phase} == 1)"
        )
        scraped = f"count by (node) ({sel('container_cpu_usage_seconds_total')})"
        probes["silent"] = f"count by (node, namespace) ({running}) unless on (node) {scraped}"
    if containers:
        # Namespaces running pods of which cAdvisor reports no container (the same gap billing measures in
        # usage.py `_Reducer._unreported`): every running container has a cgroup cAdvisor reports.
        phase = sel("kube_pod_status_phase", _is("phase", "Running"))
        reported = f"count by (namespace) ({sel('container_cpu_usage_seconds_total', _not_empty('container'))})"
        probes["unreported"] = (
            f"count by (namespace) (max by (namespace, pod, uid) ({phase} == 1)) unless on (namespace) {reported}"
        )
    if unmounted:
        probes["unmounted"] = (
            "count by (namespace, persistentvolumeclaim) (max by (namespace, persistentvolumeclaim) "
            f"({sel('kube_persistentvolumeclaim_resource_requests_storage_bytes')})"
            " unless on (namespace, persistentvolumeclaim) "
            f"{sel('kubelet_volume_stats_used_bytes')})"
        )
    return _union(probes) if probes else None


def window_query(matchers: Sequence[LabelMatcher], window: str) -> str:
    """Per hour window: series with NaN samples per job and namespace, samples per hour per job."""
    probes = {}
    for metric in NAN_METRICS:
        # A NaN sample makes the hour's sum NaN, and NaN × 0 is the one product that is not 0: one pass over
        # the samples (`x != x` would read them twice).
        hour = f"sum_over_time({selector(metric, matchers)}[{window}])"
        probes[f"nan:{metric}"] = f"count by (job, namespace) ({hour} * 0 != 0)"
    for source, (metric, filters) in INTERVAL_METRICS.items():
        probes[f"interval:{source}"] = (
            f"max by (job) (count_over_time({selector(metric, matchers, *filters)}[{window}]))"
        )
    return _union(probes)


# ---------------------------------------------------------------- answers → tables


@dataclass(frozen=True)
class Row:
    """One series of a probe: its labels (without the probe label) and its value in each examined hour (0: none)."""

    labels: Mapping[str, str]
    hourly: np.ndarray


Table = dict[str, list[Row]]


def tabulate(series: Sequence[Series], hour0: float, hours: int) -> Table:
    """Probe name → rows, each value placed in the hour its evaluation time falls in."""
    table: Table = {}
    for item in series:
        labels = dict(item.labels)
        probe = labels.pop(PROBE, "")
        hourly = np.zeros(hours)
        index = np.floor((item.timestamps - hour0) / 3600.0).astype(np.int64)
        inside = (index >= 0) & (index < hours)
        hourly[index[inside]] = item.values[inside]
        table.setdefault(probe, []).append(Row(labels, hourly))
    return table


def _present(table: Table, probe: str, hours: int) -> np.ndarray:
    """Hour mask where the probe has any series with a positive value."""
    mask = np.zeros(hours, dtype=bool)
    for row in table.get(probe, ()):
        mask |= row.hourly > 0
    return mask


def _hours_text(hour0: float, hours: np.ndarray, limit: int = 4) -> str:
    """'3 hour(s): 2026-10-02 04:00, 05:00, …' for a mask or index array of hours."""
    index = np.flatnonzero(hours) if hours.dtype == bool else hours
    stamps = [dt.datetime.fromtimestamp(hour0 + 3600 * int(i), dt.UTC) for i in index[:limit]]
    shown = ", ".join(f"{s:%Y-%m-%d %H:00}" for s in stamps)
    more = f" and {len(index) - limit} more" if len(index) > limit else ""
    return f"{len(index)} hour(s) ({shown}{more})"


def _names(values: Sequence[str], limit: int = 8) -> str:
    values = sorted(values)
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def _step_text(checked: np.ndarray) -> str:
    index = np.flatnonzero(checked)
    step = int(index[1] - index[0]) if len(index) > 1 else DUPLICATE_STEP_HOURS
    return "hour" if step == 1 else f"{step} hours"


def _targets(rows: Sequence[Row]) -> str:
    parts = []
    for labels in sorted({(r.labels.get("job", ""), r.labels.get("instance", "")) for r in rows}):
        job, instance = labels
        parts.append(f"job {job or '(none)'}" + (f" instance {instance}" if instance else ""))
    return "; ".join(parts)


# ---------------------------------------------------------------- pure checks


def check_period(period: Period, now: dt.datetime, cluster: str) -> list[Finding]:
    """A month that has not begun, or not ended, has no complete data to bill."""
    last = Period.of(now, period.time_zone).previous.label
    if period.start >= now:
        return [
            Finding(
                ERROR,
                "period-in-future",
                cluster,
                f"{period.label} starts {iso_utc(period.start)}, after now ({iso_utc(now)}): there is nothing to bill",
                f"bill a month that has ended, e.g. --period {last}",
            )
        ]
    if period.end > now:
        return [
            Finding(
                ERROR,
                "period-not-over",
                cluster,
                f"{period.label} ends {iso_utc(period.end)} and it is {iso_utc(now)}: the rest of the month is "
                "not in Prometheus yet, so every figure would be too low",
                f"bill {period.label} after {iso_utc(period.end)} (last complete month: --period {last}); for the "
                "month so far run `chargeback serve`",
            )
        ]
    return []


def check_census(table: Table, cluster: str, hour0: float, hours: int, data_before: bool | None) -> list[Finding]:
    """Missing series and labels, retention, root-cgroup and sandbox network series, hostNetwork pods.

    `data_before`: whether Prometheus holds samples of the cluster before the period (None: not asked,
    because the first hour has data)."""
    findings: list[Finding] = []
    present = {m: _present(table, f"series:{m}", hours) for m in CONTRACT_METRICS}
    for requirement in CONTRACT:
        if present[requirement.metric].any():
            continue
        if requirement.needed_with and not present[requirement.needed_with].any():
            continue
        findings.append(
            Finding(
                requirement.severity,
                f"missing-series:{requirement.metric}",
                cluster,
                f"{requirement.metric} ({requirement.source}) has no series in the period: {requirement.loses}",
                f"{requirement.metric} is missing: {requirement.fix}",
            )
        )
    anything = np.zeros(hours, dtype=bool)
    for mask in present.values():
        anything |= mask
    first = int(np.argmax(anything)) if anything.any() else hours
    if 0 < first < hours and data_before is False:
        when = dt.datetime.fromtimestamp(hour0 + 3600 * first, dt.UTC)
        findings.append(
            Finding(
                ERROR,
                "retention-short",
                cluster,
                f"the oldest sample of the cluster is in the hour {when:%Y-%m-%d %H:00}, {first} hour(s) after the "
                "period start, and Prometheus holds nothing older: the start of the period is not retained (or the "
                "cluster was not monitored yet)",
                "raise --storage.tsdb.retention.time (or the Thanos/Mimir retention) above the age of the period, "
                "or bill from a store that still holds it",
            )
        )

    no_namespace = table.get("no-namespace", [])
    if no_namespace:
        count = int(max(row.hourly.max() for row in no_namespace))
        findings.append(
            Finding(
                INFO,
                "no-namespace-series",
                cluster,
                f"up to {count} container_network_transmit_bytes_total series at a time ({_targets(no_namespace)}) "
                'have no namespace: the root cgroup (id="/") and system slices; they are left out of every '
                "namespace's egress",
                "nothing to do; to drop them at the source, add a metricRelabelings rule dropping "
                'container_network_.* with namespace=""',
            )
        )

    sandbox = table.get("sandbox-network", [])
    if sandbox:
        runtimes = sorted({r.labels.get("container_runtime_version", "") for r in table.get("runtime", [])} - {""})
        pod_level = bool(table.get("pod-network"))
        runtime = f"runtime {', '.join(runtimes)}" if runtimes else "runtime unknown (no kube_node_info)"
        where = "beside pod-level series" if pod_level else "and no pod-level series exist, so egress is read from them"
        findings.append(
            Finding(
                INFO,
                "sandbox-container-pod",
                cluster,
                f'the container runtime labels the pod sandbox container="POD" ({runtime}; CRI-O and cri-dockerd '
                f"do): network series sit on the sandbox {where}",
                "nothing to do: egress is read from the POD sandbox where it is the only network series; CPU and "
                "memory of POD are left out",
            )
        )

    cpu = present["container_cpu_usage_seconds_total"]
    root = _present(table, "root-cgroup", hours)
    if cpu.any() and not root.any():
        # Billing counts cAdvisor's scrapes on the root cgroup (usage.py `cadvisor_node_scrapes`): without it
        # CPU and memory cannot be turned into core- and GiB-hours, so the doctor and billing refuse alike.
        findings.append(
            Finding(
                ERROR,
                "missing-root-cgroup",
                cluster,
                'container_cpu_usage_seconds_total has container series but none of a node\'s root cgroup (id="/") '
                "in the period: the cAdvisor scrapes cannot be counted, so CPU and memory use cannot be measured",
                'keep the root cgroup in the kubelet /metrics/cadvisor scrape (do not drop id="/" in its '
                "metricRelabelings)",
            )
        )

    no_node = table.get("no-node", [])
    if no_node and cpu.any():
        count = int(max(row.hourly.max() for row in no_node))
        findings.append(
            Finding(
                WARNING,
                "missing-label:node",
                cluster,
                f"up to {count} container_cpu_usage_seconds_total series at a time ({_targets(no_node)}) have no "
                "node label, so per-node coverage cannot be measured: a node that stops being scraped goes unnoticed",
                "scrape the kubelets through the prometheus-operator ServiceMonitor (it sets node from the "
                "endpoint's Node target) or add a relabeling setting node from __meta_kubernetes_node_name",
            )
        )

    host = table.get("host-network", [])
    if host:
        pods = {row.labels.get("namespace", ""): int(row.hourly.max()) for row in host}
        shown = _names([f"{ns} ({n} pod{'s' if n != 1 else ''})" for ns, n in pods.items()])
        findings.append(
            Finding(
                WARNING,
                "host-network-pods",
                cluster,
                f"hostNetwork pods in {len(pods)} namespace(s): {shown}; their network series are the node's "
                "interfaces, so their egress is not measurable per pod and is not billed (shown as not measured)",
                "to bill their egress, run these pods without hostNetwork: true (or meter their traffic elsewhere)",
                namespaces=tuple(sorted(pods)),
            )
        )
    return findings


def check_targets(
    table: Table, census: Table, cluster: str, hour0: float, hours: int, checked: np.ndarray | None = None
) -> list[Finding]:
    """Duplicate scrapes, silent nodes, unmounted claims (`checked`: the hours duplicates were looked for)."""
    checked = np.ones(hours, dtype=bool) if checked is None else checked
    findings: list[Finding] = []
    for item in DUPLICATES:
        rows = [r for r in table.get(f"duplicate:{item.source}", []) if r.hourly.any()]
        if not rows:
            continue
        jobs = sorted({r.labels.get("job", "") for r in rows})
        instances = sorted({r.labels.get("instance", "") for r in rows})
        when = np.zeros(hours, dtype=bool)
        for row in rows:
            when |= row.hourly > 0
        count = int(max(r.hourly.max() for r in rows))
        if len(jobs) > 1:
            how = f"by {len(jobs)} jobs ({', '.join(jobs)})"
            fix = (
                f"scrape {item.source} with one job: remove the extra scrape config or ServiceMonitor among "
                f"{', '.join(jobs)}"
            )
        else:
            how = f"by {len(instances)} instances of job {jobs[0]} ({_names(instances)})"
            fix = (
                "run one kube-state-metrics replica or shard it (--shard / --total-shards) so each object is "
                "exported once"
                if item.source == KUBE_STATE
                else f"scrape each {item.source} target once (instances {_names(instances)})"
            )
        findings.append(
            Finding(
                WARNING,
                "duplicate-targets",
                cluster,
                f"{item.metric}: up to {count} {item.what} are scraped twice at the same time, {how}, at "
                f"{int(when.sum())} of {int(checked.sum())} checks (every {_step_text(checked)}): "
                f"{_hours_text(hour0, when)}; counted once (de-duplicated)",
                fix,
            )
        )

    silent = table.get("silent", [])
    by_node: dict[str, list[Row]] = {}
    for row in silent:
        if row.hourly.any():
            by_node.setdefault(row.labels.get("node", ""), []).append(row)
    for node, rows in sorted(by_node.items()):
        when = np.zeros(hours, dtype=bool)
        for row in rows:
            when |= row.hourly > 0
        namespaces = sorted({r.labels.get("namespace", "") for r in rows})
        findings.append(
            Finding(
                WARNING,
                "silent-target",
                cluster,
                f"node {node} was not scraped (no cAdvisor series) in {_hours_text(hour0, when)} while pods ran on "
                f"it in namespace(s) {_names(namespaces)}: their CPU, memory and egress in those hours is not "
                "measured and shows as a coverage gap",
                f"check the kubelet target of node {node} (Prometheus /targets, job of /metrics/cadvisor): is the "
                "node reachable on port 10250 and the kubelet up?",
                namespaces=tuple(namespaces),
            )
        )

    hidden: dict[str, np.ndarray] = {}  # namespace → hours a silent node explains
    for row in silent:
        mask = hidden.setdefault(row.labels.get("namespace", ""), np.zeros(hours, dtype=bool))
        mask |= row.hourly > 0
    unreported: dict[str, np.ndarray] = {}
    for row in table.get("unreported", []):
        namespace = row.labels.get("namespace", "")
        gap = (row.hourly > 0) & ~hidden.get(namespace, np.zeros(hours, dtype=bool))
        if gap.any():
            unreported[namespace] = gap
    if unreported:
        shown = "; ".join(f"{ns} in {_hours_text(hour0, gap)}" for ns, gap in sorted(unreported.items()))
        findings.append(
            Finding(
                WARNING,
                "unreported-containers",
                cluster,
                f"pods ran but cAdvisor reported none of their containers (container_cpu_usage_seconds_total) while "
                f"their nodes were scraped: {shown}; their CPU, memory and egress in those hours are unknown, shown "
                "as a coverage gap and not billed",
                "find where these series were lost: a metricRelabelings rule dropping them, a remote-write or "
                "federation gap, or lost TSDB blocks; bill from a store that holds them",
                namespaces=tuple(sorted(unreported)),
            )
        )

    mounted = _present(census, "series:kubelet_volume_stats_used_bytes", hours)
    claims: dict[tuple[str, str], int] = {}
    for row in table.get("unmounted", []):
        unmounted_hours = int(((row.hourly > 0) & mounted).sum())
        if unmounted_hours:
            claims[(row.labels.get("namespace", ""), row.labels.get("persistentvolumeclaim", ""))] = unmounted_hours
    if claims:
        shown = _names([f"{ns}/{claim} ({h} h)" for (ns, claim), h in claims.items()])
        findings.append(
            Finding(
                WARNING,
                "unmounted-claims",
                cluster,
                f"{len(claims)} claim(s) have requests but no kubelet volume statistics (mounted on no node) for "
                f"some hours: {shown}; their use in those hours is not measured (carried forward from the last "
                "observation, never above the request)",
                "nothing to fix if the claims are unused (e.g. a scaled-down StatefulSet: delete them to stop paying "
                "for them); otherwise check that the kubelets of the nodes mounting them are scraped at /metrics",
                namespaces=tuple(sorted({ns for ns, _ in claims})),
            )
        )
    return findings


def check_windows(table: Table, cluster: str, hour0: float, hours: int) -> list[Finding]:
    """NaN samples and scrape intervals."""
    findings: list[Finding] = []
    for metric in NAN_METRICS:
        rows = [r for r in table.get(f"nan:{metric}", []) if r.hourly.any()]
        if not rows:
            continue
        when = np.zeros(hours, dtype=bool)
        for row in rows:
            when |= row.hourly > 0
        namespaces = sorted({r.labels.get("namespace", "") for r in rows} - {""})
        jobs = sorted({r.labels.get("job", "") for r in rows})
        series = int(sum(r.hourly.max() for r in rows))
        findings.append(
            Finding(
                WARNING,
                "nan-samples",
                cluster,
                f"{metric} has NaN or infinite samples on {series} series (job {', '.join(jobs)}; namespace(s) "
                f"{_names(namespaces) or 'none'}) in {_hours_text(hour0, when)}: those hours are counted as not "
                "covered, never as 0",
                f"find why job {', '.join(jobs)} exports NaN for {metric} (exporter bug, a failing device or volume)",
                namespaces=tuple(namespaces),
            )
        )

    intervals = detect_intervals(table)
    if intervals:
        parts = []
        for source, jobs in intervals.items():
            parts.append(f"{source}: " + ", ".join(f"job {job} {_seconds(s)}" for job, s in sorted(jobs.items())))
        findings.append(
            Finding(
                INFO,
                "scrape-interval",
                cluster,
                "detected scrape intervals (samples per hour of the densest series): " + "; ".join(parts),
                "nothing to do; coverage counts scrapes against these intervals",
            )
        )
    for source, jobs in intervals.items():
        if len(jobs) > 1 and max(jobs.values()) > 1.05 * min(jobs.values()):
            shown = ", ".join(f"{job} {_seconds(s)}" for job, s in sorted(jobs.items()))
            findings.append(
                Finding(
                    WARNING,
                    "scrape-interval",
                    cluster,
                    f"{source} is scraped by jobs with different intervals ({shown}): coverage of the slower job is "
                    "measured against the faster one",
                    f"scrape {source} with one job, or give its jobs ({', '.join(sorted(jobs))}) the same interval",
                )
            )
    return findings


def detect_intervals(table: Table) -> dict[str, dict[str, float]]:
    """Source → job → seconds between scrapes: an hour over the median of the hourly sample counts of
    the densest series (the median passes over hours with a gap)."""
    intervals: dict[str, dict[str, float]] = {}
    for source in INTERVAL_METRICS:
        for row in table.get(f"interval:{source}", []):
            counts = row.hourly[row.hourly > 0]
            if len(counts):
                intervals.setdefault(source, {})[row.labels.get("job", "")] = 3600.0 / float(np.median(counts))
    return intervals


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if abs(value - round(value)) < 0.05 else f"{value:.1f} s"


def check_partial(warnings: Sequence[str], cluster: str) -> list[Finding]:
    if not warnings:
        return []
    shown = "; ".join(warnings[:3]) + (f" and {len(warnings) - 3} more" if len(warnings) > 3 else "")
    return [
        Finding(
            ERROR,
            "partial-response",
            cluster,
            f"Prometheus answered with {len(warnings)} warning(s), so answers may lack series: {shown}",
            "retry when every store, ingester or replica answers (Thanos: check the store APIs and query with "
            "partial_response=false; Mimir/Cortex: check the ingesters and store-gateways)",
        )
    ]


def no_data(cluster: str, period: Period, matchers: Sequence[LabelMatcher], hints: Mapping[str, list[str]]) -> Finding:
    """Nothing of the contract in the period: an empty or wrong Prometheus, or extra matchers that match nothing."""
    selected = "{" + ",".join(m.render() for m in matchers) + "}" if matchers else "(no extra matchers)"
    if matchers:
        found = "; ".join(
            f"{name} has the values {_names(values)}" if values else f"no series has a {name} label"
            for name, values in hints.items()
        )
        fix = f"check --match and --cluster-label: {found} in that period"
    else:
        fix = (
            "check --prometheus (is it the Prometheus that scrapes this cluster, with kube-state-metrics and the "
            f"kubelets?) and that it still holds {period.label} (retention)"
        )
    return Finding(
        ERROR,
        "no-data",
        cluster,
        f"no series of the metric contract ({', '.join(CONTRACT_METRICS[:2])} …) in {period.label} for the "
        f"selector {selected}: every figure would be 0",
        fix,
    )


# ---------------------------------------------------------------- the whole diagnosis


def default_period(now: dt.datetime, time_zone: str = UTC_NAME) -> Period:
    """The last complete calendar month of `time_zone` at `now`."""
    return Period.of(now, time_zone).previous


def _examined_hours(period: Period, now: dt.datetime) -> int:
    limit = min(period.end, now)
    return max(0, math.floor((limit - period.start).total_seconds() / 3600))


def diagnose_cluster(
    client: PrometheusClient,
    period: Period,
    cluster: str,
    matchers: Sequence[LabelMatcher] = (),
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Every finding about one cluster's series for `period` (matchers select the cluster's series)."""
    now = now or dt.datetime.now(dt.UTC)
    findings = check_period(period, now, cluster)
    if any(f.code == "period-in-future" for f in findings):
        return findings
    hours = _examined_hours(period, now)
    if hours == 0:
        return findings
    already = len(client.warnings_seen)
    hour0 = period.start.timestamp()
    one_hour = dt.timedelta(hours=1)
    middle, last_middle = period.start + one_hour / 2, period.start + (hours - 0.5) * one_hour

    # Hour windows first: the scrape intervals they give choose how the census finds each series' latest sample.
    window = promql.hour_window(client.build_version())
    end_of_first = period.start + one_hour - dt.timedelta(milliseconds=1)
    last_end = end_of_first + (hours - 1) * one_hour
    window_answer = client.query_ranges([RangeQuery(window_query(matchers, window), end_of_first, last_end, one_hour)])[
        0
    ]
    windows = tabulate(window_answer.series, hour0, hours)
    lookback = lookback_for(detect_intervals(windows))
    census_query_text = census_query(matchers, lookback)
    census_answer = client.query_ranges([RangeQuery(census_query_text, middle, last_middle, one_hour)])[0]
    census = split_census(tabulate(census_answer.series, hour0, hours))
    present = {m: _present(census, f"series:{m}", hours).any() for m in CONTRACT_METRICS}
    if not any(present.values()):
        hints = {}
        if matchers:
            # Which values the matched labels do have: the usual cause is a typo in --match.
            contract = selector("kube_pod_status_phase", ())
            cpu = selector("container_cpu_usage_seconds_total", ())
            for name in dict.fromkeys(m.name for m in matchers):
                hints[name] = client.label_values(name, [contract, cpu], period.start, period.start + hours * one_hour)
        findings.append(no_data(cluster, period, matchers, hints))
        warnings = _distinct([*window_answer.warnings, *census_answer.warnings, *client.warnings_seen[already:]])
        return sort_findings(findings + check_partial(warnings, cluster))

    data_before: bool | None = None
    first_hour_empty = not any(_present(census, f"series:{m}", hours)[0] for m in CONTRACT_METRICS)
    if first_hour_empty:
        names = "|".join(CONTRACT_METRICS)
        match = [selector("", matchers, f'__name__=~"{names}"')]
        older = client.label_values(
            "__name__", match, period.start - RETENTION_LOOKBACK, period.start - dt.timedelta(milliseconds=1)
        )
        data_before = bool(older)

    node_labelled = not census.get("no-node") and present["container_cpu_usage_seconds_total"]
    silent = bool(node_labelled and present["kube_pod_info"] and present["kube_pod_status_phase"])
    unmounted = (
        present["kubelet_volume_stats_used_bytes"]
        and present["kube_persistentvolumeclaim_resource_requests_storage_bytes"]
    )
    every = DUPLICATE_STEP_HOURS * one_hour
    last_check = middle + ((hours - 1) // DUPLICATE_STEP_HOURS) * every
    queries = [RangeQuery(duplicates_query(matchers, lookback), middle, last_check, every)]
    containers = bool(present["container_cpu_usage_seconds_total"] and present["kube_pod_status_phase"])
    targets_text = targets_query(matchers, silent, unmounted, lookback, containers)
    if targets_text is not None:
        queries.append(RangeQuery(targets_text, middle, last_middle, one_hour))
    answers = client.query_ranges(queries)
    checked = np.zeros(hours, dtype=bool)
    checked[::DUPLICATE_STEP_HOURS] = True
    targets_table = tabulate([s for answer in answers for s in answer.series], hour0, hours)
    findings += check_census(census, cluster, hour0, hours, data_before)
    findings += check_targets(targets_table, census, cluster, hour0, hours, checked)
    findings += check_windows(windows, cluster, hour0, hours)
    # Each answer's own warnings: the client's list holds a warning once even when every cluster got it.
    answered = (census_answer, window_answer, *answers)
    warnings = _distinct([w for answer in answered for w in answer.warnings] + client.warnings_seen[already:])
    findings += check_partial(warnings, cluster)
    return sort_findings(findings)


def _distinct(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


@dataclass(frozen=True)
class Diagnosis:
    """The doctor's findings, and the capability calls it counted on the way (billing rates the same frame
    instead of asking Prometheus again)."""

    findings: list[Finding]
    calls: dict[str, pd.DataFrame]
    """Cluster → calls frame of the hours examined; a cluster without data (or a period in the future) is absent."""


def diagnose(
    client: PrometheusClient,
    catalog: Catalog,
    period: Period,
    clusters: Sequence[str],
    cluster_label: str | None = None,
    matchers: Sequence[LabelMatcher] = (),
    now: dt.datetime | None = None,
) -> list[Finding]:
    """Findings for every cluster of a run, sorted by cluster and severity.

    `clusters` are pool.yaml names (see `run.clusters_to_collect`); with `cluster_label` each cluster's
    series are those whose label has its name, as in collection."""
    return examine(client, catalog, period, clusters, cluster_label, matchers, now).findings


def examine(
    client: PrometheusClient,
    catalog: Catalog,
    period: Period,
    clusters: Sequence[str],
    cluster_label: str | None = None,
    matchers: Sequence[LabelMatcher] = (),
    now: dt.datetime | None = None,
) -> Diagnosis:
    """`diagnose`, keeping the calls frames it collected for the capability checks."""
    now = now or dt.datetime.now(dt.UTC)
    findings: list[Finding] = []
    collected: dict[str, pd.DataFrame] = {}
    for cluster in clusters:
        if catalog.pool.cluster(cluster) is None:
            raise ChargebackError(f"cluster {cluster!r} is not in pool.yaml; check --cluster")
        selectors = [*matchers, LabelMatcher(cluster_label, cluster)] if cluster_label else list(matchers)
        findings += diagnose_cluster(client, period, cluster, selectors, now)
        if not any(f.code in ("period-in-future", "no-data") for f in findings if f.cluster == cluster):
            before = len(client.warnings_seen)
            calls = collect_calls(client, catalog, period, cluster, selectors, _examined_hours(period, now))
            findings += check_calls(calls, catalog, cluster)
            # Billing rates these very frames: a partial answer to the calls queries is an error like any other.
            findings += check_partial(client.warnings_seen[before:], cluster)
            collected[cluster] = calls
    return Diagnosis(sort_findings(findings), collected)


def check_calls(calls: pd.DataFrame, catalog: Catalog, cluster: str) -> list[Finding]:
    """Capability calls the catalog does not allow, and calls nobody can be billed for.

    A namespace that calls a capability it does not declare in `consumes` should have been stopped by
    the NetworkPolicy the catalog provisions (infra/components/business_unit.py): either the policy is
    missing or traffic bypasses it. Calls of unknown callers (no sidecar, or traffic from outside the
    mesh) are counted and told, never dropped."""
    counting = catalog.rates.call_counting
    exposed = {cap.name for _unit, ns in catalog.namespaces(cluster) for cap in ns.exposes}
    if exposed and calls.empty:
        return [
            Finding(
                INFO,
                "no-call-series",
                cluster,
                f"no {counting.metric} series for the capabilities {', '.join(sorted(exposed))}: no calls are counted",
                f"check that {counting.metric} is scraped (rates.yaml call_counting names the metric and labels)",
            )
        ]
    consumes = {ns.name: set(ns.consumes) for _unit, ns in catalog.namespaces(cluster)}
    findings = []
    per_pair = calls.groupby(["consumer_namespace", "provider_namespace", "capability"], sort=True)["calls"].sum()
    for (consumer, provider, capability), count in per_pair.items():
        if consumer == provider:
            continue
        if consumer == UNKNOWN_CALLER:
            findings.append(
                Finding(
                    WARNING,
                    "unknown-callers",
                    cluster,
                    f"{int(count):,} calls of {capability} ({provider}) came from callers without a namespace "
                    f"({counting.consumer_label} {' or '.join(repr(v) for v in counting.unknown_callers)}): "
                    "counted, charged to nobody",
                    "inject the mesh sidecar into the calling workloads, or find the caller outside the mesh",
                    (provider,),
                    capability=capability,
                    provider=provider,
                    calls=int(count),
                )
            )
        elif capability not in consumes.get(consumer, set()):
            owner = catalog.owner_of(consumer, cluster)
            where = f"business-units/{owner.id}.yaml" if owner else "no business unit owns it"
            findings.append(
                Finding(
                    WARNING,
                    "undeclared-caller",
                    cluster,
                    f"namespace {consumer} ({where}) made {int(count):,} calls of capability {capability} "
                    f"({provider}) without declaring `consumes: [{capability}]`",
                    f"declare `consumes: [{capability}]` on namespace {consumer} if the calls are meant, else check "
                    f"the NetworkPolicy allow-capability-{capability} in {provider}: it should have stopped them",
                    (consumer,),
                    capability=capability,
                    provider=provider,
                    calls=int(count),
                )
            )
    return sort_findings(findings)
