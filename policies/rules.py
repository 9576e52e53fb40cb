"""The Resource Pool's CrossGuard rules as pure functions, shared by the pack and `pool check`.

Resource rules look at one resource (type token and input properties); stack rules look at every
resource the program declares, because "each unit namespace has a quota" or "the quotas of a node
pool fit its servers" are facts about the whole stack. Capacity, overcommit, prices and budgets are
not in any Kubernetes object, so the two rules that need them read the catalog named by their
`catalog` config value. Nothing here starts the policy server: `__main__.py` does, alone.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from pool_catalog import Catalog, CatalogError, load_catalog
from pool_catalog.capacity import over_capacity, pool_capacity
from pool_catalog.conventions import (
    BUSINESS_UNIT_LABEL,
    BUSINESS_UNIT_TYPE,
    COST_CENTER_LABEL,
    NAMESPACE_NAME_LABEL,
    NODE_POOL_LABEL,
    NODE_SELECTOR_ANNOTATION,
    POD_SECURITY_ENFORCE_LABEL,
    RESOURCE_POOL_TYPE,
    STORAGE_TIER_LABEL,
    storage_quota_key,
)
from pool_catalog.files import unit_file
from pool_catalog.models import Cluster, Namespace, Quota
from pool_catalog.numbers import format_money
from pool_catalog.pricing import MissingPriceError, quota_monthly_cost, rate_version_for
from pool_catalog.quantities import parse
from pool_catalog.quota_map import decode_quota, node_amounts

NAMESPACE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
SERVICE = "kubernetes:core/v1:Service"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE_BINDING = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"

STORAGE_CLASS_QUOTA_SUFFIX = ".storageclass.storage.k8s.io/"
CLUSTER_ADMIN = "cluster-admin"
EVERY_ADDRESS = ("0.0.0.0/0", "::/0")
DEFAULT_CATALOG = "catalog"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Where Pulumi.yaml lives; a relative `catalog` config value is read from here, as the program does."""


@dataclass(frozen=True)
class StackResource:
    """One declared resource, as both the policy engine and the mocks describe it."""

    type: str
    name: str
    props: Mapping[str, Any]
    parent_type: str | None = None
    urn: str | None = None


@dataclass(frozen=True)
class Breach:
    """One violation a stack rule found: what is wrong, whose unit, which resource (None: the stack)."""

    message: str
    unit: str | None = None
    resource: StackResource | None = None


ResourceCheck = Callable[[str, Mapping[str, Any], Mapping[str, Any]], Iterable[str]]
StackCheck = Callable[[Sequence[StackResource], Mapping[str, Any], "Catalog | None"], Iterable[Breach]]


@dataclass(frozen=True)
class Rule:
    """A rule as the pack registers it; `check` is a pure function of resources and settings."""

    name: str
    description: str
    enforcement: EnforcementLevel
    scope: Literal["resource", "stack"]
    check: ResourceCheck | StackCheck
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    """JSON Schema of each config property, with its default."""
    needs_catalog: bool = False

    def settings(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Config values with the schema's defaults filled in (the engine may not send defaults)."""
        values = {key: schema["default"] for key, schema in self.config.items() if "default" in schema}
        values.update({k: v for k, v in (given or {}).items() if k != "enforcementLevel"})
        return values

    def policy(self) -> Policy:
        """The CrossGuard policy object running `check` inside `pulumi preview`."""
        schema = PolicyConfigSchema(properties=self.config) if self.config else None
        if self.scope == "resource":
            return ResourceValidationPolicy(
                name=self.name,
                description=self.description,
                enforcement_level=self.enforcement,
                config_schema=schema,
                validate=self._validate_resource,
            )
        return StackValidationPolicy(
            name=self.name,
            description=self.description,
            enforcement_level=self.enforcement,
            config_schema=schema,
            validate=self._validate_stack,
        )

    def _validate_resource(self, args: ResourceValidationArgs, report: ReportViolation) -> None:
        check: ResourceCheck = self.check  # type: ignore[assignment]
        for message in check(args.resource_type, args.props, self.settings(args.get_config())):
            report(message, None)

    def _validate_stack(self, args: StackValidationArgs, report: ReportViolation) -> None:
        check: StackCheck = self.check  # type: ignore[assignment]
        settings = self.settings(args.get_config())
        resources = [
            StackResource(
                type=r.resource_type,
                name=r.name,
                props=r.props,
                parent_type=r.parent.resource_type if r.parent is not None else None,
                urn=r.urn,
            )
            for r in args.resources
        ]
        catalog = None
        if self.needs_catalog:
            try:
                catalog = catalog_at(settings.get("catalog", DEFAULT_CATALOG))
            except CatalogError as e:
                report(f"cannot read the catalog named by config {self.name}.catalog: {e}", None)
                return
        for breach in check(resources, settings, catalog):
            report(breach.message, breach.resource.urn if breach.resource is not None else None)


def catalog_at(path: str) -> Catalog:
    """The catalog at `path` (relative paths from the project root), loaded once per policy run."""
    location = Path(path)
    if not location.is_absolute():
        location = PROJECT_ROOT / location
    return _load_catalog(str(location))


@lru_cache(maxsize=4)
def _load_catalog(path: str) -> Catalog:
    return load_catalog(path)


# ----------------------------------------------------------------------------- property access


def metadata(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("metadata") or {}


def labels_of(props: Mapping[str, Any]) -> Mapping[str, str]:
    return metadata(props).get("labels") or {}


def describe(resource_type: str, props: Mapping[str, Any]) -> str:
    """ "ResourceQuota di-api/pool-quota", "Namespace di-api": kind and Kubernetes name."""
    kind = props.get("kind") or resource_type.rsplit(":", 1)[-1]
    meta = metadata(props)
    name = meta.get("name", "?")
    return f"{kind} {meta['namespace']}/{name}" if meta.get("namespace") else f"{kind} {name}"


def is_unit_namespace(resource: StackResource) -> bool:
    """A namespace the catalog gives to a business unit: declared by a BusinessUnit or labelled as one."""
    return resource.type == NAMESPACE and (
        resource.parent_type == BUSINESS_UNIT_TYPE or BUSINESS_UNIT_LABEL in labels_of(resource.props)
    )


def by_namespace(resources: Sequence[StackResource], resource_type: str) -> dict[str, list[StackResource]]:
    """Namespaced resources of one type, grouped by their metadata.namespace."""
    grouped: dict[str, list[StackResource]] = defaultdict(list)
    for resource in resources:
        if resource.type == resource_type:
            grouped[metadata(resource.props).get("namespace", "")].append(resource)
    return grouped


def namespace_name(resource: StackResource) -> str:
    return metadata(resource.props).get("name") or resource.name


def declared_tiers(resources: Sequence[StackResource]) -> dict[str, str]:
    """StorageClass name → storage tier, for the classes the stack declares as pool tiers."""
    return {
        metadata(r.props).get("name", r.name): labels_of(r.props)[STORAGE_TIER_LABEL]
        for r in resources
        if r.type == STORAGE_CLASS and STORAGE_TIER_LABEL in labels_of(r.props)
    }


def quota_storage_classes(hard: Mapping[str, Any]) -> set[str]:
    """StorageClass names a ResourceQuota `hard` map bounds ("pool-hot.storageclass.storage.k8s.io/…")."""
    return {key.split(STORAGE_CLASS_QUOTA_SUFFIX, 1)[0] for key in hard if STORAGE_CLASS_QUOTA_SUFFIX in key}


def quota_hard(resource: StackResource) -> Mapping[str, Any]:
    return (resource.props.get("spec") or {}).get("hard") or {}


# ----------------------------------------------------------------------------- resource rules


def check_namespace_labels(resource_type: str, props: Mapping[str, Any], settings: Mapping[str, Any]) -> Iterator[str]:
    """Chargeback attributes usage by these labels: a namespace without them is billed to nobody."""
    if resource_type != NAMESPACE:
        return
    name = metadata(props).get("name", "?")
    if name in settings.get("exempt_namespaces", []):
        return
    labels = labels_of(props)
    missing = [key for key in settings.get("required_labels", []) if not str(labels.get(key) or "").strip()]
    if missing:
        yield (
            f"Namespace {name} has no {' or '.join(missing)} label: its usage could not be charged to a "
            "business unit; declare the namespace in the unit's catalog file instead of by hand"
        )


def check_pod_security(resource_type: str, props: Mapping[str, Any], settings: Mapping[str, Any]) -> Iterator[str]:
    """Unit namespaces enforce a Pod Security level: privileged pods, host paths or host networking reach the node."""
    if resource_type != NAMESPACE or not labels_of(props).get(BUSINESS_UNIT_LABEL):
        return
    level = labels_of(props).get(POD_SECURITY_ENFORCE_LABEL)
    allowed = list(settings.get("levels", []))
    if level not in allowed:
        yield (
            f"Namespace {metadata(props).get('name', '?')} enforces Pod Security level {level or 'none'}: "
            f"pods could reach the node and other units' workloads; label it {POD_SECURITY_ENFORCE_LABEL}="
            f"{' or '.join(allowed)} (the catalog's pod_security)"
        )


def check_rbac_scope(resource_type: str, props: Mapping[str, Any], settings: Mapping[str, Any]) -> Iterator[str]:
    """Units get rights inside their namespaces only, and not over the objects that bound them there."""
    what = describe(resource_type, props)
    role = (props.get("roleRef") or {}).get("name", "")
    subjects = props.get("subjects") or []
    if resource_type == ROLE_BINDING and role in settings.get("forbidden_namespace_roles", []):
        names = ", ".join(f"{s.get('kind')} {s.get('name')}" for s in subjects) or "no subjects"
        yield (
            f"{what} grants {role} to {names}: that role can change or delete the namespace's NetworkPolicies "
            "(and, for cluster-admin and admin, more), which isolate and bound the unit; bind the ClusterRole "
            "resource-pool-unit-owner instead"
        )
    if resource_type == CLUSTER_ROLE_BINDING:
        allowed = set(settings.get("platform_groups", []))
        for subject in subjects:
            if subject.get("kind") in ("Group", "User") and subject.get("name") not in allowed:
                yield (
                    f"{what} gives {subject.get('kind')} {subject.get('name')} the role {role or '?'} in every "
                    "namespace of the cluster; grant unit groups roles per namespace with RoleBindings, or list "
                    "a platform group in this rule's config platform_groups"
                )


# ----------------------------------------------------------------------------- stack rules


def check_quota_and_limits(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None = None
) -> Iterator[Breach]:
    """Without a complete quota a namespace can take what others paid for; without limits, pods bypass it."""
    quotas = by_namespace(resources, RESOURCE_QUOTA)
    limit_ranges = by_namespace(resources, LIMIT_RANGE)
    tier_classes = sorted(declared_tiers(resources))
    for ns in (r for r in resources if is_unit_namespace(r)):
        name, unit = namespace_name(ns), labels_of(ns.props).get(BUSINESS_UNIT_LABEL)
        hards = [quota_hard(q) for q in quotas.get(name, [])]
        if not hards:
            yield Breach(f"namespace {name} has no ResourceQuota: nothing bounds what it allocates", unit, ns)
        else:
            covered = {key for hard in hards for key in hard}
            wanted = list(settings.get("required_keys", [])) + [storage_quota_key(cls) for cls in tier_classes]
            missing = [key for key in wanted if key not in covered]
            if missing:
                yield Breach(
                    f"namespace {name}: its ResourceQuota does not bound {', '.join(missing)}; "
                    "set each (0 for a tier the unit was not granted)",
                    unit,
                    ns,
                )
        if not limit_ranges.get(name):
            yield Breach(
                f"namespace {name} has no LimitRange: containers without requests escape the quota's accounting",
                unit,
                ns,
            )


def denies_ingress_by_default(policy: StackResource) -> bool:
    """Selects every pod for ingress: traffic its rules do not allow is dropped."""
    spec = policy.props.get("spec") or {}
    selector = spec.get("podSelector")
    selects_all = selector is not None and not (selector.get("matchLabels") or selector.get("matchExpressions"))
    return selects_all and "Ingress" in (spec.get("policyTypes") or [])


def check_default_deny_ingress(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None = None
) -> Iterator[Breach]:
    """Units share nodes; only ingress isolation keeps one unit's pods from calling another's."""
    policies = by_namespace(resources, NETWORK_POLICY)
    for ns in (r for r in resources if is_unit_namespace(r)):
        name = namespace_name(ns)
        if not any(denies_ingress_by_default(p) for p in policies.get(name, [])):
            yield Breach(
                f"namespace {name} has no default-deny ingress NetworkPolicy (podSelector {{}} with policyTypes "
                "[Ingress]): any pod in the cluster can reach its pods",
                labels_of(ns.props).get(BUSINESS_UNIT_LABEL),
                ns,
            )


def denies_egress_by_default(policy: StackResource) -> bool:
    """Selects every pod for egress: traffic its rules do not allow is dropped."""
    spec = policy.props.get("spec") or {}
    selector = spec.get("podSelector")
    selects_all = selector is not None and not (selector.get("matchLabels") or selector.get("matchExpressions"))
    return selects_all and "Egress" in (spec.get("policyTypes") or [])


def open_egress(policy: StackResource) -> list[str]:
    """Egress rules of a policy that reach every address: no `to` at all, or an ipBlock of 0.0.0.0/0 or ::/0."""
    found = []
    for index, rule in enumerate((policy.props.get("spec") or {}).get("egress") or []):
        peers = rule.get("to")
        if not peers:
            found.append(f"egress[{index}] has no `to` (every destination)")
        for peer in peers or []:
            cidr = (peer.get("ipBlock") or {}).get("cidr")
            if cidr in EVERY_ADDRESS:
                found.append(f"egress[{index}] allows {cidr}")
    return found


def check_default_deny_egress(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None = None
) -> Iterator[Breach]:
    """Egress is denied unless the catalog lists it: a compromised pod cannot send data anywhere it likes."""
    policies = by_namespace(resources, NETWORK_POLICY)
    for ns in (r for r in resources if is_unit_namespace(r)):
        name, unit = namespace_name(ns), labels_of(ns.props).get(BUSINESS_UNIT_LABEL)
        in_namespace = policies.get(name, [])
        if not any(denies_egress_by_default(p) for p in in_namespace):
            yield Breach(
                f"namespace {name} has no default-deny egress NetworkPolicy (podSelector {{}} with policyTypes "
                "[Egress]): its pods can send traffic anywhere",
                unit,
                ns,
            )
        for policy in in_namespace:
            for finding in open_egress(policy):
                yield Breach(
                    f"NetworkPolicy {name}/{metadata(policy.props).get('name', '?')}: {finding}; list the networks "
                    "the unit needs in the catalog's egress_cidrs instead",
                    unit,
                    policy,
                )


# Service fields as the Kubernetes API defines them (core/v1 ServiceSpec:
# https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/#ServiceSpec): `type`
# (ClusterIP, NodePort, LoadBalancer, ExternalName), `externalName` (a DNS name the cluster DNS answers with a
# CNAME), `externalIPs` (addresses every node's kube-proxy captures for this Service), `ports[].nodePort`, and
# `allocateLoadBalancerNodePorts` (false: a LoadBalancer Service opens no node ports).
IN_CLUSTER_DNS = ("svc", "pod")
"""The label after the namespace in cluster DNS names: <svc>.<ns>.svc.<domain>, <ip>.<ns>.pod.<domain>."""


def external_name_namespace(external_name: str) -> str | None:
    """The namespace an ExternalName resolves into inside the cluster, or None for a name outside it.

    <svc>.<ns>.svc[.<cluster domain>] and <pod>.<svc>.<ns>.svc… are cluster DNS names; a bare <svc>.<ns> is
    completed to one by the resolver's search path (…svc.<cluster domain>), so it counts as one too."""
    labels = external_name.strip().rstrip(".").lower().split(".")
    for index in range(len(labels) - 1, 0, -1):
        if labels[index] in IN_CLUSTER_DNS:
            return labels[index - 1]
    return labels[1] if len(labels) == 2 else None


def opens_node_ports(spec: Mapping[str, Any]) -> bool:
    """Whether a LoadBalancer Service takes node ports, as the API server's quota counts them: every port unless
    allocateLoadBalancerNodePorts is false, then the ports with an explicit nodePort (kubernetes
    pkg/quota/v1/evaluator/core/services.go, portsWithNodePorts)."""
    if spec.get("allocateLoadBalancerNodePorts") is not False:
        return True
    return any(port.get("nodePort") for port in spec.get("ports") or [])


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().rstrip("."))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class _UnitNamespace:
    """A namespace given to a unit: whose, and its catalog entry (None: labelled as a unit's, not in the catalog)."""

    name: str
    unit: str
    entry: Namespace | None
    file: str

    @property
    def where(self) -> str:
        """How a message points at the namespace's entry: "namespace di-api in catalog/business-units/…"."""
        return f"namespace {self.name} in {self.file}"


def _unit_namespaces(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog
) -> tuple[Cluster | str, dict[str, _UnitNamespace]]:
    cluster = stack_cluster(resources, settings, catalog)
    found: dict[str, _UnitNamespace] = {}
    for r in resources:
        if is_unit_namespace(r):
            unit = str(labels_of(r.props).get(BUSINESS_UNIT_LABEL) or "")
            found[namespace_name(r)] = _UnitNamespace(namespace_name(r), unit, None, str(unit_file(catalog.root, unit)))
    if not isinstance(cluster, str):
        for unit, ns in catalog.namespaces(cluster.name):
            found[ns.name] = _UnitNamespace(ns.name, unit.id, ns, str(unit_file(catalog.root, unit.id)))
    return cluster, found


def check_service_tenancy(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None
) -> Iterator[Breach]:
    """Services that would reach across units or bypass the NetworkPolicies: the shared ingress controller
    follows an ExternalName wherever it points, externalIPs capture addresses on every node (CVE-2020-8554),
    and node ports open pods on every node's address. Services in platform namespaces are not checked."""
    assert catalog is not None
    cluster, namespaces = _unit_namespaces(resources, settings, catalog)
    if isinstance(cluster, str):
        yield Breach(f"cannot check Services: {cluster}")
        return
    ingress_namespace = cluster.network.ingress_namespace
    for service in (r for r in resources if r.type == SERVICE):
        ns_name = metadata(service.props).get("namespace", "")
        home = namespaces.get(ns_name)
        if home is None:
            continue
        what = describe(service.type, service.props)
        spec = service.props.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        quota = home.entry.quota if home.entry is not None else None
        where = home.where
        if kind == "ExternalName":
            target = str(spec.get("externalName") or "")
            into = external_name_namespace(target)
            owner = namespaces.get(into or "")
            if _is_ip(target):
                yield Breach(
                    f"{what} is an ExternalName to the address {target}: it may be another unit's Service or pod, "
                    f"and the ingress controller ({ingress_namespace}) would proxy to it; name a host outside the "
                    "cluster, or reach another unit through a capability it exposes (`consumes:` in "
                    f"{home.file})",
                    home.unit,
                    service,
                )
            elif owner is not None and owner.unit != home.unit:
                yield Breach(
                    f"{what} is an ExternalName to {target}, in namespace {into} of unit {owner.unit!r}: the ingress "
                    f"controller ({ingress_namespace}) would proxy this unit's Ingresses into the other unit; "
                    f"ask {owner.unit!r} to expose a capability and declare `consumes:` on {where}, and call it "
                    "directly",
                    home.unit,
                    service,
                )
        external_ips = spec.get("externalIPs") or []
        if external_ips:
            yield Breach(
                f"{what} sets externalIPs {', '.join(map(str, external_ips))}: every node would capture traffic to "
                "these addresses, whoever owns them (CVE-2020-8554); remove them and use a LoadBalancer Service "
                f"with an address of the unit's load_balancer_addresses (quota.load_balancers of {where})",
                home.unit,
                service,
            )
        node_ports = quota.node_ports if quota is not None else 0
        if kind == "NodePort" and node_ports == 0:
            yield Breach(
                f"{what} is of type NodePort, which {where} does not allow: a node port opens its pods on every "
                f"node's address; set quota.node_ports on {where} (the platform team reviews it), or use a "
                "ClusterIP Service behind an Ingress",
                home.unit,
                service,
            )
        if kind == "LoadBalancer":
            if quota is None or quota.load_balancers == 0:
                yield Breach(
                    f"{what} is of type LoadBalancer, which {where} does not allow; set quota.load_balancers on "
                    f"{where} (and the unit's load_balancer_addresses), or use a ClusterIP Service behind an Ingress",
                    home.unit,
                    service,
                )
            elif node_ports == 0 and opens_node_ports(spec):
                yield Breach(
                    f"{what} is of type LoadBalancer and opens node ports, which {where} does not allow (its quota "
                    "refuses them); set allocateLoadBalancerNodePorts: false (MetalLB needs none), or set "
                    f"quota.node_ports on {where}",
                    home.unit,
                    service,
                )
    for policy in (r for r in resources if r.type == NETWORK_POLICY):
        ns_name = metadata(policy.props).get("namespace", "")
        home = namespaces.get(ns_name)
        if home is None:
            continue
        for index, rule in enumerate((policy.props.get("spec") or {}).get("ingress") or []):
            if not rule.get("ports") and any(
                _selects_namespace(peer, ingress_namespace) for peer in rule.get("from") or []
            ):
                yield Breach(
                    f"{describe(policy.type, policy.props)}: ingress[{index}] admits the ingress controller "
                    f"({ingress_namespace}) on every port, so any unit's Ingress could reach these pods through it; "
                    f"list the ports it may reach as `ingress: {{ports: [...]}}` on {home.where}",
                    home.unit,
                    policy,
                )


def _selects_namespace(peer: Mapping[str, Any], name: str) -> bool:
    """A NetworkPolicy peer whose namespaceSelector takes in namespace `name` (by its name label), or every one."""
    selector = peer.get("namespaceSelector")
    if selector is None:
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return True
    if match_labels.get(NAMESPACE_NAME_LABEL) == name:
        return True
    return any(
        e.get("key") == NAMESPACE_NAME_LABEL and e.get("operator") == "In" and name in (e.get("values") or [])
        for e in expressions
    )


def check_storage_classes(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None = None
) -> Iterator[Breach]:
    """A quota on an undeclared class bounds nothing that is billed: chargeback prices tiers only."""
    tiers = declared_tiers(resources)
    for quota in (r for r in resources if r.type == RESOURCE_QUOTA):
        unknown = sorted(quota_storage_classes(quota_hard(quota)) - set(tiers))
        if unknown:
            known = ", ".join(sorted(tiers)) or "none are declared"
            yield Breach(
                f"{describe(quota.type, quota.props)} bounds storage class {', '.join(unknown)}, which is not a "
                f"storage tier of the pool (tier classes: {known}); add the tier to pool.yaml or fix the name",
                labels_of(quota.props).get(BUSINESS_UNIT_LABEL),
                quota,
            )


def stack_cluster(resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog) -> Cluster | str:
    """The catalog cluster this stack provisions, or why it cannot be told."""
    names = [r.name for r in resources if r.type == RESOURCE_POOL_TYPE]
    name = settings.get("cluster") or (names[0] if len(names) == 1 else None)
    if name is None and len(catalog.pool.clusters) == 1:
        return catalog.pool.clusters[0]
    if name is None:
        return "the stack declares no single ResourcePool and config cluster is not set"
    cluster = catalog.pool.cluster(name)
    if cluster is None:
        known = ", ".join(c.name for c in catalog.pool.clusters)
        return f"cluster {name!r} is not in the catalog's pool.yaml (clusters: {known})"
    return cluster


@dataclass
class _Allocation:
    """Quota totals of the namespaces on one node pool or storage tier, and who holds them."""

    amounts: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    namespaces: list[str] = field(default_factory=list)


def check_node_pool_capacity(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None
) -> Iterator[Breach]:
    """Quotas are promises: their sum per node pool must fit the servers × overcommit, less headroom.

    Summed from the ResourceQuota objects themselves, so quotas declared outside the catalog count too.
    """
    assert catalog is not None
    cluster = stack_cluster(resources, settings, catalog)
    if isinstance(cluster, str):
        yield Breach(f"cannot check capacity: {cluster}")
        return
    headroom = Decimal(str(settings.get("headroom_percent", 0))) / 100
    namespaces = {namespace_name(r): r for r in resources if r.type == NAMESPACE}
    pools: dict[str, _Allocation] = defaultdict(_Allocation)
    tiers: dict[str, _Allocation] = defaultdict(_Allocation)
    tier_of_class = {t.class_name: t.name for t in cluster.storage_tiers}
    for quota in (r for r in resources if r.type == RESOURCE_QUOTA):
        ns_name = metadata(quota.props).get("namespace", "")
        unit = labels_of(quota.props).get(BUSINESS_UNIT_LABEL)
        hard = quota_hard(quota)
        try:
            amounts = node_amounts(hard)
            storage = {
                cls: parse(hard[storage_quota_key(cls)])
                for cls in quota_storage_classes(hard)
                if storage_quota_key(cls) in hard
            }
        except ValueError as e:
            yield Breach(f"{describe(quota.type, quota.props)}: {e}", unit, quota)
            continue
        for cls, size in storage.items():
            if cls in tier_of_class:
                tiers[tier_of_class[cls]].amounts["storage"] += size
                tiers[tier_of_class[cls]].namespaces.append(ns_name)
        pool_name = node_pool_of(namespaces.get(ns_name))
        if pool_name is None:
            if any(amounts.values()):
                yield Breach(
                    f"{describe(quota.type, quota.props)} grants quota in a namespace not pinned to a node pool "
                    f"(no {NODE_SELECTOR_ANNOTATION} annotation {NODE_POOL_LABEL}=<pool>): no server capacity "
                    "backs it; declare the namespace in the catalog",
                    unit,
                    quota,
                )
            continue
        if cluster.node_pool(pool_name) is None:
            yield Breach(
                f"namespace {ns_name} is pinned to node pool {pool_name!r}, which cluster {cluster.name!r} does not "
                f"have (pools: {', '.join(p.name for p in cluster.node_pools)})",
                unit,
                quota,
            )
            continue
        for resource, amount in amounts.items():
            pools[pool_name].amounts[resource] += amount
        pools[pool_name].namespaces.append(ns_name)
    for pool in cluster.node_pools:
        allocation = pools.get(pool.name, _Allocation())
        for resource, (capacity, ratio) in pool_capacity(cluster, pool).items():
            message = over_capacity(
                f"node pool {pool.name!r}", resource, allocation.amounts[resource], capacity, ratio, headroom
            )
            if message:
                holders = ", ".join(sorted(allocation.namespaces))
                yield Breach(f"{message}; add servers or shrink quotas of: {holders}")
    for tier in cluster.storage_tiers:
        allocation = tiers.get(tier.name, _Allocation())
        message = over_capacity(
            f"storage tier {tier.name!r}", "storage", allocation.amounts["storage"], tier.capacity, None, headroom
        )
        if message:
            yield Breach(f"{message}; add capacity or shrink quotas of: {', '.join(sorted(allocation.namespaces))}")


def node_pool_of(namespace: StackResource | None) -> str | None:
    """The node pool a namespace's pods are pinned to by the PodNodeSelector annotation."""
    if namespace is None:
        return None
    selector = (metadata(namespace.props).get("annotations") or {}).get(NODE_SELECTOR_ANNOTATION, "")
    for term in str(selector).split(","):
        key, _, value = term.partition("=")
        if key.strip() == NODE_POOL_LABEL and value.strip():
            return value.strip()
    return None


def quota_from_hard(hard: Mapping[str, Any], tier_of_class: Mapping[str, str]) -> Quota:
    """The catalog Quota a ResourceQuota `hard` map stands for (only what is priced); raises ValueError."""
    return decode_quota(hard, tier_of_class)


def check_unit_budget(
    resources: Sequence[StackResource], settings: Mapping[str, Any], catalog: Catalog | None
) -> Iterator[Breach]:
    """What a unit would pay per month if it used all of its quota, against the budget it declared."""
    assert catalog is not None
    cluster = stack_cluster(resources, settings, catalog)
    if isinstance(cluster, str):
        yield Breach(f"cannot price quotas: {cluster}")
        return
    priced_at = settings.get("priced_at")
    when = dt.datetime.fromisoformat(priced_at) if priced_at else None
    version = rate_version_for(catalog.rates, when)
    currency = catalog.rates.currency
    tier_of_class = {t.class_name: t.name for t in cluster.storage_tiers}
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for quota in (r for r in resources if r.type == RESOURCE_QUOTA):
        unit = labels_of(quota.props).get(BUSINESS_UNIT_LABEL)
        if unit is None:
            continue  # namespace-labels and capacity report unlabelled quotas
        try:
            costs[unit] += quota_monthly_cost(quota_from_hard(quota_hard(quota), tier_of_class), version).total
        except (ValueError, MissingPriceError) as e:
            yield Breach(f"{describe(quota.type, quota.props)} cannot be priced: {e}", unit, quota)
    budgets = {u.id: u.budget.monthly for u in catalog.units}
    for unit, cost in sorted(costs.items()):
        if unit not in budgets:
            yield Breach(f"unit {unit!r} has quotas but no budget: it has no file in the catalog", unit)
        elif cost > budgets[unit]:
            yield Breach(
                f"unit {unit!r}: full-quota monthly cost {format_money(cost, currency)} {currency} (prices effective "
                f"{version.effective_from:%Y-%m-%d}) is above its budget {format_money(budgets[unit], currency)} "
                f"{currency} by {format_money(cost - budgets[unit], currency)} {currency}; raise the budget or shrink "
                "quotas",
                unit,
            )


# ----------------------------------------------------------------------------- the pack


def string_list(default: list[str], description: str) -> dict[str, Any]:
    """Config schema of a list of names."""
    return {"type": "array", "items": {"type": "string"}, "default": default, "description": description}


CATALOG_CONFIG = {
    "catalog": {
        "type": "string",
        "default": DEFAULT_CATALOG,
        "description": "Catalog directory (capacity, overcommit, prices, budgets); relative to the project root.",
    },
    "cluster": {
        "type": "string",
        "description": "Catalog cluster of this stack; default: the stack's ResourcePool.",
    },
}

RULES: list[Rule] = [
    Rule(
        name="namespace-labels",
        description="Every namespace carries the business-unit and cost-center labels chargeback bills by.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="resource",
        check=check_namespace_labels,
        config={
            "required_labels": string_list(
                [BUSINESS_UNIT_LABEL, COST_CENTER_LABEL], "Labels every namespace must carry, non-empty."
            ),
            "exempt_namespaces": string_list([], "Platform namespaces the stack may declare without unit labels."),
        },
    ),
    Rule(
        name="quota-and-limits",
        description="Every unit namespace has a ResourceQuota bounding cpu, memory and each storage tier, "
        "and a LimitRange.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_quota_and_limits,
        config={
            "required_keys": string_list(
                ["requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "requests.storage"],
                "ResourceQuota keys besides the per-tier storage keys.",
            )
        },
    ),
    Rule(
        name="default-deny-ingress",
        description="Every unit namespace has a NetworkPolicy selecting all pods for Ingress (deny by default).",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_default_deny_ingress,
    ),
    Rule(
        name="default-deny-egress",
        description="Every unit namespace has a NetworkPolicy selecting all pods for Egress, and no egress rule "
        "reaches every address.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_default_deny_egress,
    ),
    Rule(
        name="pod-security-enforced",
        description="Every unit namespace enforces the baseline or restricted Pod Security Standard.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="resource",
        check=check_pod_security,
        config={"levels": string_list(["baseline", "restricted"], "Pod Security levels a unit namespace may enforce.")},
    ),
    Rule(
        name="storage-classes-are-tiers",
        description="Storage classes named in ResourceQuotas are storage tiers the pool declares.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_storage_classes,
    ),
    Rule(
        name="rbac-namespace-scoped",
        description="No RoleBinding gives cluster-admin, admin or edit (they can rewrite NetworkPolicies), and no "
        "ClusterRoleBinding gives a group or user cluster-wide rights, except listed platform groups.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="resource",
        check=check_rbac_scope,
        config={
            "platform_groups": string_list([], "Groups or users allowed in ClusterRoleBindings (the platform team)."),
            "forbidden_namespace_roles": string_list(
                [CLUSTER_ADMIN, "admin", "edit"], "ClusterRoles no RoleBinding may grant."
            ),
        },
    ),
    Rule(
        name="services-stay-in-their-unit",
        description="No Service in a unit namespace is an ExternalName into another unit's namespace or an IP, sets "
        "externalIPs, or is a NodePort or LoadBalancer the catalog does not allow; no NetworkPolicy admits the "
        "ingress controller on every port.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_service_tenancy,
        needs_catalog=True,
        config=dict(CATALOG_CONFIG),
    ),
    Rule(
        name="node-pool-capacity",
        description="Per node pool the quotas sum to at most servers × overcommit (less headroom); per storage "
        "tier to at most its capacity.",
        enforcement=EnforcementLevel.MANDATORY,
        scope="stack",
        check=check_node_pool_capacity,
        needs_catalog=True,
        config={
            **CATALOG_CONFIG,
            "headroom_percent": {
                "type": "number",
                "minimum": 0,
                "maximum": 100,
                "default": 0,
                "description": "Share of capacity × overcommit kept free (e.g. 25 for a server failure in four).",
            },
        },
    ),
    Rule(
        name="unit-budget",
        description="A unit's quotas held for a whole month cost at most its monthly budget.",
        enforcement=EnforcementLevel.ADVISORY,
        scope="stack",
        check=check_unit_budget,
        needs_catalog=True,
        config={
            **CATALOG_CONFIG,
            "priced_at": {
                "type": "string",
                "description": "ISO timestamp whose rate-card version prices the quotas; default: now.",
            },
        },
    ),
]


def policies() -> list[Policy]:
    """The CrossGuard policies of the pack, one per rule."""
    return [rule.policy() for rule in RULES]
