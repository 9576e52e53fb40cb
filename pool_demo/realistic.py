"""Scenarios with the label sets real clusters produce, and their usage in closed form.

`synthetic` writes the series the usage queries read, one tidy series per object. Real clusters
are messier, and this module writes them as the real sources do, so that the collection and
`chargeback doctor` can be tested on what they will meet:

* cAdvisor series come from the kubelet's `/metrics/cadvisor`, labelled by
  `containerPrometheusLabelsFunc` (kubernetes `pkg/kubelet/server/server.go`): `container`, `id`
  (the cgroup), `image`, `name` (the runtime's first alias), `namespace`, `pod`. Empty values are
  no label at all once Prometheus has scraped them. What each runtime's sandbox looks like
  follows cAdvisor's handlers (`container/containerd/handler.go`, `container/crio/handler.go`,
  `container/docker/handler.go`): network counters exist only on the sandbox (`needNet`), whose
  `container` label is empty under containerd (no `io.kubernetes.container.name` on a sandbox)
  and `POD` under CRI-O and cri-dockerd. The pod-level cgroup (`.../pod<uid>.slice`) is a raw
  cgroup matched to its pod by `GetPodByCgroupfs`: `container=""`, no image, no name, no network.
  The root cgroup (`id="/"`) and system slices (`/system.slice/kubelet.service` …) have no pod and
  no namespace; the root cgroup carries the counters of every host interface (cAdvisor
  `container/raw/handler.go`: only the root raw container reads a network namespace).
* A hostNetwork pod's sandbox lives in the host's network namespace, so its network series are
  the host interfaces' counters — the node's whole traffic.
* A restarted container is a new container with a new runtime id, so a new series (new `id`
  and `name`); a node reboot recreates every sandbox and container (new series) and resets the
  counters of the series that keep their labels (the pod cgroup, the root cgroup, system slices).
* kube-state-metrics v2 series follow `internal/store/pod.go` (`kube_pod_info` with `node`,
  `host_network` …; `kube_pod_status_phase` for all five phases; requests with `node`, absent
  while the pod is unscheduled, as `pkg/app/server_test.go` shows with `node=""`),
  `persistentvolumeclaim.go`, `resourcequota.go`, `service.go` and `node.go`.
* kubelet volume statistics follow `pkg/kubelet/metrics/collectors/volume_stats_test.go`
  (`namespace`, `persistentvolumeclaim`), served on the kubelet's `/metrics`, one series per
  mounting node.
* Target labels are those of the kube-prometheus ServiceMonitors (prometheus-operator): the
  kubelet job (`job="kubelet"`, `instance="<node ip>:10250"`, `endpoint="https-metrics"`,
  `service="kubelet"`, `node`, `metrics_path` from `__metrics_path__`; `honorLabels: true`;
  `honorTimestamps: false` on cAdvisor, so samples carry the scrape time) and the
  kube-state-metrics job (`honorLabels: true`, `labeldrop` of `pod|service|endpoint|namespace`,
  so `job`, `instance="<pod ip>:8443"` and `container="kube-rbac-proxy-main"` on series that have
  no container label of their own). A second kubelet job in the style of the prometheus-community
  chart's `kubernetes-nodes-cadvisor` (node role through the API server proxy: `instance=<node>`,
  node labels mapped) makes duplicate targets.

Times follow one rule that makes the closed form exact: everything that starts, stops or changes
(pods, restarts, reboots, scheduling, mounts, PVC expansion, quota changes) does so on a whole
minute. cAdvisor is scraped every 30 s at :15/:45, so a whole minute is half-way between two
scrapes (where `increase` extrapolation is exact); kube-state-metrics every 60 s and volume
statistics every 30 s at non-zero phases, so the share of scrapes after a whole minute is the
share of the hour.

`expected_usage(scenario, tier_of)` is computed from the objects (rate × time alive) with the
conventions the collection must follow (documented in the function); `expected_gaps`,
`expected_nan`, `expected_not_measured`, `expected_carried` and `expected_unmeasured_claims` say
what the collection must report rather than bill. Every named scenario lists the doctor findings
it plants in `planted_defects`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from .synthetic import GIB, MIB, QUOTA_RESOURCES, STORAGE_QUOTA_SUFFIX, OpenMetricsWriter

UTC = dt.UTC
V = TypeVar("V")
RUNTIMES = ("containerd", "crio", "docker")
"""Container runtimes whose cAdvisor conventions are modelled (docker: cri-dockerd)."""

# Sources as the usage frame names them (chargeback.collect.usage.SOURCES).
CADVISOR = "cadvisor"
KUBE_STATE = "kube-state-metrics"
KUBELET = "kubelet-volume-stats"

DOCTOR_FINDINGS = (
    "no-namespace-series",
    "host-network-pods",
    "sandbox-container-pod",
    "duplicate-targets",
    "silent-target",
    "unmounted-claims",
    "nan-samples",
    "no-data",
    "period-not-over",
    "partial-response",
    "retention-short",
    "missing-label:node",
)
"""The finding codes `chargeback doctor` reports; `missing-series:<metric>` comes on top."""

PAUSE_IMAGE = "registry.k8s.io/pause:3.9"

# ---------------------------------------------------------------- the model


@dataclass(frozen=True)
class Node:
    """A server running a kubelet."""

    name: str
    ip: str
    reboots: tuple[dt.datetime, ...] = ()  # every sandbox and container restarts; counters start from zero
    silent: tuple[tuple[dt.datetime, dt.datetime], ...] = ()  # [from, to): its kubelet is not scraped
    host_egress_bytes_per_second: float = 40 * MIB  # all host interfaces together (eth0 + eth1)
    system_cpu_cores: float = 0.4  # system.slice (kubelet, runtime)
    system_memory_bytes: float = 1.5 * GIB


@dataclass(frozen=True)
class Container:
    name: str
    cpu_cores: float
    memory_bytes: float
    cpu_request: float = 0.0
    memory_request: float = 0.0
    gpu_request: int = 0
    image: str = "registry.example.com/app:1.0"
    restarts: tuple[dt.datetime, ...] = ()  # a new container (new id) from each of these times


@dataclass(frozen=True)
class Pod:
    """A pod. It is in the API from `pending_from` (unscheduled, no node), gets its node at
    `scheduled_at` (still Pending: image pull), runs on it from `start` to `end`."""

    namespace: str
    name: str
    node: str
    containers: tuple[Container, ...]
    start: dt.datetime | None = None  # running from (None: the scenario's start)
    end: dt.datetime | None = None  # gone at (None: the scenario's end)
    pending_from: dt.datetime | None = None  # in the API, unscheduled, from (None: from start)
    scheduled_at: dt.datetime | None = None  # node assigned at (None: from pending_from, or start)
    host_network: bool = False
    egress_bytes_per_second: float = 0.0  # sent from the pod's own network namespace (not hostNetwork)
    owner: tuple[str, str] = ("ReplicaSet", "")  # created_by_kind, created_by_name ("" → pod name minus suffix)

    @property
    def uid(self) -> str:
        return _uid(f"pod/{self.namespace}/{self.name}")


@dataclass(frozen=True)
class Mount:
    """A PVC mounted on a node's kubelet for [start, end) (None: the claim's own bounds)."""

    node: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class Claim:
    """A PersistentVolumeClaim: its requested size over time (expansion) and where it is mounted."""

    namespace: str
    name: str
    storage_class: str
    requests: tuple[tuple[dt.datetime | None, float], ...]  # (from, bytes); first from None = claim start
    used_bytes: float
    mounts: tuple[Mount, ...] = ()
    access_mode: str = "ReadWriteOnce"
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class Quota:
    """A ResourceQuota whose hard limits change over time: ((from, {resource: hard}), …)."""

    namespace: str
    name: str
    hard: tuple[tuple[dt.datetime | None, Mapping[str, float]], ...]


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str = "LoadBalancer"
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class KubeletJob:
    """A scrape job over every node's kubelet: `/metrics/cadvisor` and `/metrics` (volume statistics).

    style "kube-prometheus": the prometheus-operator kubelet ServiceMonitor; "node-proxy": the
    prometheus-community chart's node-role jobs through the API server proxy.
    """

    name: str = "kubelet"
    style: str = "kube-prometheus"
    interval: float = 30.0
    cadvisor_phase: float = 15.0
    metrics_phase: float = 9.0


@dataclass(frozen=True)
class KsmReplica:
    """One kube-state-metrics pod scraped by the kube-prometheus ServiceMonitor."""

    ip: str = "10.244.0.12"
    interval: float = 60.0
    phase: float = 41.0


@dataclass(frozen=True)
class NanWindow:
    """Samples of a gauge written as NaN for [start, end): `metric` of pod `name` (memory working set)
    or of claim `name` (volume statistics) in `namespace`."""

    metric: str
    namespace: str
    name: str
    start: dt.datetime
    end: dt.datetime


NAN_METRICS = {"container_memory_working_set_bytes": CADVISOR, "kubelet_volume_stats_used_bytes": KUBELET}


@dataclass
class Scenario:
    """A cluster over a period, scraped the way real Prometheus setups scrape it."""

    name: str  # the value of the `cluster` label on every series
    start: dt.datetime
    end: dt.datetime
    runtime: str = "containerd"
    nodes: list[Node] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    quotas: list[Quota] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    kubelet_jobs: tuple[KubeletJob, ...] = (KubeletJob(),)
    ksm_replicas: tuple[KsmReplica, ...] = (KsmReplica(),)
    ksm_missing: frozenset[str] = frozenset()  # metric families kube-state-metrics does not export
    gaps: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)  # nothing scraped
    nan: list[NanWindow] = field(default_factory=list)
    planted_defects: tuple[str, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"scenario {self.name}: runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        nodes = {n.name for n in self.nodes}
        for pod in self.pods:
            if pod.node not in nodes:
                raise ValueError(f"scenario {self.name}: pod {pod.namespace}/{pod.name} is on unknown node {pod.node}")
        for claim in self.claims:
            for mount in claim.mounts:
                if mount.node not in nodes:
                    raise ValueError(
                        f"scenario {self.name}: claim {claim.name} is mounted on unknown node {mount.node}"
                    )
        for window in self.nan:
            if window.metric not in NAN_METRICS:
                raise ValueError(f"scenario {self.name}: NaN samples only on gauges {sorted(NAN_METRICS)}")
        for moment in self._moments():
            if moment.second or moment.microsecond:
                raise ValueError(
                    f"scenario {self.name}: {moment.isoformat()} is not on a whole minute; the closed form needs it"
                )

    def _moments(self) -> Iterator[dt.datetime]:
        for pod in self.pods:
            yield from (t for t in (pod.start, pod.end, pod.pending_from, pod.scheduled_at) if t)
            for container in pod.containers:
                yield from container.restarts
        for node in self.nodes:
            yield from node.reboots
            for window in node.silent:
                yield from window
        for claim in self.claims:
            yield from (t for t in (claim.start, claim.end) if t)
            yield from (t for t, _ in claim.requests if t)
            for mount in claim.mounts:
                yield from (t for t in (mount.start, mount.end) if t)
        for quota in self.quotas:
            yield from (t for t, _ in quota.hard if t)

    # ------------------------------------------------------------ time

    @property
    def t0(self) -> float:
        return self.start.timestamp()

    @property
    def t1(self) -> float:
        return self.end.timestamp()

    def _ts(self, moment: dt.datetime | None, default: float) -> float:
        return default if moment is None else moment.timestamp()

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def grid(self, interval: float, phase: float) -> np.ndarray:
        """Scrape times of one target in [start, end) outside the scenario's gaps."""
        first = math.ceil((self.t0 - phase) / interval) * interval + phase
        return _outside(np.arange(first, self.t1, interval), self.gaps)

    def kubelet_grid(self, job: KubeletJob, node: Node, endpoint: str) -> np.ndarray:
        phase = job.cadvisor_phase if endpoint == "cadvisor" else job.metrics_phase
        return _outside(self.grid(job.interval, phase), node.silent)

    def pod_span(self, pod: Pod) -> tuple[float, float]:
        """When the pod runs: [start, end) in unix seconds."""
        return self._ts(pod.start, self.t0), self._ts(pod.end, self.t1)

    def pod_api_span(self, pod: Pod) -> tuple[float, float, float]:
        """When the pod is in the API, gets its node, and stops: (from, scheduled, end)."""
        start, end = self.pod_span(pod)
        api_from = self._ts(pod.pending_from, start)
        return api_from, self._ts(pod.scheduled_at, api_from), end

    # ------------------------------------------------------------ writing

    def write(self, path: Path | str) -> OpenMetricsWriter:
        """Write every series of this scenario to `path` (OpenMetrics)."""
        return write_openmetrics(path, [self])

    def families(self) -> list[tuple[str, str, str, Callable[[], Iterator[Series]]]]:
        """(name, type, help, series generator) of every metric family, in writing order."""
        return _families(self)


def _outside(times: np.ndarray, windows: Iterable[tuple[dt.datetime, dt.datetime]]) -> np.ndarray:
    for begin, finish in windows:
        times = times[(times < begin.timestamp()) | (times >= finish.timestamp())]
    return times


def _uid(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def container_id(*parts: object) -> str:
    """A deterministic 64-hex runtime id (containers and sandboxes get a new one at every (re)start)."""
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


Series = tuple[dict[str, str], tuple[np.ndarray, np.ndarray]]
HOST_BOOT_AGE = 3 * 86400.0  # the nodes booted three days before the scenario starts
SANDBOX_CPU_CORES = 0.001
SANDBOX_MEMORY_BYTES = 0.5 * MIB
RUNTIME_VERSION = {"containerd": "containerd://1.7.13", "crio": "cri-o://1.29.2", "docker": "docker://24.0.7"}
RUNTIME_SERVICE = {"containerd": "containerd.service", "crio": "crio.service", "docker": "docker.service"}


@dataclass(frozen=True)
class _Cgroup:
    """One cAdvisor series family member: a cgroup as the kubelet labels it, alive [start, end).

    Counters start from zero at `start` and at each of `resets` (same labels, new counter: a reboot);
    with `host_counters` the network counters are the host's, counted from the node's last boot.
    """

    labels: dict[str, str]
    start: float
    end: float
    cpu_cores: float
    memory_bytes: float
    network: Mapping[str, float] | None = None  # interface → bytes sent per second
    resets: tuple[float, ...] = ()
    host_counters: bool = False
    nan_memory: tuple[tuple[float, float], ...] = ()


def _target_labels(job: KubeletJob, node: Node, endpoint: str) -> dict[str, str]:
    """Labels the scrape adds to a kubelet series.

    kube-prometheus `kubernetes-serviceMonitorKubelet` (prometheus-operator endpoints role, target
    kind Node → `node`; relabelling `__metrics_path__` → `metrics_path`). The prometheus-community
    chart's `kubernetes-nodes-cadvisor` / `kubernetes-nodes` jobs: node role via the API server
    proxy, `instance` = node name, node labels mapped with `labelmap`.
    """
    path = "/metrics/cadvisor" if endpoint == "cadvisor" else "/metrics"
    if job.style == "kube-prometheus":
        return {
            "job": job.name,
            "instance": f"{node.ip}:10250",
            "endpoint": "https-metrics",
            "service": "kubelet",
            "node": node.name,
            "metrics_path": path,
        }
    if job.style == "node-proxy":
        return {
            "job": job.name if endpoint == "cadvisor" else job.name.removesuffix("-cadvisor"),
            "instance": node.name,
            "kubernetes_io_hostname": node.name,
            "kubernetes_io_os": "linux",
            "kubernetes_io_arch": "amd64",
        }
    raise ValueError(f"kubelet job style {job.style!r} is not kube-prometheus or node-proxy")


def _ksm_labels(replica: KsmReplica, own: Mapping[str, str]) -> dict[str, str]:
    """kube-prometheus kube-state-metrics ServiceMonitor: honorLabels, labeldrop pod|service|endpoint|namespace
    of the target, so `job`, `instance` and the target's `container` (only where the series has none)."""
    labels = {"job": "kube-state-metrics", "instance": f"{replica.ip}:8443", **own}
    labels.setdefault("container", "kube-rbac-proxy-main")
    return labels


def _split(start: float, end: float, cuts: Iterable[float]) -> list[tuple[float, float]]:
    points = [start, *sorted(c for c in set(cuts) if start < c < end), end]
    return [(a, b) for a, b in itertools.pairwise(points) if b > a]


def _pod_cgroup_path(scenario: Scenario, pod: Pod) -> str:
    # kubelet cgroup names: systemd driver (containerd, CRI-O here) escapes '-' in the uid as '_';
    # cgroupfs (cri-dockerd here) keeps it. Pods with requests and no limits are Burstable.
    if scenario.runtime == "docker":
        return f"/kubepods/burstable/pod{pod.uid}"
    uid = pod.uid.replace("-", "_")
    return f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"


def _runtime_labels(scenario: Scenario, pod: Pod, container: str | None, cid: str, attempt: int, image: str) -> dict:
    """`id`, `name`, `image`, `container` of a container or sandbox (container None) under the runtime.

    containerd: name = the container id (first alias), sandbox without container label.
    CRI-O / cri-dockerd: name = `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`, sandbox `POD`.
    """
    base = _pod_cgroup_path(scenario, pod)
    if scenario.runtime == "containerd":
        labels = {"id": f"{base}/cri-containerd-{cid}.scope", "name": cid, "image": image}
        if container is not None:
            labels["container"] = container
        return labels
    shown = "POD" if container is None else container
    name = f"k8s_{shown}_{pod.name}_{pod.namespace}_{pod.uid}_{attempt}"
    path = f"{base}/crio-{cid}.scope" if scenario.runtime == "crio" else f"{base}/{cid}"
    return {"id": path, "name": name, "image": image, "container": shown}


def _node_cgroups(scenario: Scenario, node: Node) -> Iterator[_Cgroup]:
    resets = tuple(r.timestamp() for r in node.reboots)
    pods = [p for p in scenario.pods if p.node == node.name]
    for pod in pods:
        start, end = scenario.pod_span(pod)
        if end <= start:
            continue
        own = {"namespace": pod.namespace, "pod": pod.name}
        nan = tuple(
            (w.start.timestamp(), w.end.timestamp())
            for w in scenario.nan
            if w.metric == "container_memory_working_set_bytes" and (w.namespace, w.name) == (pod.namespace, pod.name)
        )
        for container in pod.containers:
            cuts = [*(r.timestamp() for r in container.restarts), *resets]
            for attempt, (a, b) in enumerate(_split(start, end, cuts)):
                cid = container_id(scenario.name, pod.uid, container.name, a)
                labels = {**own, **_runtime_labels(scenario, pod, container.name, cid, attempt, container.image)}
                yield _Cgroup(labels, a, b, container.cpu_cores, container.memory_bytes, nan_memory=nan)
        for attempt, (a, b) in enumerate(_split(start, end, resets)):
            sid = container_id(scenario.name, pod.uid, "sandbox", a)
            labels = {**own, **_runtime_labels(scenario, pod, None, sid, attempt, PAUSE_IMAGE)}
            if pod.host_network:  # the host's network namespace: every host interface
                network = {
                    "eth0": node.host_egress_bytes_per_second * 0.75,
                    "eth1": node.host_egress_bytes_per_second * 0.25,
                }
            else:
                network = {"eth0": pod.egress_bytes_per_second}
            yield _Cgroup(
                labels, a, b, SANDBOX_CPU_CORES, SANDBOX_MEMORY_BYTES, network=network, host_counters=pod.host_network
            )
        # The pod-level cgroup keeps its labels across a reboot: its counters reset in the same series.
        yield _Cgroup(
            {**own, "id": _pod_cgroup_path(scenario, pod)},
            start,
            end,
            sum(c.cpu_cores for c in pod.containers) + SANDBOX_CPU_CORES,
            sum(c.memory_bytes for c in pod.containers) + SANDBOX_MEMORY_BYTES,
            resets=resets,
        )
    pod_cpu = sum(c.cpu_cores for p in pods for c in p.containers)
    pod_memory = sum(c.memory_bytes for p in pods for c in p.containers)
    host = {"eth0": node.host_egress_bytes_per_second * 0.75, "eth1": node.host_egress_bytes_per_second * 0.25}
    t0, t1 = scenario.t0, scenario.t1
    yield _Cgroup(
        {"id": "/"},
        t0,
        t1,
        pod_cpu + node.system_cpu_cores,
        pod_memory + node.system_memory_bytes,
        network=host,
        resets=resets,
        host_counters=True,
    )
    for service, share in (("kubelet.service", 0.6), (RUNTIME_SERVICE[scenario.runtime], 0.4)):
        yield _Cgroup(
            {"id": f"/system.slice/{service}"},
            t0,
            t1,
            node.system_cpu_cores * share,
            node.system_memory_bytes * share,
            resets=resets,
        )


def _counter(times: np.ndarray, rate: float, origins: np.ndarray) -> np.ndarray:
    """rate × seconds since the latest origin at or before each time (origins sorted)."""
    since = origins[np.searchsorted(origins, times, side="right") - 1]
    return rate * (times - since)


def _cadvisor_series(scenario: Scenario, metric: str) -> Iterator[Series]:
    for node in scenario.nodes:
        boots = np.array([scenario.t0 - HOST_BOOT_AGE, *sorted(r.timestamp() for r in node.reboots)])
        for job in scenario.kubelet_jobs:
            grid = scenario.kubelet_grid(job, node, "cadvisor")
            target = _target_labels(job, node, "cadvisor")
            for cgroup in _node_cgroups(scenario, node):
                times = grid[(grid >= cgroup.start) & (grid < cgroup.end)]
                if not len(times):
                    continue
                labels = {"cluster": scenario.name, **target, **cgroup.labels}
                origins = np.array([cgroup.start, *cgroup.resets])
                origins = np.sort(origins[origins >= cgroup.start])
                if metric == "container_cpu_usage_seconds_total":
                    yield labels, (times, np.round(_counter(times, cgroup.cpu_cores, origins), 6))
                elif metric == "container_memory_working_set_bytes":
                    values = np.full_like(times, cgroup.memory_bytes)
                    for a, b in cgroup.nan_memory:
                        values[(times >= a) & (times < b)] = np.nan
                    yield labels, (times, values)
                elif cgroup.network is not None:
                    counted_from = boots if cgroup.host_counters else origins
                    for interface, rate in sorted(cgroup.network.items()):
                        values = np.round(_counter(times, rate, counted_from))
                        yield {**labels, "interface": interface}, (times, values)


def _volume_series(scenario: Scenario) -> Iterator[Series]:
    for claim in scenario.claims:
        begin, finish = _claim_span(scenario, claim)
        nan = [
            (w.start.timestamp(), w.end.timestamp())
            for w in scenario.nan
            if w.metric == "kubelet_volume_stats_used_bytes" and (w.namespace, w.name) == (claim.namespace, claim.name)
        ]
        for mount in claim.mounts:
            node = scenario.node(mount.node)
            a, b = max(begin, scenario._ts(mount.start, begin)), min(finish, scenario._ts(mount.end, finish))
            for job in scenario.kubelet_jobs:
                grid = scenario.kubelet_grid(job, node, "metrics")
                times = grid[(grid >= a) & (grid < b)]
                if not len(times):
                    continue
                values = np.full_like(times, claim.used_bytes)
                for x, y in nan:
                    values[(times >= x) & (times < y)] = np.nan
                labels = {
                    "cluster": scenario.name,
                    **_target_labels(job, node, "metrics"),
                    "namespace": claim.namespace,
                    "persistentvolumeclaim": claim.name,
                }
                yield labels, (times, values)


def _ksm(scenario: Scenario, metric: str, build: Callable[[np.ndarray], Iterator[tuple[dict, np.ndarray, np.ndarray]]]):
    """Series of one kube-state-metrics family from every replica (nothing if the family is not exported)."""

    def series() -> Iterator[Series]:
        if metric in scenario.ksm_missing:
            return
        for replica in scenario.ksm_replicas:
            grid = scenario.grid(replica.interval, replica.phase)
            for own, times, values in build(grid):
                if len(times):
                    yield {"cluster": scenario.name, **_ksm_labels(replica, own)}, (times, values)

    return series


def _within(grid: np.ndarray, a: float, b: float) -> np.ndarray:
    return grid[(grid >= a) & (grid < b)]


def _pod_ip(pod: Pod, scenario: Scenario) -> str:
    if pod.host_network:
        return scenario.node(pod.node).ip
    number = int(pod.uid[:6], 16)
    return f"10.244.{number % 250 + 1}.{number // 250 % 250 + 2}"


def _pod_info(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/pod.go createPodInfoFamilyGenerator; empty values (no node yet) are absent labels.
    for pod in scenario.pods:
        api_from, scheduled, end = scenario.pod_api_span(pod)
        start, _ = scenario.pod_span(pod)
        kind, owner = pod.owner
        base = {
            "namespace": pod.namespace,
            "pod": pod.name,
            "uid": pod.uid,
            "created_by_kind": kind,
            "created_by_name": owner or pod.name.rsplit("-", 1)[0],
            "priority_class": "system-node-critical" if pod.host_network else "",
            "host_network": "true" if pod.host_network else "false",
        }
        node = scenario.node(pod.node)
        for a, b, extra in (
            (api_from, scheduled, {}),
            (scheduled, start, {"node": node.name, "host_ip": node.ip}),
            (start, end, {"node": node.name, "host_ip": node.ip, "pod_ip": _pod_ip(pod, scenario)}),
        ):
            times = _within(grid, a, b)
            labels = {k: v for k, v in {**base, **extra}.items() if v}
            yield labels, times, np.ones_like(times)


def _pod_phase(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/pod.go createPodStatusPhaseFamilyGenerator: one series per phase, 1 for the current one.
    for pod in scenario.pods:
        api_from, _, end = scenario.pod_api_span(pod)
        start, _ = scenario.pod_span(pod)
        times = _within(grid, api_from, end)
        running = (times >= start).astype(np.float64)
        for phase, values in (
            ("Pending", 1.0 - running),
            ("Succeeded", 0.0 * running),
            ("Failed", 0.0 * running),
            ("Unknown", 0.0 * running),
            ("Running", running),
        ):
            yield {"namespace": pod.namespace, "pod": pod.name, "uid": pod.uid, "phase": phase}, times, values


def _pod_requests(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/pod.go createPodContainerResourceRequestsFamilyGenerator: node is empty until scheduled
    # (pkg/app/server_test.go shows node="" for an unscheduled pod), so the series changes when it is.
    for pod in scenario.pods:
        api_from, scheduled, end = scenario.pod_api_span(pod)
        for container in pod.containers:
            for resource, unit, value in (
                ("cpu", "core", container.cpu_request),
                ("memory", "byte", container.memory_request),
                ("nvidia_com_gpu", "integer", float(container.gpu_request)),
            ):
                if not value:
                    continue
                own = {
                    "namespace": pod.namespace,
                    "pod": pod.name,
                    "uid": pod.uid,
                    "container": container.name,
                    "resource": resource,
                    "unit": unit,
                }
                before = _within(grid, api_from, scheduled)
                yield own, before, np.full_like(before, value)
                after = _within(grid, scheduled, end)
                yield {**own, "node": pod.node}, after, np.full_like(after, value)


def _node_info(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/node.go createNodeInfoFamilyGenerator.
    for node in scenario.nodes:
        own = {
            "node": node.name,
            "kernel_version": "6.1.0-18-amd64",
            "os_image": "Debian GNU/Linux 12 (bookworm)",
            "container_runtime_version": RUNTIME_VERSION[scenario.runtime],
            "kubelet_version": "v1.31.2",
            "kubeproxy_version": "v1.31.2",
            "internal_ip": node.ip,
            "pod_cidr": f"10.244.{node.ip.rsplit('.', 1)[1]}.0/24",
            "system_uuid": _uid(f"node/{node.name}"),
        }
        yield own, grid, np.ones_like(grid)


def _claim_series(what: str) -> Callable[[Scenario, np.ndarray], Iterator[tuple[dict, np.ndarray, np.ndarray]]]:
    # internal/store/persistentvolumeclaim.go: _info (storageclass, volumename, volumemode),
    # _resource_requests_storage_bytes (spec.resources.requests.storage), _access_mode.
    def build(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
        for claim in scenario.claims:
            begin, finish = _claim_span(scenario, claim)
            own = {"namespace": claim.namespace, "persistentvolumeclaim": claim.name}
            times = _within(grid, begin, finish)
            if what == "info":
                volume = f"pvc-{_uid(f'pvc/{claim.namespace}/{claim.name}')}"
                labels = {**own, "storageclass": claim.storage_class, "volumename": volume, "volumemode": "Filesystem"}
                yield labels, times, np.ones_like(times)
            elif what == "access_mode":
                yield {**own, "access_mode": claim.access_mode}, times, np.ones_like(times)
            else:
                values = np.zeros_like(times)
                for a, b, value in _pieces(claim.requests, begin, finish):
                    values[(times >= a) & (times < b)] = float(value)
                yield own, times, values

    return build


def _quota_series(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/resourcequota.go: one series per resource and type (hard, used).
    for quota in scenario.quotas:
        names = sorted({name for _, hard in quota.hard for name in hard})
        pieces = _pieces(quota.hard, scenario.t0, scenario.t1)
        for name in names:
            for kind, factor in (("hard", 1.0), ("used", 0.5)):
                times = grid.copy()
                values = np.full_like(times, np.nan)
                for a, b, hard in pieces:
                    if name in hard:
                        values[(times >= a) & (times < b)] = hard[name] * factor
                keep = ~np.isnan(values)
                own = {"namespace": quota.namespace, "resourcequota": quota.name, "resource": name, "type": kind}
                yield own, times[keep], values[keep]


def _service_series(scenario: Scenario, grid: np.ndarray) -> Iterator[tuple[dict, np.ndarray, np.ndarray]]:
    # internal/store/service.go createServiceSpecTypeFamilyGenerator.
    for service in scenario.services:
        begin, finish = scenario._ts(service.start, scenario.t0), scenario._ts(service.end, scenario.t1)
        times = _within(grid, begin, finish)
        own = {
            "namespace": service.namespace,
            "service": service.name,
            "uid": _uid(f"svc/{service.namespace}/{service.name}"),
            "type": service.type,
        }
        yield own, times, np.ones_like(times)


def _families(scenario: Scenario) -> list[tuple[str, str, str, Callable[[], Iterator[Series]]]]:
    def cadvisor(metric: str) -> Callable[[], Iterator[Series]]:
        return lambda: _cadvisor_series(scenario, metric)

    def ksm(metric: str, build: Callable[[Scenario, np.ndarray], Iterator]) -> Callable[[], Iterator[Series]]:
        return _ksm(scenario, metric, lambda grid: build(scenario, grid))

    return [
        (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
            cadvisor("container_cpu_usage_seconds_total"),
        ),
        (
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set in bytes.",
            cadvisor("container_memory_working_set_bytes"),
        ),
        (
            "container_network_transmit_bytes_total",
            "counter",
            "Cumulative count of bytes transmitted.",
            cadvisor("container_network_transmit_bytes_total"),
        ),
        (
            "kubelet_volume_stats_used_bytes",
            "gauge",
            "Number of used bytes in the volume",
            lambda: _volume_series(scenario),
        ),
        ("kube_node_info", "gauge", "Information about a cluster node.", ksm("kube_node_info", _node_info)),
        ("kube_pod_info", "gauge", "Information about pod.", ksm("kube_pod_info", _pod_info)),
        ("kube_pod_status_phase", "gauge", "The pods current phase.", ksm("kube_pod_status_phase", _pod_phase)),
        (
            "kube_pod_container_resource_requests",
            "gauge",
            "The number of requested request resource by a container. It is recommended to use the "
            "kube_pod_resource_requests metric exposed by kube-scheduler instead, as it is more precise.",
            ksm("kube_pod_container_resource_requests", _pod_requests),
        ),
        (
            "kube_persistentvolumeclaim_info",
            "gauge",
            "Information about persistent volume claim.",
            ksm("kube_persistentvolumeclaim_info", _claim_series("info")),
        ),
        (
            "kube_persistentvolumeclaim_access_mode",
            "gauge",
            "The access mode(s) specified by the persistent volume claim.",
            ksm("kube_persistentvolumeclaim_access_mode", _claim_series("access_mode")),
        ),
        (
            "kube_persistentvolumeclaim_resource_requests_storage_bytes",
            "gauge",
            "The capacity of storage requested by the persistent volume claim.",
            ksm("kube_persistentvolumeclaim_resource_requests_storage_bytes", _claim_series("requests")),
        ),
        ("kube_resourcequota", "gauge", "Information about resource quota.", ksm("kube_resourcequota", _quota_series)),
        ("kube_service_spec_type", "gauge", "Type about service.", ksm("kube_service_spec_type", _service_series)),
    ]


def write_openmetrics(path: Path | str, scenarios: Sequence[Scenario]) -> OpenMetricsWriter:
    """Write several scenarios (one `cluster` label each) into one OpenMetrics file for promtool."""
    with OpenMetricsWriter(path) as writer:
        for families in zip(*(s.families() for s in scenarios), strict=True):
            for name, kind, help_text, series in families:
                for labels, samples in series():
                    writer.write_series(name, kind, help_text, labels, samples)
    return writer


# ---------------------------------------------------------------- closed-form truth

Key = tuple[dt.datetime, str, str, str]


def _overlap(start: float, end: float, hour: float) -> float:
    return max(0.0, min(end, hour + 3600.0) - max(start, hour))


def _hours(scenario: Scenario) -> list[float]:
    return [float(h) for h in np.arange(scenario.t0, scenario.t1, 3600.0)]


def _hour_key(hour: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(hour, UTC)


def _pieces(changes: Sequence[tuple[dt.datetime | None, V]], start: float, end: float) -> list[tuple[float, float, V]]:
    """Piecewise-constant value over [start, end) from (from, value) changes (first from None = start)."""
    points = [(start if t is None else max(start, t.timestamp()), v) for t, v in changes]
    out = []
    for index, (begin, value) in enumerate(points):
        finish = points[index + 1][0] if index + 1 < len(points) else end
        if finish > begin:
            out.append((begin, min(finish, end), value))
    return out


def _claim_span(scenario: Scenario, claim: Claim) -> tuple[float, float]:
    return scenario._ts(claim.start, scenario.t0), scenario._ts(claim.end, scenario.t1)


def _mount_windows(scenario: Scenario, claim: Claim) -> list[tuple[float, float]]:
    """Merged [from, to) windows in which some node's kubelet reports the claim."""
    begin, finish = _claim_span(scenario, claim)
    windows = sorted(
        (max(begin, scenario._ts(m.start, begin)), min(finish, scenario._ts(m.end, finish))) for m in claim.mounts
    )
    merged: list[list[float]] = []
    for a, b in windows:
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def storage_used_pieces(scenario: Scenario, claim: Claim) -> list[tuple[float, float, float, bool]]:
    """(from, to, bytes used, carried) over the claim's life.

    Mounted: its used bytes. Unmounted after having been observed: carried forward from the last
    observation, never above the request at that time. Unmounted and never observed yet: 0.
    """
    begin, finish = _claim_span(scenario, claim)
    mounted = _mount_windows(scenario, claim)
    requests = _pieces(claim.requests, begin, finish)
    cuts = sorted({begin, finish, *(a for a, _ in mounted), *(b for _, b in mounted), *(a for a, _, _ in requests)})
    out = []
    for a, b in itertools.pairwise(cuts):
        if b <= a or a < begin or b > finish:
            continue
        request = next(float(v) for s, e, v in requests if s <= a < e)
        if any(m0 <= a < m1 for m0, m1 in mounted):
            out.append((a, b, claim.used_bytes, False))
        elif any(m1 <= a for _, m1 in mounted):
            out.append((a, b, min(claim.used_bytes, request), True))
        else:
            out.append((a, b, 0.0, False))
    return out


def _quota_hard(scenario: Scenario, tier_of: Mapping[str, str]) -> dict[tuple[str, str, str], list]:
    """(namespace, resource, tier) → [(from, to, value in usage units)] of every quota object."""
    out: dict[tuple[str, str, str], list] = {}
    for quota in scenario.quotas:
        for begin, finish, hard in _pieces(quota.hard, scenario.t0, scenario.t1):
            for name, value in hard.items():
                if name.endswith(STORAGE_QUOTA_SUFFIX):
                    storage_class = name[: -len(STORAGE_QUOTA_SUFFIX)]
                    key = (quota.namespace, "storage", tier_of.get(storage_class, storage_class))
                    factor = 1.0 / GIB
                elif name in QUOTA_RESOURCES:
                    resource, factor = QUOTA_RESOURCES[name]
                    key = (quota.namespace, resource, "")
                else:
                    continue
                out.setdefault(key, []).append((quota.name, begin, finish, value * factor))
    return out


def expected_usage(scenario: Scenario, tier_of: Mapping[str, str]) -> dict[Key, dict[str, float]]:
    """Closed-form hourly usage: {(hour, namespace, resource, tier): {used, requested, allocated}}.

    Units as the usage frame (core-hours, GiB-hours, GiB, gpu-hours, lb-hours, pod-hours); every
    hour of the period, gaps included (tests skip `expected_gaps`). Conventions:

    * cpu / memory: containers only, never the sandbox, the pod cgroup, the root cgroup or system
      slices; every container instance from its start to its end (restarts and reboots cost nothing:
      they happen on whole minutes, half-way between cAdvisor scrapes, where extrapolation is exact).
    * egress: bytes sent by pods that are not hostNetwork (their own network namespace).
    * requests (cpu, memory, nvidia_com_gpu → gpu): running pods only, for the time they run, once per
      container whatever `node` label, job or kube-state-metrics replica; gpu used = gpu requested.
    * pods: running pod-hours. load_balancer: hours a LoadBalancer Service exists (used = requested).
    * storage used per claim: see `storage_used_pieces` (one value per claim, never summed over the
      nodes mounting it; carried forward while unmounted); requested: the claim's size over time.
    * allocated: hard quota × time, the smallest of the namespace's quota objects at each moment.
    """
    table: dict[Key, dict[str, float]] = {}
    hours = _hours(scenario)

    def add(hour: float, namespace: str, resource: str, tier: str, column: str, amount: float) -> None:
        row = table.setdefault((_hour_key(hour), namespace, resource, tier), {})
        row[column] = row.get(column, 0.0) + amount

    for pod in scenario.pods:
        start, end = scenario.pod_span(pod)
        for hour in hours:
            alive = _overlap(start, end, hour)
            if not alive:
                continue
            share = alive / 3600.0
            add(hour, pod.namespace, "pods", "", "used", share)
            if not pod.host_network:
                add(hour, pod.namespace, "egress", "", "used", pod.egress_bytes_per_second * alive / GIB)
            for c in pod.containers:
                add(hour, pod.namespace, "cpu", "", "used", c.cpu_cores * share)
                add(hour, pod.namespace, "cpu", "", "requested", c.cpu_request * share)
                add(hour, pod.namespace, "memory", "", "used", c.memory_bytes / GIB * share)
                add(hour, pod.namespace, "memory", "", "requested", c.memory_request / GIB * share)
                if c.gpu_request:
                    add(hour, pod.namespace, "gpu", "", "used", c.gpu_request * share)
                    add(hour, pod.namespace, "gpu", "", "requested", c.gpu_request * share)
    for claim in scenario.claims:
        tier = tier_of.get(claim.storage_class, claim.storage_class)
        begin, finish = _claim_span(scenario, claim)
        used = storage_used_pieces(scenario, claim)
        requested = _pieces(claim.requests, begin, finish)
        for hour in hours:
            if not _overlap(begin, finish, hour):
                continue
            add(hour, claim.namespace, "storage", tier, "used", 0.0)
            for a, b, value, _ in used:
                add(hour, claim.namespace, "storage", tier, "used", value / GIB * _overlap(a, b, hour) / 3600)
            for a, b, value in requested:
                add(
                    hour,
                    claim.namespace,
                    "storage",
                    tier,
                    "requested",
                    float(value) / GIB * _overlap(a, b, hour) / 3600,
                )
    for service in scenario.services:
        if service.type != "LoadBalancer":
            continue
        begin, finish = scenario._ts(service.start, scenario.t0), scenario._ts(service.end, scenario.t1)
        for hour in hours:
            share = _overlap(begin, finish, hour) / 3600
            if share:
                add(hour, service.namespace, "load_balancer", "", "used", share)
                add(hour, service.namespace, "load_balancer", "", "requested", share)
    for (namespace, resource, tier), pieces in _quota_hard(scenario, tier_of).items():
        cuts = sorted({p[1] for p in pieces} | {p[2] for p in pieces})
        for a, b in itertools.pairwise(cuts):
            active = [value for _, s, e, value in pieces if s <= a < e]
            if not active:
                continue
            for hour in hours:
                share = _overlap(a, b, hour) / 3600
                if share:
                    add(hour, namespace, resource, tier, "allocated", min(active) * share)
    for row in table.values():
        for column in ("used", "requested", "allocated"):
            row.setdefault(column, math.nan)
    return table


def expected_claims(scenario: Scenario) -> dict[tuple[dt.datetime, str, str], float]:
    """Used GiB-hours per (hour, namespace, claim) while the claim exists (see `storage_used_pieces`)."""
    out: dict[tuple[dt.datetime, str, str], float] = {}
    for claim in scenario.claims:
        begin, finish = _claim_span(scenario, claim)
        pieces = storage_used_pieces(scenario, claim)
        for hour in _hours(scenario):
            if _overlap(begin, finish, hour):
                used = sum(value / GIB * _overlap(a, b, hour) / 3600 for a, b, value, _ in pieces)
                out[(_hour_key(hour), claim.namespace, claim.name)] = used
    return out


def expected_gaps(scenario: Scenario) -> set[tuple[dt.datetime, str, str]]:
    """(hour, namespace, source) whose values are unknown: a scrape gap, or a silent node hiding the
    namespace's running pods (cAdvisor) or mounted claims (volume statistics) for part of the hour.
    The collection must report these with coverage < 1, never bill them as zero."""
    out: set[tuple[dt.datetime, str, str]] = set()
    namespaces = scenario_namespaces(scenario)
    for hour in _hours(scenario):
        for begin, finish in scenario.gaps:
            if _overlap(begin.timestamp(), finish.timestamp(), hour):
                out |= {
                    (_hour_key(hour), ns, source) for ns in namespaces for source in (CADVISOR, KUBE_STATE, KUBELET)
                }
        for node in scenario.nodes:
            for begin, finish in node.silent:
                b, f = begin.timestamp(), finish.timestamp()
                if not _overlap(b, f, hour):
                    continue
                for pod in scenario.pods:
                    start, end = scenario.pod_span(pod)
                    if pod.node == node.name and _overlap(max(b, start), min(f, end), hour):
                        out.add((_hour_key(hour), pod.namespace, CADVISOR))
                for claim in scenario.claims:
                    for mount in claim.mounts:
                        cb, cf = _claim_span(scenario, claim)
                        mb, mf = scenario._ts(mount.start, cb), scenario._ts(mount.end, cf)
                        if mount.node == node.name and _overlap(max(b, mb), min(f, mf), hour):
                            out.add((_hour_key(hour), claim.namespace, KUBELET))
    return out


def expected_nan(scenario: Scenario) -> set[tuple[dt.datetime, str, str]]:
    """(hour, namespace, source) with NaN samples. The truth does not change (the gauges are constant), but
    the collection cannot tell a NaN from a failed measurement: it leaves these hours unknown (coverage 0),
    marked on the invoice, never billed as 0."""
    out = set()
    for window in scenario.nan:
        for hour in _hours(scenario):
            if _overlap(window.start.timestamp(), window.end.timestamp(), hour):
                out.add((_hour_key(hour), window.namespace, NAN_METRICS[window.metric]))
    return out


def expected_not_measured(scenario: Scenario) -> set[str]:
    """Namespaces with hostNetwork pods: their network cannot be measured per pod."""
    return {pod.namespace for pod in scenario.pods if pod.host_network}


def expected_carried(scenario: Scenario) -> set[tuple[dt.datetime, str, str]]:
    """(hour, namespace, claim) whose storage use is carried forward from an earlier observation."""
    out = set()
    for claim in scenario.claims:
        for a, b, _, carried in storage_used_pieces(scenario, claim):
            if carried:
                out |= {(_hour_key(h), claim.namespace, claim.name) for h in _hours(scenario) if _overlap(a, b, h)}
    return out


def expected_unmeasured_claims(scenario: Scenario) -> set[tuple[str, str]]:
    """(namespace, claim) never reported by any kubelet in the period: their use counts 0 and is flagged."""
    return {(c.namespace, c.name) for c in scenario.claims if not _mount_windows(scenario, c)}


def scenario_namespaces(scenario: Scenario) -> set[str]:
    return (
        {p.namespace for p in scenario.pods}
        | {c.namespace for c in scenario.claims}
        | {q.namespace for q in scenario.quotas}
        | {s.namespace for s in scenario.services}
    )


def strict_rows(scenario: Scenario) -> set[tuple[dt.datetime, str]]:
    """(hour, namespace) compared within 0.1 %: every pod of the namespace alive in that hour was
    alive at least one hour in all (a pod of a few minutes has too few scrapes for a per-hour bound;
    the whole-period bound of 1 % covers it)."""
    out = set()
    short = {(p.namespace, p.name) for p in scenario.pods if scenario.pod_span(p)[1] - scenario.pod_span(p)[0] < 3600}
    for hour in _hours(scenario):
        for namespace in scenario_namespaces(scenario):
            alive_short = any(
                (p.namespace, p.name) in short and _overlap(*scenario.pod_span(p), hour)
                for p in scenario.pods
                if p.namespace == namespace
            )
            if not alive_short:
                out.add((_hour_key(hour), namespace))
    return out


# ---------------------------------------------------------------- named scenarios

SINGLE_DAY = dt.date(2026, 10, 5)
CLUSTER_DAY = dt.date(2026, 10, 1)


def at(text: str, day: dt.date = SINGLE_DAY, plus_days: int = 0) -> dt.datetime:
    """A UTC time `HH:MM` on `day` (+ `plus_days`)."""
    hour, minute = (int(x) for x in text.split(":"))
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC) + dt.timedelta(days=plus_days)


def _nodes(*names: str) -> list[Node]:
    ips = {"srv-gen-01": "10.0.1.11", "srv-gen-02": "10.0.1.12", "srv-bat-01": "10.0.2.21", "srv-bat-02": "10.0.2.22"}
    return [Node(name, ips[name]) for name in names]


def _api(
    name: str = "api-7d9f8c6b5-x2lqp", node: str = "srv-gen-01", restarts: tuple[dt.datetime, ...] = (), **kw: Any
) -> Pod:
    app = Container(
        "app",
        cpu_cores=1.5,
        memory_bytes=2 * GIB,
        cpu_request=2,
        memory_request=4 * GIB,
        image="registry.example.com/di/api:3.2.1",
        restarts=restarts,
    )
    sidecar = Container(
        "envoy",
        cpu_cores=0.25,
        memory_bytes=256 * MIB,
        cpu_request=0.5,
        memory_request=512 * MIB,
        image="docker.io/envoyproxy/envoy:v1.31.2",
    )
    return Pod("di-api", name, node, (app, sidecar), egress_bytes_per_second=1 * MIB, **kw)


def _coredns(node: str = "srv-gen-02") -> Pod:
    dns = Container(
        "coredns",
        cpu_cores=0.1,
        memory_bytes=70 * MIB,
        cpu_request=0.1,
        memory_request=70 * MIB,
        image="registry.k8s.io/coredns/coredns:v1.11.3",
    )
    return Pod("kube-system", "coredns-6f6b679f8f-9kx7m", node, (dns,), egress_bytes_per_second=64 * 1024)


def _web(name: str, node: str, **kw: Any) -> Pod:
    web = Container(
        "web",
        cpu_cores=1.0,
        memory_bytes=1 * GIB,
        cpu_request=1,
        memory_request=1 * GIB,
        image="registry.example.com/cs/miniapp-web:2.4.0",
    )
    return Pod("cs-miniapp", name, node, (web,), egress_bytes_per_second=MIB / 2, **kw)


def _quotas(day: dt.date = SINGLE_DAY) -> list[Quota]:
    storage = STORAGE_QUOTA_SUFFIX
    return [
        Quota("di-api", "di-api", ((None, {"requests.cpu": 24, "requests.memory": 96 * GIB, "pods": 120}),)),
        Quota(
            "cs-miniapp",
            "cs-miniapp",
            (
                (
                    None,
                    {
                        "requests.cpu": 32,
                        "requests.memory": 128 * GIB,
                        f"pool-hot{storage}": 1024 * GIB,
                        "services.loadbalancers": 2,
                    },
                ),
            ),
        ),
    ]


def _single(name: str, doc: str, planted: Sequence[str], **kw: Any) -> Scenario:
    """Six hours (2026-10-05 00:00–06:00) of a small cluster on containerd, plus what `kw` changes."""
    settings: dict[str, Any] = {
        "nodes": _nodes("srv-gen-01", "srv-gen-02"),
        "pods": [_api(), _coredns(), _web("web-5c9d7b8f4-h8s2k", "srv-gen-02")],
        "quotas": _quotas(),
    }
    settings.update(kw)
    return Scenario(
        name=name,
        start=at("00:00"),
        end=at("06:00"),
        planted_defects=("no-namespace-series", *planted),
        doc=doc,
        **settings,
    )


def root_cgroups() -> Scenario:
    """Phenomenon 1: the root cgroup (`id="/"`, every host interface) and system slices have series
    without a namespace. Truth: they never reach the frame; only the pods' use is counted."""
    return _single("root-cgroups", root_cgroups.__doc__ or "", ())


def host_network() -> Scenario:
    """Phenomenon 2: hostNetwork pods (kube-proxy on every node, an ingress controller with
    hostNetwork) report every host interface on their sandbox. Truth: they contribute no egress
    (kube-system and ingress-nginx are "not measured"); the ingress default backend, which has its
    own network namespace, still counts."""
    proxy = [
        Pod(
            "kube-system",
            f"kube-proxy-{suffix}",
            node,
            (Container("kube-proxy", 0.05, 40 * MIB, 0.05, 50 * MIB, image="registry.k8s.io/kube-proxy:v1.31.2"),),
            host_network=True,
            owner=("DaemonSet", "kube-proxy"),
        )
        for suffix, node in (("7xk2p", "srv-gen-01"), ("q9d4s", "srv-gen-02"))
    ]
    ingress = [
        Pod(
            "ingress-nginx",
            "ingress-nginx-controller-b8c7d6f5-2mzrt",
            "srv-gen-01",
            (
                Container(
                    "controller",
                    0.5,
                    512 * MIB,
                    0.5,
                    512 * MIB,
                    image="registry.k8s.io/ingress-nginx/controller:v1.11.3",
                ),
            ),
            host_network=True,
            egress_bytes_per_second=4 * MIB,  # its real traffic: not measurable per pod
        ),
        Pod(
            "ingress-nginx",
            "default-backend-6b8f9c7d5-wq4lx",
            "srv-gen-02",
            (Container("backend", 0.01, 16 * MIB, 0.01, 20 * MIB, image="registry.k8s.io/defaultbackend-amd64:1.5"),),
            egress_bytes_per_second=32 * 1024,
        ),
    ]
    base = [_api(), _coredns(), _web("web-5c9d7b8f4-h8s2k", "srv-gen-02")]
    return _single("host-network", host_network.__doc__ or "", ("host-network-pods",), pods=base + proxy + ingress)


def unscheduled_requests() -> Scenario:
    """Phenomenon 3: a GPU batch pod is Pending without a node from 01:00, gets node srv-bat-01 at
    02:10 (its request series changes from no `node` label to `node="srv-bat-01"`), pulls its image
    and runs from 02:20 to 05:40. Truth: its requests count once, only while it runs (2:20–5:40)."""
    worker = Container(
        "worker",
        cpu_cores=4,
        memory_bytes=16 * GIB,
        cpu_request=4,
        memory_request=16 * GIB,
        gpu_request=1,
        image="registry.example.com/di/etl:5.0.0",
    )
    batch = Pod(
        "di-batch",
        "etl-nightly-29183520-7vq2n",
        "srv-bat-01",
        (worker,),
        pending_from=at("01:00"),
        scheduled_at=at("02:10"),
        start=at("02:20"),
        end=at("05:40"),
        owner=("Job", "etl-nightly-29183520"),
    )
    base = [_api(), _coredns(), _web("web-5c9d7b8f4-h8s2k", "srv-gen-02")]
    return _single(
        "unscheduled-requests",
        unscheduled_requests.__doc__ or "",
        (),
        nodes=_nodes("srv-gen-01", "srv-gen-02", "srv-bat-01"),
        pods=[*base, batch],
    )


def rwx_claim() -> Scenario:
    """Phenomenon 4: a ReadWriteMany claim mounted by two web pods on two nodes is reported by both
    kubelets. Truth: its used bytes once (max over nodes), 300 GiB of 500 GiB."""
    shared = Claim(
        "cs-miniapp",
        "shared-media",
        "pool-archive",
        ((None, 500 * GIB),),
        used_bytes=300 * GIB,
        mounts=(Mount("srv-gen-01"), Mount("srv-gen-02")),
        access_mode="ReadWriteMany",
    )
    data = Claim("cs-miniapp", "data-web-0", "pool-hot", ((None, 20 * GIB),), 10 * GIB, mounts=(Mount("srv-gen-02"),))
    pods = [_api(), _coredns(), _web("web-5c9d7b8f4-h8s2k", "srv-gen-02"), _web("web-5c9d7b8f4-p3n7d", "srv-gen-01")]
    return _single("rwx-claim", rwx_claim.__doc__ or "", (), pods=pods, claims=[shared, data])


def unmounted_claim() -> Scenario:
    """Phenomenon 5: a claim mounted 00:00–02:00, unmounted 02:00–04:00 (its pod scaled to zero),
    remounted 04:00–06:00; another claim is never mounted. Truth: the first claim's 40 GiB are
    carried forward while unmounted (marked carried); the second counts 0 and is listed unmeasured."""
    reports = Claim(
        "di-api",
        "reports",
        "pool-hot",
        ((None, 100 * GIB),),
        40 * GIB,
        mounts=(Mount("srv-gen-01", end=at("02:00")), Mount("srv-gen-01", start=at("04:00"))),
    )
    spare = Claim("di-api", "spare", "pool-cold", ((None, 200 * GIB),), 50 * GIB)
    return _single("unmounted-claim", unmounted_claim.__doc__ or "", ("unmounted-claims",), claims=[reports, spare])


def crio_sandbox() -> Scenario:
    """Phenomenon 6 under CRI-O: sandboxes are labelled `container="POD"` and carry the only network
    series of each pod. Truth: egress counted from them; their CPU and memory never counted."""
    return _single("crio-sandbox", crio_sandbox.__doc__ or "", ("sandbox-container-pod",), runtime="crio")


def dockerd_sandbox() -> Scenario:
    """Phenomenon 6 under cri-dockerd (cgroupfs driver, names `k8s_<container>_<pod>_…`): as CRI-O."""
    return _single("dockerd-sandbox", dockerd_sandbox.__doc__ or "", ("sandbox-container-pod",), runtime="docker")


def duplicate_scrapes() -> Scenario:
    """Phenomenon 7: the kubelets are scraped by the kube-prometheus job and by a second
    `kubernetes-nodes-cadvisor` job (other labels, other phase), and two kube-state-metrics replicas
    are both scraped. Truth: nothing doubles."""
    return _single(
        "duplicate-scrapes",
        duplicate_scrapes.__doc__ or "",
        ("duplicate-targets",),
        kubelet_jobs=(KubeletJob(), KubeletJob("kubernetes-nodes-cadvisor", "node-proxy", 30.0, 22.0, 4.0)),
        ksm_replicas=(KsmReplica(), KsmReplica("10.244.2.7", 60.0, 11.0)),
        claims=[
            Claim("cs-miniapp", "data-web-0", "pool-hot", ((None, 20 * GIB),), 10 * GIB, mounts=(Mount("srv-gen-02"),))
        ],
    )


def silent_node() -> Scenario:
    """Phenomenon 8: the kubelet of srv-gen-02 is not scraped 02:00–04:30 while coredns and the web
    pod (with its claim) keep running there. Truth: those hours are gaps for kube-system and
    cs-miniapp (cAdvisor, volume statistics), never zeros; di-api on srv-gen-01 is unaffected."""
    nodes = _nodes("srv-gen-01", "srv-gen-02")
    nodes[1] = Node("srv-gen-02", "10.0.1.12", silent=((at("02:00"), at("04:30")),))
    claim = Claim("cs-miniapp", "data-web-0", "pool-hot", ((None, 20 * GIB),), 10 * GIB, mounts=(Mount("srv-gen-02"),))
    return _single("silent-node", silent_node.__doc__ or "", ("silent-target",), nodes=nodes, claims=[claim])


def no_phase_metric() -> Scenario:
    """Phenomenon 9: kube-state-metrics runs with a metric allowlist without `kube_pod_status_phase`.
    Truth: requests, PVC requests and quotas as if it were there (the collection must not divide by a
    missing scrape count); the doctor names the missing series."""
    claim = Claim("cs-miniapp", "data-web-0", "pool-hot", ((None, 20 * GIB),), 10 * GIB, mounts=(Mount("srv-gen-02"),))
    return _single(
        "no-phase-metric",
        no_phase_metric.__doc__ or "",
        ("missing-series:kube_pod_status_phase",),
        ksm_missing=frozenset({"kube_pod_status_phase"}),
        claims=[claim],
    )


def nan_samples() -> Scenario:
    """Phenomenon 11: NaN samples in the api pod's working set 02:10–02:20 and in a claim's volume
    statistics 03:00–03:30. Truth: those hours are partly covered (NaN is no value); the gauges are
    constant, so their averages over the other scrapes are the truth."""
    claim = Claim("di-api", "reports", "pool-hot", ((None, 100 * GIB),), 40 * GIB, mounts=(Mount("srv-gen-01"),))
    return _single(
        "nan-samples",
        nan_samples.__doc__ or "",
        ("nan-samples",),
        claims=[claim],
        nan=[
            NanWindow("container_memory_working_set_bytes", "di-api", "api-7d9f8c6b5-x2lqp", at("02:10"), at("02:20")),
            NanWindow("kubelet_volume_stats_used_bytes", "di-api", "reports", at("03:00"), at("03:30")),
        ],
    )


def _cluster(name: str, runtime: str, doc: str, planted: Sequence[str], **kw: Any) -> Scenario:
    """Two days (2026-10-01/02) of a cluster with every phenomenon at once."""

    def t(text: str, plus: int = 0) -> dt.datetime:
        return at(text, CLUSTER_DAY, plus)

    nodes = [
        Node("srv-gen-01", "10.0.1.11"),
        Node("srv-gen-02", "10.0.1.12", reboots=(t("14:00"),)),
        Node("srv-bat-01", "10.0.2.21", silent=((t("03:00", 1), t("06:30", 1)),)),
    ]
    small = {"image": "registry.k8s.io/kube-proxy:v1.31.2"}
    pods = [
        *(
            Pod(
                "kube-system",
                f"kube-proxy-{suffix}",
                node,
                (Container("kube-proxy", 0.05, 40 * MIB, 0.05, 50 * MIB, **small),),
                host_network=True,
                owner=("DaemonSet", "kube-proxy"),
            )
            for suffix, node in (("7xk2p", "srv-gen-01"), ("q9d4s", "srv-gen-02"), ("m2v8r", "srv-bat-01"))
        ),
        _coredns("srv-gen-02"),
        Pod(
            "ingress-nginx",
            "ingress-nginx-controller-b8c7d6f5-2mzrt",
            "srv-gen-01",
            (
                Container(
                    "controller",
                    0.5,
                    512 * MIB,
                    0.5,
                    512 * MIB,
                    image="registry.k8s.io/ingress-nginx/controller:v1.11.3",
                ),
            ),
            host_network=True,
            egress_bytes_per_second=4 * MIB,
        ),
        _api("api-7d9f8c6b5-x2lqp", "srv-gen-01", restarts=(t("09:30"), t("16:00", 1))),
        _api("api-7d9f8c6b5-k4j9w", "srv-gen-02"),
        _web("web-5c9d7b8f4-h8s2k", "srv-gen-02"),
        _web("web-5c9d7b8f4-p3n7d", "srv-gen-01", start=t("06:00"), end=t("18:00", 1)),
        Pod(
            "di-batch",
            "etl-nightly-29183520-7vq2n",
            "srv-bat-01",
            (Container("worker", 4, 16 * GIB, 4, 16 * GIB, gpu_request=1, image="registry.example.com/di/etl:5.0.0"),),
            pending_from=t("01:00"),
            scheduled_at=t("02:10"),
            start=t("02:20"),
            end=t("07:40"),
            owner=("Job", "etl-nightly-29183520"),
        ),
        Pod(
            "di-batch",
            "etl-nightly-29184960-c8x5d",
            "srv-bat-01",
            (Container("worker", 4, 16 * GIB, 4, 16 * GIB, gpu_request=1, image="registry.example.com/di/etl:5.0.0"),),
            pending_from=t("01:00", 1),
            scheduled_at=t("01:30", 1),
            start=t("01:35", 1),
            end=t("09:40", 1),
            owner=("Job", "etl-nightly-29184960"),
        ),
        Pod(
            "di-batch",
            "adhoc-query-5b7c9-r2t6z",
            "srv-gen-01",
            (Container("query", 2, 4 * GIB, 2, 4 * GIB, image="registry.example.com/di/query:1.1.0"),),
            start=t("11:05"),
            end=t("11:25"),
            owner=("Job", "adhoc-query-5b7c9"),
        ),
        Pod(
            "sandbox-x",
            "debug-shell",
            "srv-gen-02",
            (Container("shell", 0.1, 100 * MIB, image="docker.io/library/busybox:1.36"),),
            egress_bytes_per_second=8 * 1024,
            owner=("", "debug-shell"),
        ),
    ]
    storage = STORAGE_QUOTA_SUFFIX
    claims = [
        Claim(
            "cs-miniapp",
            "shared-media",
            "pool-archive",
            ((None, 500 * GIB),),
            300 * GIB,
            mounts=(Mount("srv-gen-02"), Mount("srv-gen-01", t("06:00"), t("18:00", 1))),
            access_mode="ReadWriteMany",
        ),
        Claim(
            "cs-miniapp",
            "data-web-0",
            "pool-hot",
            ((None, 20 * GIB), (t("10:00"), 50 * GIB)),
            15 * GIB,
            mounts=(Mount("srv-gen-02"),),
        ),
        Claim(
            "di-api",
            "reports",
            "pool-hot",
            ((None, 100 * GIB),),
            40 * GIB,
            mounts=(Mount("srv-gen-01", end=t("20:00")), Mount("srv-gen-01", start=t("08:00", 1))),
        ),
        Claim("di-api", "spare", "pool-cold", ((None, 200 * GIB),), 50 * GIB),
        Claim("di-batch", "scratch", "pool-cold", ((None, 1024 * GIB),), 600 * GIB, mounts=(Mount("srv-gen-01"),)),
    ]
    quotas = [
        Quota(
            "di-api",
            "di-api",
            (
                (None, {"requests.cpu": 24, "requests.memory": 96 * GIB, f"pool-hot{storage}": 500 * GIB, "pods": 120}),
                (
                    t("12:00"),
                    {"requests.cpu": 32, "requests.memory": 96 * GIB, f"pool-hot{storage}": 500 * GIB, "pods": 120},
                ),
            ),
        ),
        Quota(
            "di-batch",
            "di-batch",
            (
                (
                    None,
                    {
                        "requests.cpu": 96,
                        "requests.memory": 512 * GIB,
                        "requests.nvidia.com/gpu": 2,
                        f"pool-cold{storage}": 20480 * GIB,
                    },
                ),
            ),
        ),
        Quota("di-batch", "di-batch-limits", ((None, {"cpu": 80}),)),  # a second object: the smaller cpu applies
        Quota(
            "cs-miniapp",
            "cs-miniapp",
            (
                (
                    None,
                    {
                        "requests.cpu": 32,
                        "requests.memory": 128 * GIB,
                        f"pool-hot{storage}": 1024 * GIB,
                        f"pool-archive{storage}": 2048 * GIB,
                        "services.loadbalancers": 2,
                    },
                ),
                (
                    t("00:00", 1),
                    {
                        "requests.cpu": 16,
                        "requests.memory": 64 * GIB,
                        f"pool-hot{storage}": 1024 * GIB,
                        f"pool-archive{storage}": 2048 * GIB,
                        "services.loadbalancers": 2,
                    },
                ),
            ),
        ),
    ]
    services = [
        Service("ingress-nginx", "ingress-nginx-controller"),
        Service("cs-miniapp", "web", start=t("06:00")),
        Service("cs-miniapp", "web-internal", type="ClusterIP"),
    ]
    settings: dict[str, Any] = {
        "nodes": nodes,
        "pods": pods,
        "claims": claims,
        "quotas": quotas,
        "services": services,
        "gaps": [(t("20:10"), t("20:50")), (t("09:00", 1), t("10:00", 1))],
        "nan": [
            NanWindow(
                "container_memory_working_set_bytes", "cs-miniapp", "web-5c9d7b8f4-h8s2k", t("13:10"), t("13:20")
            ),
            NanWindow("kubelet_volume_stats_used_bytes", "di-batch", "scratch", t("03:00", 1), t("03:30", 1)),
        ],
    }
    settings.update(kw)
    base = ("no-namespace-series", "host-network-pods", "silent-target", "unmounted-claims", "nan-samples")
    return Scenario(
        name=name,
        start=t("00:00"),
        end=t("00:00", 2),
        runtime=runtime,
        doc=doc,
        planted_defects=(*base, *planted),
        **settings,
    )


def containerd_cluster() -> Scenario:
    """Two days of a three-node containerd cluster with every phenomenon at once: root cgroups,
    hostNetwork kube-proxy and ingress controller, a batch pod scheduled after pending, a RWX claim on
    two nodes, an unmounted and a never-mounted claim, a node reboot (new containers, counters reset),
    container restarts, PVC expansion, quota changes and two quota objects, a silent node (3.5 h),
    a 40-minute and a whole-hour scrape gap, NaN samples. Truth: `expected_usage`."""
    return _cluster("containerd-cluster", "containerd", containerd_cluster.__doc__ or "", ())


def crio_cluster() -> Scenario:
    """`containerd_cluster` under CRI-O: sandboxes labelled `POD` carry the pods' network."""
    return _cluster("crio-cluster", "crio", crio_cluster.__doc__ or "", ("sandbox-container-pod",))


def duplicated_jobs_cluster() -> Scenario:
    """`containerd_cluster` scraped twice: a second kubelet job (`kubernetes-nodes-cadvisor`,
    node-proxy labels, another phase) and two kube-state-metrics replicas. Truth: as containerd_cluster."""
    return _cluster(
        "duplicated-jobs-cluster",
        "containerd",
        duplicated_jobs_cluster.__doc__ or "",
        ("duplicate-targets",),
        kubelet_jobs=(KubeletJob(), KubeletJob("kubernetes-nodes-cadvisor", "node-proxy", 30.0, 22.0, 4.0)),
        ksm_replicas=(KsmReplica(), KsmReplica("10.244.2.7", 60.0, 11.0)),
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "root-cgroups": root_cgroups,
    "host-network": host_network,
    "unscheduled-requests": unscheduled_requests,
    "rwx-claim": rwx_claim,
    "unmounted-claim": unmounted_claim,
    "crio-sandbox": crio_sandbox,
    "dockerd-sandbox": dockerd_sandbox,
    "duplicate-scrapes": duplicate_scrapes,
    "silent-node": silent_node,
    "no-phase-metric": no_phase_metric,
    "nan-samples": nan_samples,
    "containerd-cluster": containerd_cluster,
    "crio-cluster": crio_cluster,
    "duplicated-jobs-cluster": duplicated_jobs_cluster,
}
"""Every named scenario by its cluster label."""


def all_scenarios() -> list[Scenario]:
    return [build() for build in SCENARIOS.values()]
