"""`ResourcePool`: what the platform team owns in one cluster.

- a StorageClass per storage tier,
- labels (and taints) on the existing servers of each node pool, applied with server-side apply
  patches so the Node objects stay owned by the kubelet,
- a MetalLB IPAddressPool and L2Advertisement per business unit that owns load-balancer addresses,
- the ClusterRole unit owners are bound to in each of their namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from pool_catalog.conventions import (
    CLUSTER_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    METALLB_API_VERSION,
    METALLB_NAMESPACE,
    NODE_POOL_LABEL,
    PATCH_FIELD_MANAGER_ANNOTATION,
    PATCH_FORCE_ANNOTATION,
    RESOURCE_POOL_TYPE,
    STORAGE_TIER_LABEL,
    UNIT_OWNER_ROLE,
)
from pool_catalog.models import Cluster, NodePool, StorageTier

NODE_FIELD_MANAGER = "resource-pool-node"


@dataclass(frozen=True)
class AddressPoolSpec:
    """One unit's slice of the cluster's load-balancer ranges, for the namespaces it runs here."""

    unit_id: str
    addresses: list[str]
    namespaces: list[str]


@dataclass(frozen=True)
class ResourcePoolArgs:
    cluster: Cluster
    address_pools: list[AddressPoolSpec] = field(default_factory=list)
    absent_nodes: frozenset[str] = frozenset()
    """Servers of the catalog that are not Nodes of the cluster: no patch for them (it would create the Node)."""


_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]

UNIT_OWNER_RULES: list[dict[str, list[str]]] = [
    # What the built-in `edit` role grants for workloads (kubernetes
    # plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, system:aggregate-to-edit), without
    # NetworkPolicies: owners read the isolation, quota and limits of their namespaces but never change
    # them — any extra NetworkPolicy of their own could only widen what the baseline allows.
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"],
        "verbs": _READ + _WRITE,
    },
    {
        "apiGroups": [""],
        "resources": [
            "pods/log",
            "pods/status",
            "events",
            "endpoints",
            "resourcequotas",
            "resourcequotas/status",
            "limitranges",
            "replicationcontrollers/status",
        ],
        "verbs": _READ,
    },
    {"apiGroups": [""], "resources": ["pods/eviction", "serviceaccounts/token"], "verbs": ["create"]},
    {
        "apiGroups": [""],
        "resources": [
            "configmaps",
            "secrets",
            "services",
            "services/proxy",
            "persistentvolumeclaims",
            "serviceaccounts",
            "replicationcontrollers",
            "replicationcontrollers/scale",
        ],
        "verbs": _READ + _WRITE,
    },
    {
        "apiGroups": ["apps"],
        "resources": [
            "deployments",
            "deployments/scale",
            "deployments/rollback",
            "statefulsets",
            "statefulsets/scale",
            "daemonsets",
            "replicasets",
            "replicasets/scale",
            "controllerrevisions",
        ],
        "verbs": _READ + _WRITE,
    },
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": _READ + _WRITE},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": _READ + _WRITE},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": _READ + _WRITE},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"], "verbs": _READ + _WRITE},
    {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": _READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _READ + _WRITE},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]},
]


class ResourcePool(pulumi.ComponentResource):
    """Storage classes, node-pool labels/taints and load-balancer address pools of one cluster."""

    storage_classes: dict[str, k8s.storage.v1.StorageClass]
    node_patches: list[k8s.core.v1.NodePatch]
    address_pools: dict[str, k8s.apiextensions.CustomResource]

    def __init__(self, name: str, args: ResourcePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RESOURCE_POOL_TYPE, name, None, opts)
        cluster = args.cluster
        self._child = pulumi.ResourceOptions(parent=self)
        self.storage_classes = {tier.name: self._storage_class(cluster, tier) for tier in cluster.storage_tiers}
        self.node_patches = [
            patch for pool in cluster.node_pools for patch in self._node_patches(pool, args.absent_nodes)
        ]
        self.owner_role = self._owner_role(cluster)
        self.address_pools = {}
        # MetalLB only where the platform hands out addresses: a cluster without ranges has no pools.
        if cluster.network.load_balancer_ranges:
            for spec in args.address_pools:
                self.address_pools[spec.unit_id] = self._address_pool(cluster, spec)
        self.register_outputs(
            {
                "storage_classes": sorted(tier.class_name for tier in cluster.storage_tiers),
                "nodes": sorted(
                    node.name
                    for pool in cluster.node_pools
                    for node in pool.nodes
                    if node.name not in args.absent_nodes
                ),
                "address_pools": sorted(self.address_pools),
            }
        )

    def _storage_class(self, cluster: Cluster, tier: StorageTier) -> k8s.storage.v1.StorageClass:
        return k8s.storage.v1.StorageClass(
            f"storageclass-{tier.class_name}",
            metadata={
                "name": tier.class_name,
                "labels": {
                    STORAGE_TIER_LABEL: tier.name,
                    CLUSTER_LABEL: cluster.name,
                    MANAGED_BY_LABEL: MANAGED_BY,
                },
            },
            provisioner=tier.provisioner,
            parameters=dict(tier.parameters),
            reclaim_policy=tier.reclaim_policy,
            volume_binding_mode=tier.volume_binding_mode,
            allow_volume_expansion=tier.allow_volume_expansion,
            opts=self._child,
        )

    def _owner_role(self, cluster: Cluster) -> k8s.rbac.v1.ClusterRole:
        return k8s.rbac.v1.ClusterRole(
            "unit-owner-role",
            metadata={"name": UNIT_OWNER_ROLE, "labels": {CLUSTER_LABEL: cluster.name, MANAGED_BY_LABEL: MANAGED_BY}},
            rules=UNIT_OWNER_RULES,
            opts=self._child,
        )

    def _node_patches(self, pool: NodePool, absent: frozenset[str]) -> list[k8s.core.v1.NodePatch]:
        """Per server one server-side-apply patch: the pool labels and, for tainted pools, the taints.

        One patch, one field manager: the provider applies its patch annotations to the Node too, so two
        patches with two managers on one Node conflict over those annotations (a real API server refuses
        the second). Not forced: `spec.taints` is an atomic list, and forcing it would drop taints the node
        lifecycle controller or an operator set; a conflict stops `pulumi up` with the other field
        manager's name instead (e.g. a pool label set earlier with `kubectl label`: remove it and re-run).
        Deleting a patch (pool removed from the catalog) releases its labels and taints.
        """
        labels = {NODE_POOL_LABEL: pool.name, **pool.labels}
        taints = [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
        return [
            k8s.core.v1.NodePatch(
                f"node-{node.name}",
                metadata={
                    "name": node.name,
                    "labels": labels,
                    "annotations": {
                        PATCH_FIELD_MANAGER_ANNOTATION: NODE_FIELD_MANAGER,
                        PATCH_FORCE_ANNOTATION: "false",
                    },
                },
                spec={"taints": taints} if taints else None,
                opts=self._child,
            )
            for node in pool.nodes
            if node.name not in absent
        ]

    def _address_pool(self, cluster: Cluster, spec: AddressPoolSpec) -> k8s.apiextensions.CustomResource:
        labels = {CLUSTER_LABEL: cluster.name, MANAGED_BY_LABEL: MANAGED_BY}
        pool = k8s.apiextensions.CustomResource(
            f"metallb-pool-{spec.unit_id}",
            api_version=METALLB_API_VERSION,
            kind="IPAddressPool",
            metadata={"name": spec.unit_id, "namespace": METALLB_NAMESPACE, "labels": labels},
            spec={
                "addresses": list(spec.addresses),
                # Services of the unit get an address without asking for a pool by name; other
                # namespaces can never draw from it because serviceAllocation restricts the pool.
                "autoAssign": True,
                "serviceAllocation": {"namespaces": sorted(spec.namespaces)},
            },
            opts=self._child,
        )
        k8s.apiextensions.CustomResource(
            f"metallb-l2-{spec.unit_id}",
            api_version=METALLB_API_VERSION,
            kind="L2Advertisement",
            metadata={"name": spec.unit_id, "namespace": METALLB_NAMESPACE, "labels": labels},
            spec={"ipAddressPools": [spec.unit_id]},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pool]),
        )
        return pool
