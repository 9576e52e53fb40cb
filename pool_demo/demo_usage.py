"""Two realistic months of cluster usage for the example catalog, for `make demo`.

`demo_scenarios(catalog, start, end)` builds one `synthetic.Scenario` per cluster from the catalog:
every namespace gets the ResourceQuota the Pulumi program would create (`quota_hard`), PVCs on the
tiers its quota grants and pods whose size is a share of that quota. How the pods behave comes from
a workload profile: the example namespaces have their own (below), any other namespace gets a
steady API. Load follows the wall clock of the group (Asia/Shanghai, UTC+8):

* business APIs (di-api, staging): office hours peak, nights and weekends low;
* consumer apps (cs-miniapp): lunch and evening peaks, busier weekends, rolling deploys twice a
  week and extra replicas in the evening peak (pod churn);
* batch (di-batch): nightly ETL pods that start and finish, GPU training runs every night;
* test bench (es-testbed): a controller that barely runs and one short test run a week, so most of
  its quota sits idle;
* capability providers (pf-*): steady, with load that follows the units consuming their capability;
* shared namespaces: ingress-nginx follows all web traffic, monitoring is flat.

Everything is deterministic: a numpy Generator seeded from `seed` and the namespace name drives the
noise, nothing reads the clock, so the same arguments give the same OpenMetrics bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from infra.components.business_unit import quota_hard
from pool_catalog import Catalog
from pool_catalog.models import Cluster, Namespace
from pool_catalog.quantities import parse

from .synthetic import GIB, MIB, Container, Pod, Quota, Scenario, Service, Source, Volume

SCRAPE_INTERVAL = 1800.0
"""Seconds between scrapes: six an hour keep two months of series small enough to backfill in seconds."""
LOCAL_OFFSET_HOURS = 8
"""The group's offices are on China Standard Time; daily rhythms follow local hours."""
DEFAULT_SEED = 2026
STAGGER = 0.5
"""Seconds between pods of one rollout or batch run. Pods start and stop in the first seconds of an hour,
before its first cAdvisor scrape (at :00:07), so that with two scrapes an hour every hour a pod runs has
both scrapes and `increase` sees all of its CPU; at 30 s scrapes (real clusters) this would not matter."""

Load = Callable[[np.ndarray], np.ndarray]

# Load by local hour of day (0–23), 1.0 at the daily peak.
BUSINESS_DAY = np.array(
    [
        *(0.15, 0.12, 0.1, 0.1, 0.1, 0.12, 0.2, 0.35, 0.6, 0.85, 0.95, 1.0),
        *(0.8, 0.9, 1.0, 0.95, 0.9, 0.75, 0.5, 0.35, 0.3, 0.25, 0.2, 0.17),
    ]
)
CONSUMER_DAY = np.array(
    [
        *(0.3, 0.2, 0.12, 0.08, 0.07, 0.08, 0.15, 0.35, 0.55, 0.6, 0.65, 0.8),
        *(0.95, 0.8, 0.65, 0.6, 0.62, 0.7, 0.85, 1.0, 0.98, 0.85, 0.65, 0.45),
    ]
)
FLAT_DAY = np.full(24, 1.0)
RHYTHMS = {"business": (BUSINESS_DAY, 0.3), "consumer": (CONSUMER_DAY, 1.15), "flat": (FLAT_DAY, 1.0)}
"""Rhythm name → (load by local hour, weekend multiplier)."""


@dataclass(frozen=True)
class Batch:
    """Pods that run every night and finish: `pods` at a time, each starting around `start_hour` local."""

    name: str
    pods: int
    start_hour: int  # local; the run starts at this hour or the next
    hours: tuple[int, int]  # whole hours, drawn uniformly from this range (inclusive)
    cpu_request: float
    memory_request_gib: float
    cpu_use: float  # share of the request actually used
    gpu: int = 0
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)  # Monday = 0


@dataclass(frozen=True)
class Workload:
    """How a namespace's pods behave; sizes are shares of the namespace's quota."""

    rhythm: str = "business"
    replicas: int = 2
    cpu_share: float = 0.4  # part of the cpu quota the replicas request together
    memory_share: float = 0.4
    cpu_use: float = 0.7  # cpu used at the daily peak, as a share of the request
    memory_use: float = 0.7
    base_load: float = 0.0  # floor under the rhythm (capability APIs never go quiet)
    egress_mib_s: float = 0.0  # per replica at the daily peak
    deploys_per_week: int = 1
    evening_extra: int = 0  # replicas added by the autoscaler around the daily peak
    load_balancer: bool = False
    storage: dict[str, tuple[float, float]] = field(default_factory=dict)  # tier → (share of quota, fill)
    batches: tuple[Batch, ...] = ()
    weekly_test: tuple[int, int, int] | None = None  # (weekday, local start hour, hours) of a test run
    follows_consumers: bool = False  # load follows the namespaces consuming its capabilities
    monthly_growth: float = 0.03  # load grows by this share per month (the month-over-month view)


EXAMPLE_WORKLOADS: dict[str, Workload] = {
    "di-api": Workload(
        rhythm="business",
        replicas=6,
        cpu_share=0.5,
        memory_share=0.4,
        cpu_use=0.9,
        memory_use=0.6,
        egress_mib_s=1.0,
        deploys_per_week=1,
        load_balancer=True,
        storage={"hot": (0.5, 0.7)},
    ),
    "di-batch": Workload(
        rhythm="flat",
        replicas=1,
        cpu_share=0.04,
        memory_share=0.02,
        cpu_use=0.3,
        deploys_per_week=0,
        storage={"hot": (0.8, 0.75), "cold": (0.8, 0.8)},
        batches=(
            Batch("etl", pods=6, start_hour=1, hours=(3, 5), cpu_request=12, memory_request_gib=48, cpu_use=0.85),
            Batch(
                "train",
                pods=2,
                start_hour=20,
                hours=(14, 20),
                cpu_request=8,
                memory_request_gib=64,
                cpu_use=0.7,
                gpu=1,
            ),
        ),
    ),
    "cs-miniapp": Workload(
        rhythm="consumer",
        replicas=8,
        cpu_share=0.5,
        memory_share=0.5,
        cpu_use=0.95,
        memory_use=0.65,
        egress_mib_s=2.15,
        deploys_per_week=2,
        evening_extra=4,
        load_balancer=True,
        storage={"hot": (0.6, 0.7), "archive": (0.9, 0.85)},
    ),
    "cs-miniapp-staging": Workload(
        rhythm="business",
        replicas=2,
        cpu_share=0.25,
        memory_share=0.25,
        cpu_use=0.3,
        memory_use=0.5,
        egress_mib_s=0.05,
        deploys_per_week=5,
        storage={"hot": (0.25, 0.4)},
    ),
    "es-testbed": Workload(
        rhythm="flat",
        replicas=1,
        cpu_share=0.02,
        memory_share=0.02,
        cpu_use=0.1,
        memory_use=0.5,
        deploys_per_week=0,
        storage={"hot": (0.5, 0.1), "archive": (0.4, 0.15)},
        weekly_test=(3, 10, 2),
        monthly_growth=0.0,
    ),
    "pf-identity": Workload(
        replicas=3,
        cpu_share=0.5,
        memory_share=0.4,
        cpu_use=0.85,
        memory_use=0.7,
        base_load=0.35,
        egress_mib_s=0.5,
        load_balancer=True,
        storage={"hot": (0.5, 0.6)},
        follows_consumers=True,
    ),
    "pf-crypto": Workload(
        replicas=2,
        cpu_share=0.5,
        memory_share=0.4,
        cpu_use=0.8,
        memory_use=0.6,
        base_load=0.4,
        egress_mib_s=0.2,
        storage={"hot": (0.3, 0.5)},
        follows_consumers=True,
    ),
    "pf-credit": Workload(
        replicas=3,
        cpu_share=0.5,
        memory_share=0.5,
        cpu_use=0.8,
        memory_use=0.65,
        base_load=0.3,
        egress_mib_s=0.3,
        load_balancer=True,
        storage={"hot": (0.5, 0.6), "cold": (0.5, 0.7)},
        follows_consumers=True,
    ),
}
"""Profiles of the example catalog's namespaces; other namespaces get `DEFAULT_WORKLOAD`."""
DEFAULT_WORKLOAD = Workload(storage={"hot": (0.3, 0.5)})


@dataclass(frozen=True)
class SharedWorkload:
    """A shared namespace's pods: sizes in absolute terms (shared namespaces have no catalog quota)."""

    rhythm: str
    replicas: int
    cpu_request: float
    memory_request_gib: float
    cpu_use: float
    memory_use: float
    egress_mib_s: float = 0.0
    load_balancer: bool = False
    storage: dict[str, tuple[float, float]] = field(default_factory=dict)  # tier → (GiB requested, fill)


SHARED_WORKLOADS: dict[str, SharedWorkload] = {
    "ingress-nginx": SharedWorkload(
        "consumer",
        replicas=3,
        cpu_request=2,
        memory_request_gib=2,
        cpu_use=0.6,
        memory_use=0.5,
        egress_mib_s=1.0,
        load_balancer=True,
    ),
    "monitoring": SharedWorkload(
        "flat",
        replicas=2,
        cpu_request=4,
        memory_request_gib=24,
        cpu_use=0.55,
        memory_use=0.75,
        storage={"hot": (800.0, 0.7)},
    ),
}
DEFAULT_SHARED = SharedWorkload("flat", replicas=1, cpu_request=1, memory_request_gib=2, cpu_use=0.5, memory_use=0.5)


# ---------------------------------------------------------------- time


def local_hours(times: np.ndarray) -> np.ndarray:
    """Fractional local hour of day (0–24) of unix times."""
    return ((times / 3600.0) + LOCAL_OFFSET_HOURS) % 24.0


def local_weekday(times: np.ndarray) -> np.ndarray:
    """Local weekday of unix times, Monday = 0 (1970-01-01 was a Thursday)."""
    return ((np.floor((times / 3600.0 + LOCAL_OFFSET_HOURS) / 24.0) + 3) % 7).astype(np.int64)


def daily_curve(rhythm: str, times: np.ndarray) -> np.ndarray:
    """The rhythm at `times`: the hourly profile interpolated between hours, times the weekend factor."""
    profile, weekend = RHYTHMS[rhythm]
    hours = local_hours(times)
    curve = np.interp(hours, np.arange(25), np.append(profile, profile[0]))
    return np.where(local_weekday(times) >= 5, curve * weekend, curve)


@dataclass(frozen=True, eq=False)
class LoadModel:
    """Load of one namespace: base + (1 − base) × rhythm, with hourly noise and growth over the months."""

    rhythm: str
    start: float
    base: float
    growth_per_month: float
    noise: np.ndarray  # one multiplier per hour from `start`
    mix: tuple[tuple[LoadModel, float], ...] = ()  # weighted consumer loads replacing the rhythm

    def shape(self, times: np.ndarray) -> np.ndarray:
        if self.mix:
            total = sum(weight for _, weight in self.mix)
            return sum(model(times) * weight for model, weight in self.mix) / total
        return daily_curve(self.rhythm, times)

    def __call__(self, times: np.ndarray) -> np.ndarray:
        times = np.asarray(times, dtype=np.float64)
        index = np.clip(((times - self.start) // 3600).astype(np.int64), 0, len(self.noise) - 1)
        growth = 1.0 + self.growth_per_month * (times - self.start) / (30 * 86400.0)
        return (self.base + (1.0 - self.base) * self.shape(times)) * self.noise[index] * growth


def generator(seed: int, *names: str) -> np.random.Generator:
    """A Generator for one object, stable across runs and Python processes (no `hash()`)."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def hourly_noise(rng: np.random.Generator, hours: int, spread: float = 0.08) -> np.ndarray:
    return np.clip(1.0 + spread * rng.standard_normal(hours), 1.0 - 2.5 * spread, 1.0 + 2.5 * spread)


# ---------------------------------------------------------------- objects


def revision_hash(namespace: str, name: str, revision: int) -> str:
    """The ReplicaSet hash of a Deployment revision, as Kubernetes puts it in pod names."""
    return hashlib.sha256(f"{namespace}/{name}/{revision}".encode()).hexdigest()[:10]


def _pod_suffix(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list("bcdfghjklmnpqrstvwxz2456789"), 5))


@dataclass
class _Builder:
    """Collects the objects of one cluster's scenario."""

    start: dt.datetime
    end: dt.datetime
    seed: int
    pods: list[Pod] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    services: list[Service] = field(default_factory=list)
    quotas: list[Quota] = field(default_factory=list)

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    def load(self, namespace: str, rhythm: str, base: float, growth: float) -> LoadModel:
        noise = hourly_noise(generator(self.seed, namespace, "load"), self.hours)
        return LoadModel(rhythm, self.start.timestamp(), base, growth, noise)

    def days(self) -> Iterator[dt.datetime]:
        """Midnight UTC of every day of the scenario, and of the days either side: a local night starts the
        UTC day before (callers keep the objects that overlap the scenario)."""
        day = self.start.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=1)
        while day < self.end + dt.timedelta(days=1):
            yield day
            day += dt.timedelta(days=1)

    def overlaps(self, begin: dt.datetime, finish: dt.datetime) -> bool:
        """Whether a pod living [begin, finish) runs at some time of the scenario (it is cut at its edges)."""
        return begin < self.end and finish > self.start

    def deployment(
        self,
        namespace: str,
        name: str,
        replicas: int,
        container: Container,
        load: Load,
        egress_bytes_per_second: float,
        deploys_per_week: int,
    ) -> None:
        """Replicas replaced by a new ReplicaSet at every rollout (early afternoon local, working days)."""
        rng = generator(self.seed, namespace, name, "deploys")
        deploy_days = {0: (), 1: (1,), 2: (1, 3), 5: (0, 1, 2, 3, 4)}.get(deploys_per_week, (1,))
        deploys = []
        for day in self.days():
            moment = day + dt.timedelta(hours=13 - LOCAL_OFFSET_HOURS + int(rng.integers(0, 4)))
            if day.weekday() in deploy_days and self.start < moment < self.end:
                deploys.append(moment)
        boundaries: list[dt.datetime | None] = [None, *deploys, None]
        for revision in range(len(boundaries) - 1):
            template = revision_hash(namespace, name, revision)
            begin, finish = boundaries[revision], boundaries[revision + 1]
            for replica in range(replicas):
                # Pod by pod, half a second apart; each old pod stops a quarter second after its successor started.
                step = dt.timedelta(seconds=STAGGER * replica)
                self.pods.append(
                    Pod(
                        namespace,
                        f"{name}-{template}-{_pod_suffix(rng)}",
                        (container,),
                        start=None if begin is None else begin + step,
                        end=None if finish is None else finish + step + dt.timedelta(seconds=STAGGER / 2),
                        pending_from=None if begin is None else begin + step - dt.timedelta(seconds=30),
                        egress_bytes_per_second=egress_bytes_per_second,
                        load=load,
                    )
                )

    def evening_replicas(
        self, namespace: str, name: str, extra: int, container: Container, load: Load, egress: float
    ) -> None:
        """Autoscaled replicas for the consumer peak: up at 18:00 or 19:00 local, down four to five hours later."""
        rng = generator(self.seed, namespace, name, "autoscale")
        for day in self.days():
            up = day + dt.timedelta(hours=18 - LOCAL_OFFSET_HOURS + int(rng.integers(0, 2)))
            for replica in range(extra):
                begin = up + dt.timedelta(seconds=STAGGER * replica)
                finish = begin + dt.timedelta(hours=int(rng.integers(4, 6)))
                if self.overlaps(begin, finish):
                    self.pods.append(
                        Pod(
                            namespace,
                            f"{name}-hpa-{_pod_suffix(rng)}",
                            (container,),
                            start=begin,
                            end=finish,
                            pending_from=begin - dt.timedelta(seconds=20),
                            egress_bytes_per_second=egress,
                            load=load,
                        )
                    )

    def batches(self, namespace: str, batch: Batch) -> None:
        """One run per night: `pods` pods starting together, each finishing after its own number of hours."""
        rng = generator(self.seed, namespace, batch.name, "batch")
        for day in self.days():
            local_day = day + dt.timedelta(hours=LOCAL_OFFSET_HOURS)
            begin = day + dt.timedelta(hours=batch.start_hour - LOCAL_OFFSET_HOURS + int(rng.integers(0, 2)))
            run = f"{batch.name}-{local_day:%Y%m%d}"
            for index in range(batch.pods):
                start = begin + dt.timedelta(seconds=STAGGER * index)
                finish = start + dt.timedelta(hours=int(rng.integers(batch.hours[0], batch.hours[1] + 1)))
                use = batch.cpu_use * float(rng.uniform(0.85, 1.1))
                container = Container(
                    "worker",
                    cpu_cores=round(batch.cpu_request * use, 3),
                    memory_bytes=round(batch.memory_request_gib * min(1.0, use) * 1024) * MIB,
                    cpu_request=batch.cpu_request,
                    memory_request=batch.memory_request_gib * GIB,
                    gpu_request=batch.gpu,
                )
                if local_day.weekday() in batch.weekdays and self.overlaps(start, finish):
                    self.pods.append(
                        Pod(
                            namespace,
                            f"{run}-{index}-{_pod_suffix(rng)}",
                            (container,),
                            start=start,
                            end=finish,
                            pending_from=start - dt.timedelta(minutes=2),
                        )
                    )

    def weekly_test(self, namespace: str, weekday: int, start_hour: int, hours: int, cpu: float) -> None:
        """A hardware test run once a week: four pods for a couple of hours."""
        rng = generator(self.seed, namespace, "weekly-test")
        for day in self.days():
            begin = day + dt.timedelta(hours=start_hour - LOCAL_OFFSET_HOURS)
            for index in range(4):
                start = begin + dt.timedelta(seconds=STAGGER * index)
                finish = start + dt.timedelta(hours=hours)
                container = Container(
                    "bench",
                    cpu_cores=round(cpu * float(rng.uniform(0.6, 0.9)), 3),
                    memory_bytes=4 * GIB,
                    cpu_request=cpu,
                    memory_request=8 * GIB,
                )
                if day.weekday() == weekday and self.overlaps(start, finish):
                    self.pods.append(
                        Pod(namespace, f"hil-run-{day:%Y%m%d}-{index}", (container,), start=start, end=finish)
                    )

    def volumes_for(
        self, namespace: str, cluster: Cluster, sizes: dict[str, tuple[float, float]], quota_bytes: dict[str, float]
    ) -> None:
        """One claim per tier: `sizes` gives (share of the tier's quota, or GiB without a quota; fill)."""
        for tier in cluster.storage_tiers:
            if tier.name not in sizes:
                continue
            amount, fill = sizes[tier.name]
            requested = amount * quota_bytes[tier.name] if tier.name in quota_bytes else amount * GIB
            if requested <= 0:
                continue
            requested = float(np.floor(requested / GIB) * GIB)
            self.volumes.append(Volume(namespace, f"data-{tier.name}", tier.class_name, requested, requested * fill))


def _quota_bytes(namespace: Namespace) -> dict[str, float]:
    return {tier: float(size) for tier, size in namespace.quota.storage.items()}


def _consumer_weights(catalog: Catalog, namespace: Namespace, cluster: str) -> list[tuple[str, float]]:
    """Namespaces consuming what `namespace` exposes, weighted by their cpu quota."""
    capabilities = {capability.name for capability in namespace.exposes}
    return [
        (other.name, float(other.quota.cpu))
        for _, other in catalog.namespaces(cluster)
        if capabilities & set(other.consumes)
    ]


def cluster_scenario(
    catalog: Catalog, cluster: Cluster, start: dt.datetime, end: dt.datetime, seed: int = DEFAULT_SEED
) -> Scenario:
    """The demo scenario of one cluster over [start, end)."""
    builder = _Builder(start, end, seed)
    namespaces = [ns for _, ns in catalog.namespaces(cluster.name)]
    loads: dict[str, LoadModel] = {}
    for namespace in namespaces:
        workload = EXAMPLE_WORKLOADS.get(namespace.name, DEFAULT_WORKLOAD)
        loads[namespace.name] = builder.load(
            namespace.name, workload.rhythm, workload.base_load, workload.monthly_growth
        )
    for namespace in namespaces:
        workload = EXAMPLE_WORKLOADS.get(namespace.name, DEFAULT_WORKLOAD)
        consumers = _consumer_weights(catalog, namespace, cluster.name)
        if workload.follows_consumers and consumers:
            own = loads[namespace.name]
            mix = tuple((loads[name], weight) for name, weight in consumers)
            loads[namespace.name] = LoadModel(own.rhythm, own.start, own.base, own.growth_per_month, own.noise, mix=mix)
        _namespace_objects(builder, namespace, cluster, workload, loads[namespace.name])
    for shared in catalog.rates.shared_namespaces:
        if shared.cluster not in (None, cluster.name):
            continue
        _shared_objects(builder, shared.namespace, cluster, SHARED_WORKLOADS.get(shared.namespace, DEFAULT_SHARED))
    return Scenario(
        start=start,
        end=end,
        cadvisor=Source("kubelet-cadvisor", SCRAPE_INTERVAL, 7.0),
        kube_state=Source("kube-state-metrics", SCRAPE_INTERVAL, 0.0),
        kubelet=Source("kubelet", SCRAPE_INTERVAL, 19.0),
        labels={"cluster": cluster.name},
        decoys=False,
        pods=builder.pods,
        volumes=builder.volumes,
        services=builder.services,
        quotas=builder.quotas,
    )


def _namespace_objects(
    builder: _Builder, namespace: Namespace, cluster: Cluster, workload: Workload, load: LoadModel
) -> None:
    quota = namespace.quota
    hard = {name: float(parse(value)) for name, value in quota_hard(namespace, cluster).items()}
    builder.quotas.append(Quota(namespace.name, namespace.name, hard))
    name = namespace.name.split("-", 1)[-1] if "-" in namespace.name else namespace.name
    if workload.replicas:
        cpu_request = float(quota.cpu) * workload.cpu_share / workload.replicas
        memory_request = float(quota.memory) * workload.memory_share / workload.replicas
        container = Container(
            "app",
            cpu_cores=round(cpu_request * workload.cpu_use, 3),
            memory_bytes=round(memory_request * workload.memory_use / MIB) * MIB,
            cpu_request=round(cpu_request, 3),
            memory_request=round(memory_request / MIB) * MIB,
        )
        egress = workload.egress_mib_s * MIB
        builder.deployment(namespace.name, name, workload.replicas, container, load, egress, workload.deploys_per_week)
        if workload.evening_extra:
            builder.evening_replicas(namespace.name, name, workload.evening_extra, container, load, egress)
    for batch in workload.batches:
        builder.batches(namespace.name, batch)
    if workload.weekly_test is not None:
        weekday, start_hour, hours = workload.weekly_test
        builder.weekly_test(namespace.name, weekday, start_hour, hours, cpu=float(quota.cpu) / 8)
    if workload.load_balancer and quota.load_balancers:
        builder.services.append(Service(namespace.name, name))
    builder.services.append(Service(namespace.name, f"{name}-internal", type="ClusterIP"))
    builder.volumes_for(namespace.name, cluster, workload.storage, _quota_bytes(namespace))


def _shared_objects(builder: _Builder, namespace: str, cluster: Cluster, workload: SharedWorkload) -> None:
    load = builder.load(namespace, workload.rhythm, 0.3 if workload.rhythm != "flat" else 0.0, 0.02)
    container = Container(
        "main",
        cpu_cores=workload.cpu_request * workload.cpu_use,
        memory_bytes=workload.memory_request_gib * GIB * workload.memory_use,
        cpu_request=workload.cpu_request,
        memory_request=workload.memory_request_gib * GIB,
    )
    name = namespace.split("-", 1)[0]
    builder.deployment(namespace, name, workload.replicas, container, load, workload.egress_mib_s * MIB, 0)
    if workload.load_balancer:
        builder.services.append(Service(namespace, f"{namespace}-controller"))
    builder.volumes_for(namespace, cluster, workload.storage, {})


def demo_scenarios(catalog: Catalog, start: dt.datetime, end: dt.datetime, seed: int = DEFAULT_SEED) -> list[Scenario]:
    """One scenario per cluster of the catalog, over [start, end)."""
    return [cluster_scenario(catalog, cluster, start, end, seed) for cluster in catalog.pool.clusters]


def split_by_month(scenarios: list[Scenario], start: dt.datetime, end: dt.datetime) -> list[Scenario]:
    """The same objects seen only over [start, end): one month of a longer demo, written on its own.

    Counters of pods running since before `start` restart there (as after a kubelet restart), which
    the hourly `increase` windows inside the month do not notice."""
    return [replace(scenario, start=start, end=end) for scenario in scenarios]
