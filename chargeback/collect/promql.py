"""Every PromQL query chargeback runs, one named template per query with the reason it looks so.

All queries are range queries with a one-hour step, evaluated one millisecond before the end of
each hour H (at H+1h-1ms) over the hour window `$window`:

* Prometheus 2.x range selectors are closed on both ends, so `[1h]` at H+1h would see a sample
  taken exactly at H+1h in hour H *and* in hour H+1 — `sum_over_time` / `count_over_time` would
  count it twice (kube-state-metrics scraped at :00 does exactly that). `[59m59s999ms]` evaluated
  at H+1h-1ms covers [H, H+1h-1ms]: each millisecond belongs to exactly one hour.
* Prometheus 3 made the left end open, so there the same half-open hour is `[1h]` at H+1h-1ms.
  `hour_window(version)` picks the right one from the server's build info.

Counters use `increase`, which corrects counter resets and, at a series' start, extrapolates back
to the counter's zero point (a pod that starts mid-hour is charged from its start, not from its
first scrape). Gauges use `sum_over_time`: divided by the number of scrapes in the hour
(`*_SCRAPES`, the largest sample count of any series of that source) it gives value-hours, so a
pod present for 20 minutes of an hour counts one third of its value, and an hour with a scrape
gap is averaged over the scrapes that did happen. Everything is aggregated on the server
(`sum by (namespace, …)`), never pulled per pod.

Templates use `$extra` for the caller's additional label matchers (e.g. `cluster="dc1"` on a
Prometheus that holds several clusters), rendered by `render` with values escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Template

from pool_catalog.resources import STORAGE_CLASS_QUOTA_SUFFIX, specs

from ..errors import ChargebackError

# ---------------------------------------------------------------- usage (the `used` column)
#
# Real clusters repeat series: a kubelet scraped by two jobs, two kube-state-metrics replicas both
# scraped, a pod's requests exported once without `node` (pending) and once with it (scheduled).
# Every query therefore first reduces to one value per *object* (`max by` the labels that name the
# container, pod, claim, quota …, never the scrape target's job/instance) and only then sums per
# namespace. The namespace!="" matcher keeps the root cgroup (id="/") and the system slices, which
# the kubelet exports without namespace, out of every cAdvisor query.

CPU_USED = Template(
    # Containers only: the pod-level cgroup (container="") and the sandbox (CRI-O/cri-dockerd: "POD") would
    # count CPU twice. `id` (the cgroup path) tells a restarted container's new series from its old one.
    "sum by (namespace) (max by (namespace, pod, container, id) (increase("
    'container_cpu_usage_seconds_total{container!="",container!="POD",namespace!=""$extra}[$window])))'
)
MEMORY_USED = Template(
    # Working set is what the kernel cannot reclaim, the figure the OOM killer and kubectl top use.
    "sum by (namespace) (max by (namespace, pod, container, id) (sum_over_time("
    'container_memory_working_set_bytes{container!="",container!="POD",namespace!=""$extra}[$window])))'
)
EGRESS_USED = Template(
    # Network counters live on the pod's network sandbox: container="" (containerd: the pod cgroup) or
    # container="POD" (CRI-O, cri-dockerd); where both report the same namespace, max keeps it once.
    # hostNetwork pods report every host interface (the node's traffic, not the pod's): left out here and
    # listed by HOST_NETWORK_PODS as "not measured".
    "sum by (namespace) (max by (namespace, pod, interface) (increase("
    'container_network_transmit_bytes_total{container=~"|POD",namespace!="",pod!=""$extra}[$window]))'
    " unless on (namespace, pod)"
    ' max by (namespace, pod) (max_over_time(kube_pod_info{host_network="true"$extra}[$window])))'
)
STORAGE_USED = Template(
    # Bytes used on each PVC, once per claim: a ReadWriteMany claim is reported by every node that mounts
    # it (max, not sum). Its StorageClass comes from CLAIM_CLASSES, joined per claim client-side (a join
    # here would read these samples twice: once more for the claims kube-state-metrics has no info on).
    "max by (namespace, persistentvolumeclaim) (sum_over_time(kubelet_volume_stats_used_bytes{$matchers}[$window]))"
)
STORAGE_LAST = Template(
    # The last bytes-used sample of each claim in the hour: what an unmounted claim is carried forward with.
    "max by (namespace, persistentvolumeclaim) (last_over_time(kubelet_volume_stats_used_bytes{$matchers}[$window]))"
)
LOAD_BALANCERS_USED = Template(
    # A Service of type LoadBalancer holds one address from the pool for as long as it exists.
    "sum by (namespace) (max by (namespace, service) (sum_over_time("
    'kube_service_spec_type{type="LoadBalancer"$extra}[$window])))'
)
PODS_RUNNING = Template(
    # Running pods only: pending and finished pods hold no resources on a node.
    "sum by (namespace) (max by (namespace, pod, uid) ("
    'sum_over_time(kube_pod_status_phase{phase="Running"$extra}[$window])))'
)
HOST_NETWORK_PODS = Template(
    # hostNetwork pods per namespace: their network traffic cannot be told from the node's.
    'count by (namespace) (max by (namespace, pod) (max_over_time(kube_pod_info{host_network="true"$extra}[$window])))'
)

# ---------------------------------------------------------------- peaks in the hour (right-sizing, never billed)
#
# Hourly averages hide bursts: a weekly bench run at 20 cores is 0.3 cores averaged over a month. Right-sizing
# reads each hour's peak instead. Subqueries step 5m: their points are aligned to multiples of the step, so the
# points of the hour window are :00, :05 … :55 of the hour (:00 left out by Prometheus 3's left-open ranges,
# where its rate still covers it), and a 5-minute rate at each point covers every sample of the hour once.

PEAK_STEP = "5m"

CPU_PEAK = Template(
    # The highest 5-minute CPU rate of the namespace's containers (cores) in the hour: KRR's fine-grained use.
    "max_over_time(sum by (namespace) (max by (namespace, pod, container, id) (rate("
    'container_cpu_usage_seconds_total{container!="",container!="POD",namespace!=""$extra}[$peak_step])))'
    "[$window:$peak_step])"
)
MEMORY_PEAK = Template(
    # Each container's highest working set in the hour, every sample read (a 5-minute subquery would skip the
    # samples between its points, and an OOM kill follows one sample's peak), summed per namespace: at least the
    # namespace's peak, so advice from it is never too small. A restarted container (new `id`) counts once.
    "sum by (namespace) (max by (namespace, pod, container) (max_over_time("
    'container_memory_working_set_bytes{container!="",container!="POD",namespace!=""$extra}[$window])))'
)
STORAGE_PEAK = Template(
    # Each claim's highest bytes used in the hour, every sample read, once per claim (as STORAGE_USED).
    "max by (namespace, persistentvolumeclaim) (max_over_time(kubelet_volume_stats_used_bytes{$matchers}[$window]))"
)
REQUESTS_PEAK = Template(
    # The highest total of the running pods' requests at any 5-minute point of the hour: a quota below it
    # refuses the unit's own pods. Same reduction per container as CONTAINER_REQUESTS; a pod counts while its
    # Running phase is 1 (kube-state-metrics exports 0 for the phases a pod is not in).
    "max_over_time(sum by (namespace, resource) ("
    "max by (namespace, pod, uid, container, resource) ("
    'kube_pod_container_resource_requests{resource=~"$requests"$extra})'
    " * on (namespace, pod, uid) group_left ()"
    ' max by (namespace, pod, uid) (kube_pod_status_phase{phase="Running"$extra}))'
    "[$window:$peak_step])"
)

# ---------------------------------------------------------------- requests and quotas

CONTAINER_REQUESTS = Template(
    # Requests of running pods only (kube-state-metrics also exports pending and completed pods), once per
    # container and resource: a pod first seen unscheduled has a series without `node` and then one with it.
    # The pod's running scrapes weight its request, so a pod started mid-hour counts part of the hour.
    # GPU usage is these GPU requests: no utilisation series is part of the metric contract.
    "sum by (namespace, resource) ("
    "max by (namespace, pod, uid, container, resource) ("
    # $requests: the `resource` labels of the billable pod requests (`request_labels`).
    'max_over_time(kube_pod_container_resource_requests{resource=~"$requests"$extra}[$window]))'
    " * on (namespace, pod, uid) group_left ()"
    ' max by (namespace, pod, uid) (sum_over_time(kube_pod_status_phase{phase="Running"$extra}[$window])))'
)
STORAGE_REQUESTED = Template(
    # The size each PVC asked for, once per claim (same granularity as STORAGE_USED).
    "max by (namespace, persistentvolumeclaim)"
    " (sum_over_time(kube_persistentvolumeclaim_resource_requests_storage_bytes{$matchers}[$window]))"
)
CLAIM_CLASSES = Template(
    # Each claim's StorageClass (its storage tier). Claims without it still count, with no class, so that
    # rating can name them instead of dropping them.
    "max by (namespace, persistentvolumeclaim, storageclass)"
    " (max_over_time(kube_persistentvolumeclaim_info{$matchers}[$window]))"
)
QUOTA_HARD = Template(
    # Hard quota limits are the allocation: idle analysis compares use with them (billing in request mode
    # uses pod requests, not quotas); with several ResourceQuota objects (or replicas reporting one) the
    # smallest limit applies, as in the API server. $quotas: the quota keys of the resource table (`quota_keys`).
    'min by (namespace, resource) (sum_over_time(kube_resourcequota{type="hard",resource=~"$quotas"$extra}[$window]))'
)

# ---------------------------------------------------------------- scrapes per hour, per source and target

KUBE_STATE_SCRAPES = Template(
    # How often kube-state-metrics was scraped this hour, on one series per node (kube_node_info): small,
    # and not read by any other query. Without it (an allow-list without nodes) the quotas this project
    # provisions are the clock instead (KUBE_STATE_SCRAPES_BY_QUOTA, a follow-up query).
    "max(count_over_time(kube_node_info{$matchers}[$window]))"
)
KUBE_STATE_SCRAPES_BY_QUOTA = Template(
    # The same clock on the hard quotas, asked only when kube_node_info has no series: quota_hard reads these
    # series as well, and reading them twice would cost every month.
    'max(count_over_time(kube_resourcequota{type="hard"$extra}[$window]))'
)
KUBELET_VOLUME_SCRAPES = Template(
    # How often the kubelets' volume statistics were scraped this hour (a separate endpoint from cAdvisor).
    "max(count_over_time(kubelet_volume_stats_used_bytes{$matchers}[$window]))"
)
CADVISOR_NODE_SCRAPES = Template(
    # Scrapes of each node's cAdvisor this hour, counted on the root cgroup (id="/", one series per node, there
    # with or without pods): divides gauge sums and measures coverage. The cluster's count is the largest of any
    # node (series without a `node` label count for the cluster only); a node that stops being scraped shows as
    # a count below the others.
    'max by (node) (count_over_time(container_cpu_usage_seconds_total{id="/"$extra}[$window]))'
)
NAMESPACES_ON_NODES = Template(
    # Which namespaces had pods on which node this hour (any phase: kube_pod_info alone, so that the phase
    # series is not read once more): what a silent node hides. A follow-up query, asked only when a node was
    # scraped less than the cluster in some hour: otherwise nothing is hidden and kube_pod_info is not read.
    'max by (namespace, node) (max_over_time(kube_pod_info{node!=""$extra}[$window]))'
)


QUERIES: dict[str, Template] = {
    "cpu_used": CPU_USED,
    "memory_used": MEMORY_USED,
    "egress_used": EGRESS_USED,
    "storage_used": STORAGE_USED,
    "storage_last": STORAGE_LAST,
    "load_balancers_used": LOAD_BALANCERS_USED,
    "pods_running": PODS_RUNNING,
    "host_network_pods": HOST_NETWORK_PODS,
    "container_requests": CONTAINER_REQUESTS,
    "storage_requested": STORAGE_REQUESTED,
    "claim_classes": CLAIM_CLASSES,
    "quota_hard": QUOTA_HARD,
    "cpu_peak": CPU_PEAK,
    "memory_peak": MEMORY_PEAK,
    "storage_peak": STORAGE_PEAK,
    "requests_peak": REQUESTS_PEAK,
    "kube_state_scrapes": KUBE_STATE_SCRAPES,
    "kubelet_volume_scrapes": KUBELET_VOLUME_SCRAPES,
    "cadvisor_node_scrapes": CADVISOR_NODE_SCRAPES,
}
"""Every query `collect_usage` runs for every period, by name."""

FOLLOW_UPS: dict[str, Template] = {
    "kube_state_scrapes_by_quota": KUBE_STATE_SCRAPES_BY_QUOTA,
    "namespaces_on_nodes": NAMESPACES_ON_NODES,
}
"""Queries `collect_usage` runs only when the first answers ask for them (see `_Reducer.follow_ups`)."""

WINDOW_PROMETHEUS_2 = "59m59s999ms"
WINDOW_PROMETHEUS_3 = "1h"


def left_open_ranges(version: str | None) -> bool:
    """Whether range selectors exclude their start on a server of this version (Prometheus 3 does).

    Unknown versions (Thanos, Mimir do not always say) count as 2.x: a closed window on a left-open server
    only misses samples taken at exactly the start, while a 3.x window on a closed server counts them twice.
    """
    match = re.match(r"v?(\d+)\.", version or "")
    return bool(match and int(match.group(1)) >= 3)


def hour_window(version: str | None) -> str:
    """The range that, evaluated at H+1h-1ms, covers exactly [H, H+1h) on a server of this version."""
    return WINDOW_PROMETHEUS_3 if left_open_ranges(version) else WINDOW_PROMETHEUS_2


def covering_range(seconds: float, version: str | None) -> str:
    """The range that, evaluated at T-1ms, covers exactly [T-seconds, T) on a server of this version."""
    milliseconds = round(seconds * 1000) - (0 if left_open_ranges(version) else 1)
    return f"{milliseconds}ms"


class MatcherError(ChargebackError):
    """An extra label matcher that is not `name="value"` (or !=, =~, !~)."""


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_MATCHER = re.compile(r'^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$')
_UNESCAPE = re.compile(r"\\(.)")


def escape_label_value(value: str) -> str:
    """Escape `value` for a double-quoted PromQL string literal (backslash, double quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class LabelMatcher:
    """One extra label matcher added to every selector, e.g. cluster="dc1"."""

    name: str
    value: str
    op: str = "="

    def __post_init__(self) -> None:
        if not _LABEL_NAME.match(self.name):
            raise MatcherError(f"{self.name!r} is not a Prometheus label name (letters, digits, _; not first a digit)")
        if self.op not in ("=", "!=", "=~", "!~"):
            raise MatcherError(f"{self.op!r} is not a label matcher operator; use =, !=, =~ or !~")
        if self.name == "__name__":
            raise MatcherError("extra matchers may not select on __name__: chargeback chooses the metrics")

    def render(self) -> str:
        return f'{self.name}{self.op}"{escape_label_value(self.value)}"'

    @classmethod
    def parse(cls, text: str) -> LabelMatcher:
        """Parse `name="value"` (quotes optional; =, !=, =~, !~) as written on the command line."""
        match = _MATCHER.match(text)
        if not match:
            raise MatcherError(f'{text!r} is not a label matcher; write e.g. cluster="dc1" or env=~"prod|staging"')
        name, op, quoted, bare = match.groups()
        if quoted is not None:
            value = _UNESCAPE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), quoted)
        else:
            value = bare
        return cls(name=name, value=value, op=op)


def _regex_alternatives(patterns: list[str]) -> str:
    # A PromQL string literal: the regex's backslashes are escaped once more.
    return "|".join(patterns).replace("\\", "\\\\")


def request_labels() -> str:
    """Regex of kube_pod_container_resource_requests' `resource` labels that are billed (cpu|memory|nvidia_com_gpu)."""
    return _regex_alternatives([re.escape(spec.request_label) for spec in specs() if spec.request_label])


def quota_keys() -> str:
    """Regex of the kube_resourcequota `resource` labels read: every resource's quota keys, `pods`, and the
    per-StorageClass keys of the tiered resource (their class maps to a tier at collection)."""
    keys = [re.escape(key) for spec in specs() if spec.quota and not spec.per_tier for key in spec.quota.all_keys()]
    keys.append("pods")
    keys.extend(".+" + re.escape(STORAGE_CLASS_QUOTA_SUFFIX) for spec in specs() if spec.per_tier)
    return _regex_alternatives(keys)


def render(template: Template, window: str, matchers: tuple[LabelMatcher, ...] = ()) -> str:
    """Fill a query template: `$window` with the hour range, `$extra`/`$matchers` with the extra matchers,
    `$requests`/`$quotas` with the resource table's request labels and quota keys."""
    rendered = ",".join(m.render() for m in matchers)
    return template.substitute(
        window=window,
        extra=f",{rendered}" if rendered else "",
        matchers=rendered,
        requests=request_labels(),
        quotas=quota_keys(),
        peak_step=PEAK_STEP,
    )
