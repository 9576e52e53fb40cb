"""Small real-shaped clusters for the doctor tests, one `Variant` per planted defect.

Every variant is cluster dc1 of the example catalog, told apart by a `variant` label so that one
Prometheus serves them all (select one with --match variant=NAME). Label sets follow the sources:

* cAdvisor through the kubelet — kubernetes `pkg/kubelet/server/server.go`
  (`containerPrometheusLabelsFunc`): id, name, image, container, pod, namespace; the root cgroup
  (id="/") and the pod cgroup leave namespace/pod or container empty; network series carry
  `interface`. Under containerd the sandbox has no container name (container=""); cAdvisor
  `container/crio/handler.go` and `container/docker/handler.go` (cri-dockerd) label it "POD".
* kube-prometheus `kubernetesControlPlane-serviceMonitorKubelet.yaml` (+ prometheus-operator's
  endpoint relabelling): job="kubelet", instance="<node ip>:10250", node, metrics_path
  (/metrics/cadvisor, /metrics), endpoint="https-metrics", service="kubelet"; 30 s.
* kube-state-metrics `internal/store/pod.go` (kube_pod_info with host_network and node,
  kube_pod_status_phase for every phase, kube_pod_container_resource_requests with node and unit),
  `node.go` (kube_node_info with container_runtime_version), `persistentvolumeclaim.go`,
  `resourcequota.go`, `service.go`; scraped with honorLabels as job="kube-state-metrics", 60 s.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pool_demo.synthetic import GIB, MIB, OpenMetricsWriter

START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
HOURS = 6
CADVISOR_INTERVAL, CADVISOR_PHASE = 30.0, 7.0
KSM_INTERVAL, KSM_PHASE = 60.0, 0.0
VOLUME_INTERVAL, VOLUME_PHASE = 30.0, 19.0
NODES = {"srv-gen-01": "10.0.0.1", "srv-gen-02": "10.0.0.2"}


@dataclass(frozen=True)
class Variant:
    """One cluster's data with at most a few planted defects."""

    name: str
    runtime: str = "containerd://1.7.13"
    sandbox_pod: bool = False  # CRI-O / cri-dockerd: pod network on the container="POD" sandbox
    host_network: bool = False  # kube-proxy runs with hostNetwork: true
    drop: tuple[str, ...] = ()  # metric families missing (a kube-state-metrics allowlist, a relabel drop)
    second_cadvisor_job: float | None = None  # interval of a second job scraping the same kubelets
    ksm_replicas: int = 1
    silent: tuple[str, int, int] | None = None  # node, first hour, end hour the kubelet is not scraped
    unmounted_claim: bool = False  # a PVC with requests that no node mounts
    nan_hour: int | None = None  # memory of di-api/api-0 is NaN in this hour
    node_label: bool = True  # kubelet targets carry node (prometheus-operator does)
    first_hour: int = 0  # no sample of the cluster before this hour
    root_cgroup: bool = True  # the kubelets also serve the root cgroup (id="/", no namespace)


@dataclass(frozen=True)
class PodSpec:
    namespace: str
    name: str
    node: str
    container: str
    cpu: float
    memory: float
    cpu_request: float
    memory_request: float
    owner: tuple[str, str] = ("StatefulSet", "")

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{self.namespace}/{self.name}"))


PODS = (
    PodSpec("di-api", "api-0", "srv-gen-01", "app", 0.5, 1 * GIB, 1.0, 2 * GIB, ("StatefulSet", "api")),
    PodSpec("cs-miniapp", "web-0", "srv-gen-02", "web", 0.25, 512 * MIB, 0.5, 1 * GIB, ("StatefulSet", "web")),
    PodSpec(
        "kube-system", "kube-proxy-7x2q", "srv-gen-01", "kube-proxy", 0.05, 64 * MIB, 0.0, 0.0, ("DaemonSet", "kp")
    ),
)


def times(interval: float, phase: float, variant: Variant, hours: int = HOURS) -> np.ndarray:
    begin = START.timestamp() + variant.first_hour * 3600
    end = START.timestamp() + hours * 3600
    first = math.ceil((begin - phase) / interval) * interval + phase
    return np.arange(first, end, interval)


def _silence(grid: np.ndarray, variant: Variant, node: str) -> np.ndarray:
    if variant.silent is None or variant.silent[0] != node:
        return grid
    _, first, end = variant.silent
    lo, hi = START.timestamp() + first * 3600, START.timestamp() + end * 3600
    return grid[(grid < lo) | (grid >= hi)]


Family = tuple[str, str, str]  # name, type, help
SeriesItem = tuple[dict[str, str], tuple[np.ndarray, np.ndarray]]


@dataclass
class ClusterData:
    """Series of one variant, by family, generated on demand."""

    variant: Variant
    families: dict[Family, list[SeriesItem]] = field(default_factory=dict)

    def add(self, family: Family, labels: dict[str, str], t: np.ndarray, v: np.ndarray) -> None:
        if family[0].removesuffix("_total") in {d.removesuffix("_total") for d in self.variant.drop}:
            return
        if len(t):
            base = {"cluster": "dc1", "variant": self.variant.name}
            self.families.setdefault(family, []).append(({**base, **labels}, (t, v)))


CPU = ("container_cpu_usage_seconds_total", "counter", "Cumulative cpu time consumed in seconds.")
MEMORY = ("container_memory_working_set_bytes", "gauge", "Current working set in bytes.")
NETWORK = ("container_network_transmit_bytes_total", "counter", "Cumulative count of bytes transmitted.")
VOLUME = ("kubelet_volume_stats_used_bytes", "gauge", "Number of used bytes in the volume.")
POD_INFO = ("kube_pod_info", "gauge", "Information about pod.")
PHASE = ("kube_pod_status_phase", "gauge", "The pods current phase.")
REQUESTS = ("kube_pod_container_resource_requests", "gauge", "The number of requested request resource by a container.")
QUOTA = ("kube_resourcequota", "gauge", "Information about resource quota.")
PVC_INFO = ("kube_persistentvolumeclaim_info", "gauge", "Information about persistent volume claim.")
PVC_REQUEST = (
    "kube_persistentvolumeclaim_resource_requests_storage_bytes",
    "gauge",
    "The capacity of storage requested by the persistent volume claim.",
)
SERVICE = ("kube_service_spec_type", "gauge", "Type about service.")
NODE_INFO = ("kube_node_info", "gauge", "Information about a cluster node.")
ORDER = (CPU, MEMORY, NETWORK, VOLUME, POD_INFO, PHASE, REQUESTS, QUOTA, PVC_INFO, PVC_REQUEST, SERVICE, NODE_INFO)


def kubelet_target(variant: Variant, node: str, path: str, job: str = "kubelet") -> dict[str, str]:
    labels = {"job": job, "instance": f"{NODES[node]}:10250", "metrics_path": path, "endpoint": "https-metrics"}
    labels["service"] = "kubelet"
    if variant.node_label:
        labels["node"] = node
    return labels


def cluster_data(variant: Variant) -> ClusterData:
    data = ClusterData(variant)
    cadvisor_jobs = [("kubelet", CADVISOR_INTERVAL, CADVISOR_PHASE)]
    if variant.second_cadvisor_job:
        cadvisor_jobs.append(("cadvisor", variant.second_cadvisor_job, 13.0))
    for job, interval, phase in cadvisor_jobs:
        for node in NODES:
            grid = _silence(times(interval, phase, variant), variant, node)
            target = kubelet_target(variant, node, "/metrics/cadvisor", job)
            _cadvisor(data, variant, node, grid, target)
    for node in NODES:
        grid = _silence(times(VOLUME_INTERVAL, VOLUME_PHASE, variant), variant, node)
        if node == "srv-gen-02":
            labels = {**kubelet_target(variant, node, "/metrics"), "namespace": "cs-miniapp"}
            data.add(VOLUME, {**labels, "persistentvolumeclaim": "data"}, grid, np.full(len(grid), 2.0 * GIB))
    for replica in range(variant.ksm_replicas):
        target = {"job": "kube-state-metrics", "instance": f"10.244.1.{5 + replica}:8443"}
        _kube_state(data, variant, times(KSM_INTERVAL, KSM_PHASE, variant), target)
    return data


def _cadvisor(data: ClusterData, variant: Variant, node: str, grid: np.ndarray, target: dict[str, str]) -> None:
    elapsed = grid - START.timestamp()
    root = {**target, "id": "/", "name": "", "image": "", "container": "", "pod": "", "namespace": ""}
    data.add(CPU, root, grid, 4.0 * elapsed)
    data.add(MEMORY, root, grid, np.full(len(grid), 8.0 * GIB))
    if variant.root_cgroup:
        data.add(NETWORK, {**root, "interface": "ens3"}, grid, np.round(50_000 * elapsed))
    for pod in PODS:
        if pod.node != node:
            continue
        cgroup = f"/kubepods/burstable/pod{pod.uid}"
        pod_labels = {"pod": pod.name, "namespace": pod.namespace}
        container = {**target, **pod_labels, "id": f"{cgroup}/c-{pod.name}", "name": f"c-{pod.name}"}
        container |= {"image": f"registry.example/{pod.container}:1", "container": pod.container}
        memory = np.full(len(grid), float(pod.memory))
        if variant.nan_hour is not None and pod.name == "api-0":
            hour = np.floor(elapsed / 3600)
            memory[(hour == variant.nan_hour) & (elapsed % 3600 < 120)] = np.nan
        data.add(CPU, container, grid, pod.cpu * elapsed)
        data.add(MEMORY, container, grid, memory)
        pod_cgroup = {**target, **pod_labels, "id": cgroup, "name": "", "image": "", "container": ""}
        data.add(CPU, pod_cgroup, grid, pod.cpu * elapsed)
        data.add(MEMORY, pod_cgroup, grid, memory + MIB)
        sandbox_name = "POD" if variant.sandbox_pod else ""
        sandbox = {**target, **pod_labels, "id": f"{cgroup}/s-{pod.name}", "name": f"s-{pod.name}"}
        sandbox |= {"image": "registry.k8s.io/pause:3.9", "container": sandbox_name, "interface": "eth0"}
        # A hostNetwork pod's sandbox sees the node's interfaces.
        rate = 50_000 if variant.host_network and pod.namespace == "kube-system" else 1_000
        data.add(NETWORK, sandbox, grid, np.round(rate * elapsed))


def _kube_state(data: ClusterData, variant: Variant, grid: np.ndarray, target: dict[str, str]) -> None:
    ones = np.ones(len(grid))
    for pod in PODS:
        ident = {"namespace": pod.namespace, "pod": pod.name, "uid": pod.uid}
        host_network = variant.host_network and pod.namespace == "kube-system"
        info = {**target, **ident, "host_ip": NODES[pod.node], "node": pod.node, "priority_class": ""}
        info |= {"pod_ip": NODES[pod.node] if host_network else f"10.244.3.{len(pod.name)}"}
        info |= {"created_by_kind": pod.owner[0], "created_by_name": pod.owner[1]}
        info |= {"host_network": "true" if host_network else "false"}
        data.add(POD_INFO, info, grid, ones)
        for phase in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            data.add(PHASE, {**target, **ident, "phase": phase}, grid, ones * (phase == "Running"))
        for resource, unit, value in (("cpu", "core", pod.cpu_request), ("memory", "byte", pod.memory_request)):
            if value:
                labels = {**target, **ident, "container": pod.container, "node": pod.node}
                data.add(REQUESTS, {**labels, "resource": resource, "unit": unit}, grid, ones * value)
    for namespace, hard in (("di-api", 4.0), ("cs-miniapp", 2.0)):
        quota = {**target, "namespace": namespace, "resourcequota": namespace, "resource": "requests.cpu"}
        data.add(QUOTA, {**quota, "type": "hard"}, grid, ones * hard)
        data.add(QUOTA, {**quota, "type": "used"}, grid, ones * hard / 4)
    claims = [("data", 10 * GIB)] + ([("archive", 50 * GIB)] if variant.unmounted_claim else [])
    for claim, size in claims:
        labels = {**target, "namespace": "cs-miniapp", "persistentvolumeclaim": claim}
        info = {**labels, "storageclass": "pool-hot", "volumename": f"pvc-{claim}", "volumemode": "Filesystem"}
        data.add(PVC_INFO, info, grid, ones)
        data.add(PVC_REQUEST, labels, grid, ones * size)
    service = {**target, "namespace": "cs-miniapp", "service": "web", "uid": "5e7a", "type": "LoadBalancer"}
    data.add(SERVICE, service, grid, ones)
    for node, ip in NODES.items():
        info = {**target, "node": node, "container_runtime_version": variant.runtime, "internal_ip": ip}
        info |= {"kernel_version": "6.1.0-18-amd64", "os_image": "Debian GNU/Linux 12 (bookworm)"}
        info |= {"kubelet_version": "v1.29.2", "kubeproxy_version": "v1.29.2", "provider_id": "", "pod_cidr": ""}
        info |= {"system_uuid": f"uuid-{node}"}
        data.add(NODE_INFO, info, grid, ones)


def write_variants(path: Path, variants: list[Variant]) -> None:
    """Every variant into one OpenMetrics file, family by family (OpenMetrics groups families)."""
    clusters = [cluster_data(v) for v in variants]
    with OpenMetricsWriter(path) as writer:
        for family in ORDER:
            for data in clusters:
                for labels, samples in data.families.get(family, []):
                    writer.write_series(family[0], family[1], family[2], labels, samples)
