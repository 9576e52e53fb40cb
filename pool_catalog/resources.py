"""The billable resources: one frozen `ResourceSpec` per resource, the single table every layer reads.

What a resource is measured in, how it is priced, which ResourceQuota keys bound it, where its use comes
from, how idle allocations of it are judged and how FOCUS names it are all fields of its spec, so a new
resource (say GPU memory in GiB-hours) is one `ResourceSpec` here (or one `register` call) plus its price
in rates.yaml. Every field is required: a spec without, say, its FOCUS service cannot be built, instead of
failing with a KeyError at report time.

`Resource` stays as the names of the built-in resources (a `StrEnum`, so `Resource.CPU == "cpu"` and either
spelling finds the spec); the table is keyed by the name, which lets a registered resource join without an
enum member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from .quantities import format_bytes, format_cpu

HOURS_PER_MONTH = Decimal(730)
"""A month of 730 hours (8,760 h / 12): how monthly prices convert to hourly use."""

GIB = 2**30

# Where a resource's `used` figure is scraped from (each is a separate scrape job whose coverage is measured).
CADVISOR = "cadvisor"
KUBE_STATE = "kube-state-metrics"
KUBELET = "kubelet-volume-stats"

STORAGE_CLASS_QUOTA_SUFFIX = ".storageclass.storage.k8s.io/requests.storage"
"""ResourceQuota key of a storage class: `<class>` + this suffix (Kubernetes' per-class quota)."""


class Resource(StrEnum):
    """Names of the built-in billable resources (the `resource` column of every frame)."""

    CPU = "cpu"
    MEMORY = "memory"
    STORAGE = "storage"
    EGRESS = "egress"
    GPU = "gpu"
    LOAD_BALANCER = "load_balancer"

    @property
    def usage_unit(self) -> str:
        return spec_of(self).usage_unit


FOCUS_SERVICE_CATEGORIES: tuple[str, ...] = (
    "AI and Machine Learning",
    "Analytics",
    "Business Applications",
    "Compute",
    "Databases",
    "Developer Tools",
    "Multicloud",
    "Identity",
    "Integration",
    "Internet of Things",
    "Management and Governance",
    "Media",
    "Migration",
    "Mobile",
    "Networking",
    "Security",
    "Storage",
    "Web",
    "Other",
)
"""FOCUS 1.4 ServiceCategory allowed values (specification/datasets/cost_and_usage/columns/servicecategory.md;
tests/chargeback/outputs/test_focus_model.py checks them against the FinOps Foundation's 1.4 data model)."""

SERVICE_SUBCATEGORIES: Mapping[str, str] = MappingProxyType(
    {
        "AI Platforms": "AI and Machine Learning",
        "API Management": "Integration",
        "Analytics Platforms": "Analytics",
        "Application Networking": "Networking",
        "Application Platforms": "Web",
        "Architecture": "Management and Governance",
        "Backup Storage": "Storage",
        "Block Storage": "Storage",
        "Bots": "AI and Machine Learning",
        "Business Intelligence": "Analytics",
        "Caching": "Databases",
        "Compliance": "Management and Governance",
        "Containers": "Compute",
        "Content Creation": "Media",
        "Content Delivery": "Networking",
        "Continuous Integration and Deployment": "Developer Tools",
        "Cost Management": "Management and Governance",
        "Data Governance": "Management and Governance",
        "Data Migration": "Migration",
        "Data Processing": "Analytics",
        "Data Warehouses": "Databases",
        "Developer Platforms": "Developer Tools",
        "Development Environments": "Developer Tools",
        "Disaster Recovery": "Management and Governance",
        "End User Computing": "Compute",
        "Endpoint Management": "Management and Governance",
        "File Storage": "Storage",
        "Gaming": "Media",
        "Generative AI": "AI and Machine Learning",
        "Identity and Access Management": "Identity",
        "IoT Analytics": "Internet of Things",
        "IoT Platforms": "Internet of Things",
        "Ledger Databases": "Databases",
        "Machine Learning": "AI and Machine Learning",
        "Media Streaming": "Media",
        "Messaging": "Integration",
        "Mixed Reality": "Media",
        "Multicloud Integration": "Multicloud",
        "Natural Language Processing": "AI and Machine Learning",
        "Network Connectivity": "Networking",
        "Network Infrastructure": "Networking",
        "Network Routing": "Networking",
        "Network Security": "Networking",
        "NoSQL Databases": "Databases",
        "Object Storage": "Storage",
        "Observability": "Management and Governance",
        "Other (AI and Machine Learning)": "AI and Machine Learning",
        "Other (Analytics)": "Analytics",
        "Other (Business Applications)": "Business Applications",
        "Other (Compute)": "Compute",
        "Other (Databases)": "Databases",
        "Other (Developer Tools)": "Developer Tools",
        "Other (Identity)": "Identity",
        "Other (Integration)": "Integration",
        "Other (Internet of Things)": "Internet of Things",
        "Other (Management and Governance)": "Management and Governance",
        "Other (Media)": "Media",
        "Other (Migration)": "Migration",
        "Other (Mobile)": "Mobile",
        "Other (Multicloud)": "Multicloud",
        "Other (Networking)": "Networking",
        "Other (Other)": "Other",
        "Other (Security)": "Security",
        "Other (Storage)": "Storage",
        "Other (Web)": "Web",
        "Productivity and Collaboration": "Business Applications",
        "Quality Assurance": "Developer Tools",
        "Quantum Compute": "Compute",
        "Relational Databases": "Databases",
        "Resource Migration": "Migration",
        "Search": "Analytics",
        "Secret Management": "Security",
        "Security Posture Management": "Security",
        "Serverless Compute": "Compute",
        "Source Code Management": "Developer Tools",
        "Storage Platforms": "Storage",
        "Streaming Analytics": "Analytics",
        "Support": "Management and Governance",
        "Threat Detection and Response": "Security",
        "Time Series Databases": "Databases",
        "Virtual Machines": "Compute",
        "Workflow Orchestration": "Integration",
    }
)
"""FOCUS 1.4 ServiceSubcategory allowed values → the ServiceCategory each belongs to (servicesubcategory.md,
checked against the 1.4 data model like the categories). `Other (<category>)` is each category's catch-all."""


def focus_service_error(category: str, subcategory: str) -> str | None:
    """Why a ServiceCategory/ServiceSubcategory pair is not FOCUS 1.4 (None: it is), naming the allowed values."""
    if category not in FOCUS_SERVICE_CATEGORIES:
        return f"service_category {category!r} is not a FOCUS ServiceCategory; use one of: " + ", ".join(
            FOCUS_SERVICE_CATEGORIES
        )
    parent = SERVICE_SUBCATEGORIES.get(subcategory)
    if parent != category:
        allowed = [sub for sub, cat in SERVICE_SUBCATEGORIES.items() if cat == category]
        found = "is not a FOCUS ServiceSubcategory" if parent is None else f"belongs to ServiceCategory {parent!r}"
        return f"service_subcategory {subcategory!r} {found}; under {category!r} use one of: " + ", ".join(allowed)
    return None


@dataclass(frozen=True)
class FocusService:
    """FOCUS ServiceCategory, ServiceSubcategory and ServiceName of a resource's charges."""

    category: str
    subcategory: str
    name: str

    def __post_init__(self) -> None:
        error = focus_service_error(self.category, self.subcategory)
        if error:
            raise ValueError(f"FOCUS service of {self.name!r}: {error}")


@dataclass(frozen=True)
class Quota:
    """How a resource appears in a namespace's ResourceQuota and in kube-state-metrics.

    `field` is the catalog `Quota` attribute holding the allocation (a registered resource, which has no
    attribute, is written in the quota under its own name); `key` the `hard`-map key written for it, which
    kube-state-metrics exports unchanged as the `resource` label of `kube_resourcequota`
    (kubernetes/kube-state-metrics internal/store/resourcequota.go: `string(res)`); `aliases` other
    keys that bound the same thing (`cpu` for `requests.cpu`). `per_unit` is the quantity one usage unit
    per hour holds (2^30 bytes for a GiB); `render` formats the catalog amount as a Kubernetes quantity."""

    field: str
    key: str
    per_unit: int
    render: Callable[[Decimal], str]
    aliases: tuple[str, ...] = ()
    limit: tuple[str, str] | None = None  # (hard-map key, catalog Quota attribute) of the matching limit

    def all_keys(self) -> tuple[str, ...]:
        return (self.key, *self.aliases)

    @property
    def scale(self) -> float:
        """Factor from a quantity (as kube-state-metrics exports it) to the usage unit."""
        return 1.0 / self.per_unit


@dataclass(frozen=True)
class Measured:
    """How a resource's use is measured when a query of its own measures it (cAdvisor CPU, memory, egress…).

    `query` names chargeback's PromQL query (`chargeback/collect/promql.py` QUERIES) whose per-namespace value
    is the use; `per_unit` is that value per usage unit (3600 CPU-seconds per core-hour, 2^30 bytes per GiB);
    `counter`: a counter whose increase is the hour's quantity, else a gauge averaged over the hour's scrapes of
    the resource's source; `also_requested`: the thing used is its own request (a LoadBalancer Service);
    `peak`: the query of the hour's peak level, for right-sizing (a counter's peak is a rate, per second)."""

    query: str
    per_unit: int
    counter: bool
    also_requested: bool = False
    peak: str | None = None


@dataclass(frozen=True)
class ResourceSpec:
    """Everything the pool knows about one billable resource; every field is required."""

    name: str
    usage_unit: str  # unit of the usage frame's figures per hour (core-hour, GiB-hour, GiB…)
    price_units: Mapping[str, Decimal]  # price unit in rates.yaml → usage units one price unit covers
    per_tier: bool  # priced and reported per storage tier (rates.yaml holds a map of tier → price)
    quota: Quota | None  # None: nothing bounds it (egress)
    request_label: str | None  # `resource` label of kube_pod_container_resource_requests; None: not a pod request
    used_source: str  # scrape job its use comes from: CADVISOR, KUBE_STATE or KUBELET
    measured: Measured | None  # its own use query; None: use is its requests (gpu) or its claims (storage)
    used_from_requests: bool  # use is the running pods' requests (no utilisation series in the contract)
    has_request: bool  # the usage frame carries a `requested` figure
    pod_driven: bool  # only pods use it: idle by definition when no pod ran
    idle_steps: tuple[tuple[int, Decimal], ...]  # (up to level, step) a right-sized quota is rounded to
    idle_step_above: Decimal  # step above the last bound
    level_unit: str | None  # unit of allocation levels in idle reports; None: never judged idle
    focus: FocusService
    node_capacity: str | None  # NodePool attribute that supplies it (cpu, memory, gpu); None: not per node

    def __post_init__(self) -> None:
        if not self.price_units:
            raise ValueError(f"resource {self.name!r} has no price unit")
        if self.usage_unit not in self.price_units:
            raise ValueError(f"resource {self.name!r}: the usage unit {self.usage_unit!r} must be a price unit")
        if self.used_source not in (CADVISOR, KUBE_STATE, KUBELET):
            raise ValueError(f"resource {self.name!r}: unknown usage source {self.used_source!r}")
        if self.used_from_requests and not self.request_label:
            raise ValueError(f"resource {self.name!r} is used as requested but names no request label")
        if self.used_from_requests and self.measured:
            raise ValueError(f"resource {self.name!r}: its use is either its requests or a query of its own")

    @property
    def allocated(self) -> bool:
        """A namespace allocates it (quota or requests), so its allocations are judged for idleness."""
        return self.level_unit is not None

    def idle_step(self, level: Decimal) -> Decimal:
        """The step a person writes a quota of `level` in (100m below a core, 10Gi of storage…)."""
        for bound, step in self.idle_steps:
            if level <= bound:
                return step
        return self.idle_step_above


def _str(value: Decimal) -> str:
    return str(value)


def _per_hour_and_month(hour: str, month: str) -> Mapping[str, Decimal]:
    return MappingProxyType({hour: Decimal(1), month: HOURS_PER_MONTH})


BUILT_IN: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        name=Resource.CPU,
        usage_unit="core-hour",
        price_units=_per_hour_and_month("core-hour", "core-month"),
        per_tier=False,
        quota=Quota("cpu", "requests.cpu", 1, format_cpu, aliases=("cpu",), limit=("limits.cpu", "cpu_limit")),
        request_label="cpu",
        used_source=CADVISOR,
        measured=Measured("cpu_used", 3600, counter=True, peak="cpu_peak"),
        used_from_requests=False,
        has_request=True,
        pod_driven=True,
        idle_steps=((1, Decimal("0.1")), (4, Decimal("0.5"))),  # 100m below a core, half cores up to 4
        idle_step_above=Decimal(1),
        level_unit="cores",
        focus=FocusService("Compute", "Containers", "Pool Compute (CPU)"),
        node_capacity="cpu",
    ),
    ResourceSpec(
        name=Resource.MEMORY,
        usage_unit="GiB-hour",
        price_units=_per_hour_and_month("GiB-hour", "GiB-month"),
        per_tier=False,
        quota=Quota(
            "memory", "requests.memory", GIB, format_bytes, aliases=("memory",), limit=("limits.memory", "memory_limit")
        ),
        request_label="memory",
        used_source=CADVISOR,
        measured=Measured("memory_used", GIB, counter=False, peak="memory_peak"),
        used_from_requests=False,
        has_request=True,
        pod_driven=True,
        # 256Mi, then 1Gi, 4Gi, 16Gi, 64Gi as sizes grow
        idle_steps=((1, Decimal("0.25")), (8, Decimal(1)), (32, Decimal(4)), (128, Decimal(16))),
        idle_step_above=Decimal(64),
        level_unit="GiB",
        focus=FocusService("Compute", "Containers", "Pool Compute (memory)"),
        node_capacity="memory",
    ),
    ResourceSpec(
        name=Resource.STORAGE,
        usage_unit="GiB-hour",
        price_units=_per_hour_and_month("GiB-hour", "GiB-month"),
        per_tier=True,
        # The per-class keys are STORAGE_CLASS_QUOTA_SUFFIX; `requests.storage` bounds the total.
        quota=Quota("storage", "requests.storage", GIB, format_bytes),
        request_label=None,  # claims, not pod requests: kube_persistentvolumeclaim_resource_requests_storage_bytes
        used_source=KUBELET,
        measured=None,  # per claim: kubelet_volume_stats_used_bytes
        used_from_requests=False,
        has_request=True,
        pod_driven=False,
        idle_steps=((1024, Decimal(10)),),  # 10Gi up to a TiB, 100Gi above
        idle_step_above=Decimal(100),
        level_unit="GiB",
        focus=FocusService("Storage", "Block Storage", "Pool Storage"),
        node_capacity=None,
    ),
    ResourceSpec(
        name=Resource.EGRESS,
        usage_unit="GiB",
        price_units=MappingProxyType({"GiB": Decimal(1)}),
        per_tier=False,
        quota=None,
        request_label=None,
        used_source=CADVISOR,
        measured=Measured("egress_used", GIB, counter=True),
        used_from_requests=False,
        has_request=False,
        pod_driven=False,
        idle_steps=(),
        idle_step_above=Decimal(1),
        level_unit=None,
        focus=FocusService("Networking", "Network Connectivity", "Pool Network Egress"),
        node_capacity=None,
    ),
    ResourceSpec(
        name=Resource.GPU,
        usage_unit="gpu-hour",
        price_units=_per_hour_and_month("gpu-hour", "gpu-month"),
        per_tier=False,
        quota=Quota("gpu", "requests.nvidia.com/gpu", 1, _str),
        # kube-state-metrics sanitises the extended resource name nvidia.com/gpu into a label value
        # (kubernetes/kube-state-metrics internal/store/pod.go: sanitizeLabelName(string(resourceName))).
        request_label="nvidia_com_gpu",
        used_source=KUBE_STATE,
        measured=None,
        used_from_requests=True,
        has_request=True,
        pod_driven=True,
        idle_steps=(),
        idle_step_above=Decimal(1),  # GPUs come whole
        level_unit="GPUs",
        focus=FocusService("Compute", "Containers", "Pool Compute (GPU)"),
        node_capacity="gpu",
    ),
    ResourceSpec(
        name=Resource.LOAD_BALANCER,
        usage_unit="lb-hour",
        price_units=_per_hour_and_month("lb-hour", "lb-month"),
        per_tier=False,
        quota=Quota("load_balancers", "services.loadbalancers", 1, _str),
        request_label=None,  # a LoadBalancer Service is its own request
        used_source=KUBE_STATE,
        measured=Measured("load_balancers_used", 1, counter=False, also_requested=True),
        used_from_requests=False,
        has_request=True,
        pod_driven=False,
        idle_steps=(),
        idle_step_above=Decimal(1),  # addresses come whole
        level_unit="load balancers",
        focus=FocusService("Networking", "Network Infrastructure", "Pool Load Balancer Addresses"),
        node_capacity=None,
    ),
)

_TABLE: dict[str, ResourceSpec] = {spec.name: spec for spec in BUILT_IN}


class UnknownResourceError(KeyError):
    """A resource name no spec declares."""

    def __str__(self) -> str:
        return (
            f"unknown resource {self.args[0]!r}: the billable resources are {', '.join(_TABLE)}; "
            "declare a new one with a ResourceSpec in pool_catalog/resources.py"
        )


def specs() -> tuple[ResourceSpec, ...]:
    """Every billable resource, built-ins first, in declaration order (the order of reports)."""
    return tuple(_TABLE.values())


def names() -> tuple[str, ...]:
    return tuple(_TABLE)


def spec_of(name: str) -> ResourceSpec:
    """The spec of `name`; raises UnknownResourceError naming the known resources."""
    try:
        return _TABLE[str(name)]
    except KeyError:
        raise UnknownResourceError(str(name)) from None


def register(spec: ResourceSpec) -> None:
    """Add a billable resource beside the built-in ones (its price goes in rates.yaml under its name)."""
    if spec.name in _TABLE:
        raise ValueError(f"resource {spec.name!r} is already declared")
    if spec.per_tier:
        raise ValueError(f"resource {spec.name!r}: only storage is priced per tier")
    if spec.node_capacity is not None:
        raise ValueError(f"resource {spec.name!r}: node pools state capacity of cpu, memory and gpu only")
    taken = {key for other in _TABLE.values() if other.quota for key in other.quota.all_keys()}
    if spec.quota and taken & set(spec.quota.all_keys()):
        raise ValueError(f"resource {spec.name!r}: quota key {spec.quota.key!r} already bounds another resource")
    _TABLE[spec.name] = spec


def unregister(name: str) -> None:
    """Remove a registered resource; the built-ins stay."""
    if name in {spec.name for spec in BUILT_IN}:
        raise ValueError(f"resource {name!r} is built in")
    _TABLE.pop(name, None)


@contextmanager
def registered(spec: ResourceSpec) -> Iterator[ResourceSpec]:
    """`spec` registered for the duration of a block (tests, one-off runs)."""
    register(spec)
    try:
        yield spec
    finally:
        unregister(spec.name)


def quota_resource(key: str) -> tuple[str, float] | None:
    """Decode a ResourceQuota `hard` key (kube_resourcequota's `resource` label) → (resource, scale).

    Per-storage-class keys are decoded by the caller, which knows the class → tier map
    (`STORAGE_CLASS_QUOTA_SUFFIX`)."""
    for spec in _TABLE.values():
        if spec.quota and not spec.per_tier and key in spec.quota.all_keys():
            return spec.name, spec.quota.scale
    return None


def request_resource(label: str) -> tuple[str, float] | None:
    """Decode kube_pod_container_resource_requests' `resource` label → (resource, scale to the usage unit)."""
    for spec in _TABLE.values():
        if spec.request_label == label:
            return spec.name, spec.quota.scale if spec.quota else 1.0
    return None
