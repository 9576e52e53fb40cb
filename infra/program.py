"""The Pulumi program for one cluster: catalog in, components and stack outputs out.

`build` is what `pulumi up` runs (through `main`, which reads the stack config once) and what the
mocks in `infra.mocks` run for `pool render`, `pool validate` and `pool check`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pulumi

from pool_catalog import Catalog, CatalogError, Finding, load_catalog
from pool_catalog.conventions import METALLB_NAMESPACE
from pool_catalog.files import UNITS_DIR, field_path
from pool_catalog.loader import line_in
from pool_catalog.models import Cluster, range_within
from pool_catalog.pricing import MissingPriceError, namespace_monthly_cost, rate_version_for, round_money

from .cluster_state import FACTS_READER, ClusterFacts, read_cluster
from .components import (
    AddressPoolSpec,
    BusinessUnit,
    BusinessUnitArgs,
    CapabilityLink,
    ResourcePool,
    ResourcePoolArgs,
)
from .components.business_unit import quota_hard
from .errors import ProgramError

CONFIG_NAMESPACE = "resource-pool"
DEFAULT_CATALOG = "catalog"
MissingNodes = Literal["error", "warn"]
MISSING_NODES_CONFIG = "missingNodes"


def build(
    catalog: Catalog,
    cluster_name: str,
    *,
    priced_at: dt.datetime | None = None,
    cluster_facts: Callable[[Cluster], ClusterFacts] | None = None,
    missing_nodes: MissingNodes = "error",
) -> dict[str, Any]:
    """Declare every resource of `cluster_name` and return the stack outputs.

    Raises ProgramError for an unknown cluster, for servers that are not Nodes of the cluster
    (unless `missing_nodes` is "warn": then they are skipped with a warning) and for MetalLB pools
    where MetalLB is not installed; CatalogError for catalog values Kubernetes would reject at
    apply time (so `pulumi preview` already fails, with the file and field). `cluster_facts` reads
    what the cluster holds; None assumes the cluster the catalog describes (as under mocks).
    """
    cluster = catalog.pool.cluster(cluster_name)
    if cluster is None:
        known = ", ".join(c.name for c in catalog.pool.clusters)
        raise ProgramError(
            f"cluster {cluster_name!r} is not in {Path(catalog.root) / 'pool.yaml'} (clusters: {known}); "
            f"set `pulumi config set {CONFIG_NAMESPACE}:cluster <name>`"
        )
    findings = container_default_findings(catalog, cluster)
    if findings:
        raise CatalogError(findings)

    facts = (cluster_facts or ClusterFacts.assumed)(cluster)
    absent = absent_nodes(catalog, cluster, facts, missing_nodes)
    pools = address_pool_specs(catalog, cluster) if cluster.network.address_pools else []
    if pools and cluster.network.load_balancer_ranges:
        require_metallb(catalog, cluster, facts, pools)

    capabilities = capability_links(catalog, cluster)
    ResourcePool(cluster.name, ResourcePoolArgs(cluster=cluster, address_pools=pools, absent_nodes=absent))
    for unit in catalog.units:
        namespaces = [ns for u, ns in catalog.namespaces(cluster.name) if u.id == unit.id]
        if namespaces:
            BusinessUnit(
                unit.id,
                BusinessUnitArgs(unit=unit, cluster=cluster, namespaces=namespaces, capabilities=capabilities),
            )
    return stack_outputs(catalog, cluster, priced_at)


def absent_nodes(catalog: Catalog, cluster: Cluster, facts: ClusterFacts, missing: MissingNodes) -> frozenset[str]:
    """Catalog servers that are not Nodes of the cluster; an error unless `missing` is "warn".

    A node patch is a server-side apply of the Node: for a name the cluster does not know it would
    create a Node object with no kubelet behind it, which the scheduler would then use.
    """
    pool_yaml = Path(catalog.root) / "pool.yaml"
    absent = [
        (pool.name, node.name) for pool in cluster.node_pools for node in pool.nodes if node.name not in facts.nodes
    ]
    if not absent:
        return frozenset()
    listed = ", ".join(f"{name} (node pool {pool})" for pool, name in absent)
    if missing == "warn":
        pulumi.log.warn(
            f"cluster {cluster.name!r}: {listed} not a Node in {facts.source}; their labels and taints are not "
            f"applied until the server joins the cluster ({CONFIG_NAMESPACE}:{MISSING_NODES_CONFIG} is warn)"
        )
        return frozenset(name for _, name in absent)
    raise ProgramError(
        f"cluster {cluster.name!r}: {listed} in {pool_yaml} {'is' if len(absent) == 1 else 'are'} not a Node in "
        f"{facts.source}; join the server to the cluster (its kubelet registers the Node) or remove it from "
        f"pool.yaml — or, to patch only the servers present, `pulumi config set "
        f"{CONFIG_NAMESPACE}:{MISSING_NODES_CONFIG} warn`"
    )


def require_metallb(catalog: Catalog, cluster: Cluster, facts: ClusterFacts, pools: list[AddressPoolSpec]) -> None:
    """Stop before planning MetalLB objects in a cluster without MetalLB (the API would answer 404 mid-update)."""
    missing = facts.missing_metallb()
    if not missing:
        return
    units = ", ".join(spec.unit_id for spec in pools)
    raise ProgramError(
        f"cluster {cluster.name!r} hands out load-balancer addresses to {units} through MetalLB, but "
        f"{facts.source} has no {' and no '.join(missing)}. Install MetalLB (v0.13 or later, which serves "
        f"metallb.io/v1beta1 into the {METALLB_NAMESPACE} namespace) first, or turn the address pools off with "
        f"`network: {{address_pools: false}}` for cluster {cluster.name} in {Path(catalog.root) / 'pool.yaml'}"
    )


def capability_links(catalog: Catalog, cluster: Cluster) -> dict[str, CapabilityLink]:
    """Capabilities exposed in `cluster`, each with the cluster's namespaces that consume it."""
    pairs = catalog.namespaces(cluster.name)
    links = {
        capability.name: CapabilityLink(capability=capability, provider_namespace=ns.name, consumer_namespaces=[])
        for _, ns in pairs
        for capability in ns.exposes
    }
    for _, ns in pairs:
        for name in ns.consumes:
            if name in links and ns.name not in links[name].consumer_namespaces:
                links[name].consumer_namespaces.append(ns.name)
    return links


def address_pool_specs(catalog: Catalog, cluster: Cluster) -> list[AddressPoolSpec]:
    """Each unit's addresses that lie inside this cluster's load-balancer ranges."""
    ranges = cluster.network.load_balancer_ranges
    specs = []
    for unit in catalog.units:
        namespaces = [ns.name for u, ns in catalog.namespaces(cluster.name) if u.id == unit.id]
        if not namespaces:
            continue
        inside = [text for text in unit.load_balancer_addresses if range_within(text, ranges)]
        if inside:
            specs.append(AddressPoolSpec(unit_id=unit.id, addresses=inside, namespaces=namespaces))
    return specs


def container_default_findings(catalog: Catalog, cluster: Cluster) -> list[Finding]:
    """LimitRange defaults above the container maximum: the API server would reject the LimitRange."""
    findings = []
    for unit in catalog.units:
        file = str(Path(catalog.root) / UNITS_DIR / f"{unit.id}.yaml")
        for index, ns in enumerate(unit.namespaces):
            if catalog.cluster_of(ns).name != cluster.name:
                continue
            defaults, quota = ns.container_defaults, ns.quota
            checks = [
                ("default_cpu", defaults.default_cpu, defaults.max_cpu, quota.cpu_limit, "limits_cpu"),
                ("default_memory", defaults.default_memory, defaults.max_memory, quota.memory_limit, "limits_memory"),
            ]
            for field, default, explicit_max, quota_limit, quota_field in checks:
                if explicit_max is None and default > quota_limit:
                    loc = ("namespaces", index, "container_defaults", field)
                    findings.append(
                        Finding(
                            file,
                            field_path(loc),
                            f"namespace {ns.name!r}: default container limit {default} is above the namespace's "
                            f"{quota_field} quota {quota_limit}",
                            f"lower container_defaults.{field} or raise quota.{quota_field}",
                            line=line_in(Path(file), loc),
                        )
                    )
    return findings


def stack_outputs(catalog: Catalog, cluster: Cluster, priced_at: dt.datetime | None = None) -> dict[str, Any]:
    """Per unit: namespaces, quotas and what holding the full quota costs per month (money as text)."""
    version = rate_version_for(catalog.rates, priced_at)
    currency = catalog.rates.currency
    units: dict[str, Any] = {}
    for unit in catalog.units:
        namespaces = [ns for u, ns in catalog.namespaces(cluster.name) if u.id == unit.id]
        if not namespaces:
            continue
        try:
            costs = {ns.name: namespace_monthly_cost(ns, version) for ns in namespaces}
        except MissingPriceError as e:
            raise ProgramError(f"unit {unit.id!r}: {e}; add the price to rates.yaml") from e
        units[unit.id] = {
            "display_name": unit.display_name,
            "cost_center": unit.cost_center,
            "namespaces": [ns.name for ns in namespaces],
            "quotas": {ns.name: quota_hard(ns, cluster) for ns in namespaces},
            "monthly_cost": str(round_money(sum(costs.values()), currency)),
            "namespace_monthly_costs": {name: str(round_money(cost, currency)) for name, cost in costs.items()},
            "budget": str(round_money(unit.budget.monthly, currency)),
        }
    return {
        "cluster": cluster.name,
        "currency": currency,
        "prices_effective_from": version.effective_from.isoformat(),
        "units": units,
    }


def main() -> None:
    """Entry point of `pulumi up`: read the stack config once, load the catalog, build, export."""
    config = pulumi.Config(CONFIG_NAMESPACE)
    catalog_dir = Path(config.get("catalog") or DEFAULT_CATALOG)
    cluster_name = config.get("cluster")
    missing_nodes = config.get(MISSING_NODES_CONFIG) or "error"
    kubernetes = pulumi.Config("kubernetes")
    if not catalog_dir.is_absolute():
        catalog_dir = _project_root() / catalog_dir
    try:
        catalog = load_catalog(catalog_dir)
        if cluster_name is None:
            cluster_name = catalog.pool.clusters[0].name
        for warning in catalog.warnings:
            pulumi.log.warn(str(warning))
        if missing_nodes not in ("error", "warn"):
            raise ProgramError(
                f"{CONFIG_NAMESPACE}:{MISSING_NODES_CONFIG} is {missing_nodes!r}; set it to error (the default) or warn"
            )
        reader = FACTS_READER.get() or (lambda _: read_cluster(kubernetes.get("kubeconfig"), kubernetes.get("context")))
        outputs = build(catalog, cluster_name, cluster_facts=reader, missing_nodes=missing_nodes)
    except CatalogError as e:
        raise pulumi.RunError(f"{e}\nfix the catalog and run `pool validate --catalog {catalog_dir}`") from None
    except ProgramError as e:
        raise pulumi.RunError(str(e)) from None
    for name, value in outputs.items():
        pulumi.export(name, value)


def _project_root() -> Path:
    """Where Pulumi.yaml lives: relative catalog paths in the stack config are relative to it."""
    root = pulumi.get_root_directory()
    if root and Path(root, "Pulumi.yaml").is_file():
        return Path(root)
    return Path(__file__).resolve().parent.parent
