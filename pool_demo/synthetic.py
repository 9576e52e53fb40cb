"""Synthetic cAdvisor / kube-state-metrics / kubelet series as OpenMetrics text, for backfilling.

`promtool tsdb create-blocks-from openmetrics --max-block-duration=744h IN.om DIR` turns the file
into TSDB blocks that a local Prometheus serves (see `local_prometheus`). Two layers:

* `OpenMetricsWriter(path)` streams series to disk: `write_series(name, type, help, labels, samples)`
  writes one series (samples: `(timestamps, values)` numpy arrays, or (t, v) pairs, in time order);
  a metric family's series must be written one after another (OpenMetrics groups families), the
  `# TYPE`/`# HELP` lines are written once, and `close()` ends the file with `# EOF`. Nothing but the
  current series is held in memory, so a month of tens of thousands of series is fine.
* `Scenario` describes a cluster over a period — `Pod`s (with `Container`s, restarts, pending time,
  egress), `Volume`s (PVCs on a StorageClass), `Service`s, `Quota`s, scrape `Source`s with their
  interval and phase, and scrape `gaps` — and `Scenario.write(path)` emits every series the usage
  queries read, family by family, generating each object's samples only while writing it.

`closed_form_scenario()` is the scenario the tests use: eight hours of one cluster with pod churn,
a counter reset, scrapes at :07/:37 (cAdvisor) and exactly on the hour (kube-state-metrics), a
40-minute and a whole-hour scrape gap, a shared and an unowned namespace, storage on two tiers,
egress, a GPU, load balancers and quotas. `expected_usage(scenario)` gives its hourly usage in closed
form from the object definitions (rate × time alive), independent of Prometheus.

Closed-form conventions that follow from what Prometheus can observe (and are documented in `promql`):
usage between a container's last scrape and its restart is lost (counter reset); `increase`
extrapolates half a scrape interval past a series' last sample, so the scenario stops pods half-way
between two cAdvisor scrapes, where that is exact; whole hours without any scrape have no usage
(coverage 0) and are left out of expected totals.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

GIB = 2**30
MIB = 2**20
UTC = dt.UTC

# ---------------------------------------------------------------- the writer


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _format_times(timestamps: np.ndarray) -> list[str]:
    millis = np.round(np.asarray(timestamps, dtype=np.float64) * 1000).astype(np.int64).tolist()
    return [f"{m // 1000}.{m % 1000:03d}" for m in millis]


class OpenMetricsWriter:
    """Stream OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", encoding="utf-8", buffering=1 << 20)
        self._done_families: set[str] = set()
        self._family: str | None = None
        self.samples_written = 0
        self.series_written = 0

    def __enter__(self) -> OpenMetricsWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._file.close()

    def write_series(
        self,
        name: str,
        type: str,
        help: str,
        labels: Mapping[str, str],
        samples: tuple[np.ndarray, np.ndarray] | Iterable[tuple[float, float]],
    ) -> None:
        """Write one series; `samples` in increasing time order (unix seconds, millisecond precision)."""
        if type not in ("counter", "gauge", "unknown"):
            raise ValueError(f"metric type {type!r} is not supported; use counter, gauge or unknown")
        family = name[: -len("_total")] if type == "counter" and name.endswith("_total") else name
        if type == "counter" and family == name:
            raise ValueError(f"counter {name!r} must end in _total (OpenMetrics)")
        if family != self._family:
            if family in self._done_families:
                raise ValueError(f"metric family {family!r} was already written; write its series one after another")
            if self._family is not None:
                self._done_families.add(self._family)
            self._family = family
            self._file.write(f"# HELP {family} {help}\n# TYPE {family} {type}\n")
        if isinstance(samples, tuple) and len(samples) == 2 and isinstance(samples[0], np.ndarray):
            timestamps, values = samples
        else:
            pairs = list(samples)  # an iterable of pairs is small by nature; arrays are the bulk path
            timestamps = np.array([p[0] for p in pairs], dtype=np.float64)
            values = np.array([p[1] for p in pairs], dtype=np.float64)
        if len(timestamps) != len(values):
            raise ValueError(f"series {name}{dict(labels)} has {len(timestamps)} timestamps but {len(values)} values")
        if len(timestamps) == 0:
            return
        if len(timestamps) > 1 and not np.all(np.diff(timestamps) > 0):
            raise ValueError(f"series {name}{dict(labels)}: samples must be in strictly increasing time order")
        label_text = ",".join(f'{key}="{_escape(str(value))}"' for key, value in sorted(labels.items()))
        prefix = f"{name}{{{label_text}}} " if label_text else f"{name} "
        times = _format_times(timestamps)
        if np.all(values == values[0]):
            head = prefix + _format_value(float(values[0])) + " "
            self._file.write("".join([head + t + "\n" for t in times]))
        else:
            texts = [_format_value(v) for v in values.tolist()]
            self._file.write("".join([f"{prefix}{v} {t}\n" for v, t in zip(texts, times, strict=True)]))
        self.samples_written += len(times)
        self.series_written += 1

    def close(self) -> None:
        """End the file with `# EOF` (promtool requires it) and close it."""
        if not self._file.closed:
            self._file.write("# EOF\n")
            self._file.close()


# ---------------------------------------------------------------- the scenario model


@dataclass(frozen=True)
class Source:
    """A scrape job: every `interval` seconds at `phase` seconds past each interval boundary (unix time)."""

    job: str
    interval: float = 30.0
    phase: float = 0.0


@dataclass(frozen=True)
class Container:
    name: str
    cpu_cores: float  # CPU actually used, in cores
    memory_bytes: float  # working set
    cpu_request: float = 0.0
    memory_request: float = 0.0
    gpu_request: int = 0
    restarts: tuple[dt.datetime, ...] = ()  # the cgroup's counters start again from zero at these times


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    containers: tuple[Container, ...]
    start: dt.datetime | None = None  # running from (None: the scenario's start)
    end: dt.datetime | None = None  # gone at (None: the scenario's end)
    pending_from: dt.datetime | None = None  # in the API (phase Pending) from, before it runs
    egress_bytes_per_second: float = 0.0
    load: Callable[[np.ndarray], np.ndarray] | None = None  # multiplier on CPU, memory and egress over time (demo)

    @property
    def uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{self.namespace}/{self.name}"))


@dataclass(frozen=True)
class Volume:
    """A PersistentVolumeClaim and its use."""

    namespace: str
    name: str
    storage_class: str
    requested_bytes: float
    used_bytes: float
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    has_info: bool = True  # False: kube_persistentvolumeclaim_info missing (no storageclass known)


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str = "LoadBalancer"
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass(frozen=True)
class Quota:
    """A ResourceQuota: `hard` maps quota resource names (requests.cpu, pods …) to limits."""

    namespace: str
    name: str
    hard: Mapping[str, float]
    start: dt.datetime | None = None
    end: dt.datetime | None = None


@dataclass
class Scenario:
    start: dt.datetime
    end: dt.datetime
    cadvisor: Source = field(default_factory=lambda: Source("kubelet-cadvisor", 30.0, 7.0))
    kube_state: Source = field(default_factory=lambda: Source("kube-state-metrics", 30.0, 0.0))
    kubelet: Source = field(default_factory=lambda: Source("kubelet", 30.0, 19.0))
    gaps: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)  # [from, to): nothing scraped
    labels: dict[str, str] = field(default_factory=dict)  # added to every series (e.g. cluster)
    decoys: bool = True  # also write the series the queries must ignore (pause/pod cgroups, other phases, quota use)
    node: str = "node-1"  # the one node whose root cgroup and kube_node_info every real cluster has
    pods: list[Pod] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    quotas: list[Quota] = field(default_factory=list)

    # ------------------------------------------------------------ time grid

    def scrape_times(self, source: Source) -> np.ndarray:
        """Unix seconds of every scrape of `source` in [start, end) outside the gaps."""
        first = math.ceil((self.start.timestamp() - source.phase) / source.interval) * source.interval + source.phase
        times = np.arange(first, self.end.timestamp(), source.interval)
        for gap_from, gap_to in self.gaps:
            times = times[(times < gap_from.timestamp()) | (times >= gap_to.timestamp())]
        return times

    def _alive(self, times: np.ndarray, start: dt.datetime | None, end: dt.datetime | None) -> np.ndarray:
        begin = (start or self.start).timestamp()
        finish = (end or self.end).timestamp()
        return times[(times >= begin) & (times < finish)]

    def _labels(self, source: Source, **labels: str) -> dict[str, str]:
        # The kubelet's endpoints carry the node as a target label (kube-prometheus adds `node`).
        node = {"node": self.node} if source in (self.cadvisor, self.kubelet) else {}
        return {**self.labels, "job": source.job, **node, **labels}

    # ------------------------------------------------------------ writing

    def write(self, path: Path | str) -> OpenMetricsWriter:
        """Write every series to `path` (OpenMetrics); returns the closed writer (for its counts)."""
        return write_openmetrics(path, [self])

    def _families(self) -> Iterator[tuple[str, str, str, Iterator[tuple[dict[str, str], tuple]]]]:
        yield (
            "container_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed in seconds.",
            self._cpu_series(),
        )
        yield (
            "container_memory_working_set_bytes",
            "gauge",
            "Current working set in bytes.",
            self._memory_series(),
        )
        yield (
            "container_network_transmit_bytes_total",
            "counter",
            "Cumulative count of bytes transmitted.",
            self._egress_series(),
        )
        yield (
            "kube_pod_container_resource_requests",
            "gauge",
            "The number of requested request resource by a container.",
            self._request_series(),
        )
        yield ("kube_pod_status_phase", "gauge", "The pods current phase.", self._phase_series())
        yield ("kube_pod_info", "gauge", "Information about pod.", self._pod_info_series())
        yield (
            "kubelet_volume_stats_used_bytes",
            "gauge",
            "Number of used bytes in the volume.",
            self._volume_series("used"),
        )
        yield (
            "kube_persistentvolumeclaim_info",
            "gauge",
            "Information about persistent volume claim.",
            self._volume_series("info"),
        )
        yield (
            "kube_persistentvolumeclaim_resource_requests_storage_bytes",
            "gauge",
            "The capacity of storage requested by the persistent volume claim.",
            self._volume_series("requested"),
        )
        yield ("kube_service_spec_type", "gauge", "Type about service.", self._service_series())
        yield ("kube_resourcequota", "gauge", "Information about resource quota.", self._quota_series())
        yield ("kube_node_info", "gauge", "Information about a cluster node.", self._node_series())

    def _factor(self, pod: Pod, times: np.ndarray) -> np.ndarray:
        return np.ones_like(times) if pod.load is None else np.asarray(pod.load(times), dtype=np.float64)

    def _cpu_counter(self, pod: Pod, container: Container, times: np.ndarray) -> np.ndarray:
        """Cumulative CPU seconds at `times`, starting again from zero at each restart."""
        begin = (pod.start or self.start).timestamp()
        segment_starts = np.array([begin, *sorted(r.timestamp() for r in container.restarts)])
        since = segment_starts[np.searchsorted(segment_starts, times, side="right") - 1]
        if pod.load is None:
            return container.cpu_cores * (times - since)
        # Varying load: integrate sample to sample, each segment from its own start.
        previous = np.maximum(np.concatenate([since[:1], times[:-1]]), since)
        increments = container.cpu_cores * self._factor(pod, times) * (times - previous)
        running = np.cumsum(increments)
        new_segment = np.concatenate([[True], since[1:] != since[:-1]])
        base = np.maximum.accumulate(np.where(new_segment, running - increments, 0.0))
        return running - base

    def _cpu_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.cadvisor)
        # The node's root cgroup: no namespace, scraped with every cAdvisor scrape (the scrape clock of the node).
        if len(grid):
            yield self._labels(self.cadvisor, id="/", node=self.node), (grid, 0.5 * (grid - grid[0]))
        for pod in self.pods:
            times = self._alive(grid, pod.start, pod.end)
            if not len(times):
                continue
            begin = (pod.start or self.start).timestamp()
            pod_total = np.zeros_like(times)
            for container in pod.containers:
                values = self._cpu_counter(pod, container, times)
                labels = self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container=container.name)
                yield labels, (times, values)
                pod_total += container.cpu_cores * self._factor(pod, times) * (times - begin)
            if not self.decoys:
                continue
            # The pause container and the pod-level cgroup: both must be left out of usage.
            yield (
                self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container="POD"),
                (times, 0.001 * (times - begin)),
            )
            yield self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container=""), (times, pod_total)

    def _memory_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.cadvisor)
        for pod in self.pods:
            times = self._alive(grid, pod.start, pod.end)
            if not len(times):
                continue
            factor = self._factor(pod, times)
            for container in pod.containers:
                labels = self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container=container.name)
                yield labels, (times, container.memory_bytes * factor)
            if not self.decoys:
                continue
            yield (
                self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container="POD"),
                (times, np.full_like(times, 1 * MIB)),
            )
            total = sum(c.memory_bytes for c in pod.containers) + MIB
            yield (
                self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, container=""),
                (times, total * factor),
            )

    def _egress_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.cadvisor)
        for pod in self.pods:
            times = self._alive(grid, pod.start, pod.end)
            if not len(times) or not pod.egress_bytes_per_second:
                continue
            begin = (pod.start or self.start).timestamp()
            labels = self._labels(self.cadvisor, namespace=pod.namespace, pod=pod.name, interface="eth0")
            if pod.load is None:
                sent = pod.egress_bytes_per_second * (times - begin)
            else:  # traffic follows the load: integrate sample to sample, like CPU
                previous = np.concatenate([[begin], times[:-1]])
                sent = np.cumsum(pod.egress_bytes_per_second * self._factor(pod, times) * (times - previous))
            yield labels, (times, np.round(sent))

    def _request_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        for pod in self.pods:
            times = self._alive(grid, pod.pending_from or pod.start, pod.end)
            if not len(times):
                continue
            for container in pod.containers:
                for resource, unit, value in (
                    ("cpu", "core", container.cpu_request),
                    ("memory", "byte", container.memory_request),
                    ("nvidia_com_gpu", "integer", float(container.gpu_request)),
                ):
                    if value:
                        labels = self._labels(
                            self.kube_state,
                            namespace=pod.namespace,
                            pod=pod.name,
                            uid=pod.uid,
                            container=container.name,
                            resource=resource,
                            unit=unit,
                        )
                        yield labels, (times, np.full_like(times, value))

    def _phase_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        for pod in self.pods:
            times = self._alive(grid, pod.pending_from or pod.start, pod.end)
            if not len(times):
                continue
            running = (times >= (pod.start or self.start).timestamp()).astype(np.float64)
            phases = (("Pending", 1.0 - running), ("Running", running), ("Succeeded", 0.0 * running))
            for phase, values in phases if self.decoys else phases[1:2]:
                labels = self._labels(self.kube_state, namespace=pod.namespace, pod=pod.name, uid=pod.uid, phase=phase)
                yield labels, (times, values)

    def _pod_info_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        for pod in self.pods:
            times = self._alive(grid, pod.pending_from or pod.start, pod.end)
            if len(times):
                labels = self._labels(
                    self.kube_state,
                    namespace=pod.namespace,
                    pod=pod.name,
                    uid=pod.uid,
                    node=self.node,
                    host_network="false",
                )
                yield labels, (times, np.ones_like(times))

    def _volume_series(self, what: str) -> Iterator[tuple[dict[str, str], tuple]]:
        source = self.kubelet if what == "used" else self.kube_state
        grid = self.scrape_times(source)
        for volume in self.volumes:
            if what == "info" and not volume.has_info:
                continue
            times = self._alive(grid, volume.start, volume.end)
            if not len(times):
                continue
            labels = self._labels(source, namespace=volume.namespace, persistentvolumeclaim=volume.name)
            if what == "info":
                labels.update(storageclass=volume.storage_class, volumename=f"pvc-{volume.namespace}-{volume.name}")
                value = 1.0
            else:
                value = volume.used_bytes if what == "used" else volume.requested_bytes
            yield labels, (times, np.full_like(times, value))

    def _service_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        for service in self.services:
            times = self._alive(grid, service.start, service.end)
            if len(times):
                labels = self._labels(
                    self.kube_state, namespace=service.namespace, service=service.name, type=service.type
                )
                yield labels, (times, np.ones_like(times))

    def _node_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        if len(grid):
            yield self._labels(self.kube_state, node=self.node), (grid, np.ones_like(grid))

    def _quota_series(self) -> Iterator[tuple[dict[str, str], tuple]]:
        grid = self.scrape_times(self.kube_state)
        for quota in self.quotas:
            times = self._alive(grid, quota.start, quota.end)
            if not len(times):
                continue
            for resource, hard in quota.hard.items():
                for kind, value in (("hard", hard), ("used", hard / 2))[: 2 if self.decoys else 1]:
                    labels = self._labels(
                        self.kube_state,
                        namespace=quota.namespace,
                        resourcequota=quota.name,
                        resource=resource,
                        type=kind,
                    )
                    yield labels, (times, np.full_like(times, value))


def write_openmetrics(
    path: Path | str,
    scenarios: Iterable[Scenario],
    extra: Iterable[tuple[str, str, str, Mapping[str, str], tuple[np.ndarray, np.ndarray]]] = (),
) -> OpenMetricsWriter:
    """Write several scenarios (e.g. one per cluster, told apart by `labels`) into one OpenMetrics file;
    `extra`: more series (name, type, help, labels, samples), each of its own family, written after them."""
    scenarios = list(scenarios)
    with OpenMetricsWriter(path) as writer:
        for families in zip(*(s._families() for s in scenarios), strict=True):
            for name, kind, help_text, series in families:
                for labels, samples in series:
                    writer.write_series(name, kind, help_text, labels, samples)
        for name, kind, help_text, labels, samples in extra:
            writer.write_series(name, kind, help_text, labels, samples)
    return writer


# ---------------------------------------------------------------- closed-form expectations

QUOTA_RESOURCES = {
    "requests.cpu": ("cpu", 1.0),
    "cpu": ("cpu", 1.0),
    "requests.memory": ("memory", 1.0 / GIB),
    "memory": ("memory", 1.0 / GIB),
    "requests.nvidia.com/gpu": ("gpu", 1.0),
    "services.loadbalancers": ("load_balancer", 1.0),
    "pods": ("pods", 1.0),
}
STORAGE_QUOTA_SUFFIX = ".storageclass.storage.k8s.io/requests.storage"


def _overlap(start: float, end: float, hour: float) -> float:
    """Seconds of [start, end) inside the hour starting at `hour`."""
    return max(0.0, min(end, hour + 3600) - max(start, hour))


def expected_usage(scenario: Scenario, tier_of: Mapping[str, str]) -> dict[tuple[dt.datetime, str, str, str], dict]:
    """Closed-form hourly usage of `scenario`: {(hour, namespace, resource, tier): {used, requested, allocated}}.

    Computed from the objects (rate × seconds alive), not from samples. Hours without any scrape
    are left out (no usage can be observed there). `tier_of` maps StorageClass → tier; unknown
    classes keep their name, volumes without kube_persistentvolumeclaim_info get tier "".
    """
    begin, finish = scenario.start.timestamp(), scenario.end.timestamp()
    hours = [float(h) for h in np.arange(begin, finish, 3600.0)]
    cadvisor_times = scenario.scrape_times(scenario.cadvisor)
    scraped = {float(h) for h in np.floor(cadvisor_times / 3600) * 3600}
    table: dict[tuple[dt.datetime, str, str, str], dict] = {}

    def add(hour: float, namespace: str, resource: str, tier: str, column: str, amount: float) -> None:
        if hour not in scraped:
            return
        key = (dt.datetime.fromtimestamp(hour, UTC), namespace, resource, tier)
        row = table.setdefault(key, {"used": 0.0, "requested": 0.0, "allocated": 0.0})
        row[column] += amount

    def span(start: dt.datetime | None, end: dt.datetime | None) -> tuple[float, float]:
        return (start or scenario.start).timestamp(), (end or scenario.end).timestamp()

    for pod in scenario.pods:
        if pod.load is not None:
            raise ValueError(f"pod {pod.namespace}/{pod.name} has a varying load; no closed form")
        start, end = span(pod.start, pod.end)
        for hour in hours:
            alive = _overlap(start, end, hour)
            if not alive:
                continue
            add(hour, pod.namespace, "pods", "", "used", alive / 3600)
            if pod.egress_bytes_per_second:
                add(hour, pod.namespace, "egress", "", "used", pod.egress_bytes_per_second * alive / GIB)
            for container in pod.containers:
                add(hour, pod.namespace, "cpu", "", "used", container.cpu_cores * alive / 3600)
                add(hour, pod.namespace, "memory", "", "used", container.memory_bytes * alive / 3600 / GIB)
                add(hour, pod.namespace, "cpu", "", "requested", container.cpu_request * alive / 3600)
                add(hour, pod.namespace, "memory", "", "requested", container.memory_request * alive / 3600 / GIB)
                if container.gpu_request:
                    add(hour, pod.namespace, "gpu", "", "used", container.gpu_request * alive / 3600)
                    add(hour, pod.namespace, "gpu", "", "requested", container.gpu_request * alive / 3600)
        for container in pod.containers:
            for restart in container.restarts:
                # CPU used between the last scrape and the restart is never reported: the counter restarts at 0.
                at = restart.timestamp()
                last_scrape = cadvisor_times[cadvisor_times < at].max()
                hour = math.floor(at / 3600) * 3600
                add(hour, pod.namespace, "cpu", "", "used", -container.cpu_cores * (at - last_scrape) / 3600)
    for volume in scenario.volumes:
        start, end = span(volume.start, volume.end)
        tier = tier_of.get(volume.storage_class, volume.storage_class) if volume.has_info else ""
        for hour in hours:
            alive = _overlap(start, end, hour) / 3600
            if alive:
                add(hour, volume.namespace, "storage", tier, "used", volume.used_bytes / GIB * alive)
                add(hour, volume.namespace, "storage", tier, "requested", volume.requested_bytes / GIB * alive)
    for service in scenario.services:
        if service.type != "LoadBalancer":
            continue
        start, end = span(service.start, service.end)
        for hour in hours:
            alive = _overlap(start, end, hour) / 3600
            if alive:
                add(hour, service.namespace, "load_balancer", "", "used", alive)
                add(hour, service.namespace, "load_balancer", "", "requested", alive)
    for quota in scenario.quotas:
        start, end = span(quota.start, quota.end)
        for name, hard in quota.hard.items():
            if name.endswith(STORAGE_QUOTA_SUFFIX):
                storage_class = name[: -len(STORAGE_QUOTA_SUFFIX)]
                resource, tier, factor = "storage", tier_of.get(storage_class, storage_class), 1.0 / GIB
            else:
                resource, factor = QUOTA_RESOURCES[name]
                tier = ""
            for hour in hours:
                alive = _overlap(start, end, hour) / 3600
                if alive:
                    add(hour, quota.namespace, resource, tier, "allocated", hard * factor * alive)
    return table


# ---------------------------------------------------------------- the test scenario


def at(text: str) -> dt.datetime:
    """A UTC time on 2026-10-01 written HH:MM:SS (the test scenario's day)."""
    return dt.datetime.fromisoformat(f"2026-10-01T{text}+00:00")


def closed_form_scenario(cluster: str = "dc1", with_unpriced_storage: bool = True) -> Scenario:
    """Eight hours (2026-10-01 00:00–08:00 UTC) of one cluster, every pitfall of the usage queries included.

    Namespaces come from the example catalog (di-api, di-batch, cs-miniapp, shared ingress-nginx) plus
    `sandbox-x`, which no unit owns. cAdvisor scrapes at :07/:37, kube-state-metrics exactly at :00/:30
    (the double-count trap of closed ranges), the kubelet at :19/:49; scrapes stop 02:10–02:50 and for
    the whole hour 05:00–06:00. Churning pods start and stop at :22, half-way between cAdvisor scrapes.
    """
    app = Container("app", cpu_cores=1.5, memory_bytes=2 * GIB, cpu_request=2, memory_request=4 * GIB)
    sidecar = Container("sidecar", cpu_cores=0.25, memory_bytes=256 * MIB, cpu_request=0.5, memory_request=512 * MIB)
    pods = [
        Pod("di-api", "api-0", (app, sidecar), egress_bytes_per_second=1 * MIB),
        Pod(
            "di-api",
            "api-churn-1",
            (Container("app", cpu_cores=0.8, memory_bytes=1 * GIB, cpu_request=1, memory_request=2 * GIB),),
            start=at("01:20:22"),
            end=at("03:40:22"),
            pending_from=at("01:10:00"),
        ),
        Pod(
            "di-batch",
            "etl-0",
            (
                Container(
                    "worker",
                    cpu_cores=4,
                    memory_bytes=16 * GIB,
                    cpu_request=4,
                    memory_request=16 * GIB,
                    gpu_request=1,
                    restarts=(at("03:15:22"),),
                ),
            ),
        ),
        Pod(
            "di-batch",
            "job-short",
            (Container("worker", cpu_cores=2, memory_bytes=4 * GIB, cpu_request=2, memory_request=4 * GIB),),
            start=at("00:30:22"),
            end=at("00:50:22"),
        ),
        Pod(
            "ingress-nginx",
            "controller-0",
            (
                Container(
                    "controller", cpu_cores=0.5, memory_bytes=512 * MIB, cpu_request=0.5, memory_request=512 * MIB
                ),
            ),
            egress_bytes_per_second=4 * MIB,
        ),
        Pod("sandbox-x", "debug", (Container("shell", cpu_cores=0.1, memory_bytes=100 * MIB),)),
        Pod(
            "cs-miniapp",
            "web-0",
            (Container("web", cpu_cores=1, memory_bytes=1 * GIB, cpu_request=1, memory_request=1 * GIB),),
            egress_bytes_per_second=MIB / 2,
        ),
        Pod(
            "cs-miniapp",
            "web-1",
            (Container("web", cpu_cores=1, memory_bytes=1 * GIB, cpu_request=1, memory_request=1 * GIB),),
            start=at("04:00:22"),
            pending_from=at("00:00:00"),
        ),
    ]
    volumes = [
        Volume("cs-miniapp", "data", "pool-hot", requested_bytes=20 * GIB, used_bytes=10 * GIB),
        Volume("cs-miniapp", "archive", "pool-archive", requested_bytes=200 * GIB, used_bytes=100 * GIB),
        Volume(
            "di-batch", "scratch", "pool-cold", requested_bytes=1024 * GIB, used_bytes=600 * GIB, start=at("01:00:00")
        ),
    ]
    if with_unpriced_storage:
        volumes += [
            Volume("sandbox-x", "tmp", "local-path", requested_bytes=5 * GIB, used_bytes=1 * GIB),
            Volume("sandbox-x", "orphan", "pool-hot", requested_bytes=2 * GIB, used_bytes=1 * GIB, has_info=False),
        ]
    services = [
        Service("ingress-nginx", "ingress-nginx-controller"),
        Service("cs-miniapp", "web", start=at("02:00:00")),
        Service("cs-miniapp", "web-internal", type="ClusterIP"),
    ]
    storage = STORAGE_QUOTA_SUFFIX
    quotas = [
        Quota(
            "di-api",
            "di-api",
            {
                "requests.cpu": 24,
                "requests.memory": 96 * GIB,
                f"pool-hot{storage}": 500 * GIB,
                "services.loadbalancers": 1,
                "pods": 120,
            },
        ),
        Quota(
            "di-batch",
            "di-batch",
            {
                "requests.cpu": 96,
                "requests.memory": 512 * GIB,
                f"pool-hot{storage}": 1024 * GIB,
                f"pool-cold{storage}": 20 * 1024 * GIB,
                "requests.nvidia.com/gpu": 2,
                "services.loadbalancers": 0,
                "pods": 300,
            },
        ),
        Quota(
            "cs-miniapp",
            "cs-miniapp",
            {
                "requests.cpu": 32,
                "requests.memory": 128 * GIB,
                f"pool-hot{storage}": 1024 * GIB,
                f"pool-archive{storage}": 2048 * GIB,
                "services.loadbalancers": 2,
                "pods": 200,
            },
        ),
    ]
    return Scenario(
        start=at("00:00:00"),
        end=at("08:00:00"),
        gaps=[(at("02:10:00"), at("02:50:00")), (at("05:00:00"), at("06:00:00"))],
        labels={"cluster": cluster},
        pods=pods,
        volumes=volumes,
        services=services,
        quotas=quotas,
    )


def other_cluster_scenario(cluster: str = "dc2") -> Scenario:
    """A second cluster in the same Prometheus with a namespace of the same name and huge use:
    if the cluster matcher were lost, the first cluster's figures would be visibly wrong."""
    return Scenario(
        start=at("00:00:00"),
        end=at("08:00:00"),
        labels={"cluster": cluster},
        pods=[
            Pod(
                "di-api",
                "api-0",
                (Container("app", cpu_cores=100, memory_bytes=100 * GIB, cpu_request=100, memory_request=100 * GIB),),
                egress_bytes_per_second=100 * MIB,
            )
        ],
        quotas=[Quota("di-api", "di-api", {"requests.cpu": 1000})],
    )
