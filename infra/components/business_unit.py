"""`BusinessUnit`: everything one unit gets in one cluster, per namespace.

Namespace (pinned to its node pool, tolerating the pool's taints, with Pod Security admission
labels), ResourceQuota, LimitRange, NetworkPolicies and RoleBindings for the unit's owner and
viewer groups.

Network model (per namespace):
- ingress and egress are denied by default;
- ingress is allowed from the unit's own namespaces, from the shared ingress controller only to the
  pod ports the namespace declares (`ingress: {ports: [...]}`; none declared: not at all), and — only
  to the pods and ports of an exposed capability — from the namespaces that consume it;
- egress is allowed to cluster DNS, to the unit's own namespaces, to the pods and ports of consumed
  capabilities, to the ingress controller (in-cluster calls to public host names), and to the
  networks the catalog lists (`network.egress_cidrs` of the cluster, `egress_cidrs` of the
  namespace); nothing else, not even the Kubernetes API. Whether an ipBlock also matches pod
  addresses depends on the CNI (Calico: yes; Cilium: no), so a listed CIDR should not overlap the
  pod network.

Owners get the project's `resource-pool-unit-owner` ClusterRole per namespace (workloads, not the
NetworkPolicies, ResourceQuota or LimitRange that bound them); viewers get the built-in `view`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from pool_catalog.conventions import (
    BUSINESS_UNIT_LABEL,
    BUSINESS_UNIT_TYPE,
    COST_CENTER_LABEL,
    DEFAULT_TOLERATIONS_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    NAMESPACE_NAME_LABEL,
    NODE_POOL_LABEL,
    NODE_SELECTOR_ANNOTATION,
    POD_SECURITY_LABEL_PREFIX,
    UNIT_OWNER_ROLE,
)
from pool_catalog.models import BusinessUnit as UnitModel
from pool_catalog.models import Capability, Cluster, Namespace
from pool_catalog.quantities import format_bytes, format_cpu
from pool_catalog.quota_map import encode_quota

QUOTA_NAME = "pool-quota"
LIMIT_RANGE_NAME = "pool-container-defaults"
OWNERS_BINDING = "pool-owners"
VIEWERS_BINDING = "pool-viewers-view"
OWNER_ROLE = UNIT_OWNER_ROLE
VIEWER_ROLE = "view"
BASELINE_POLICY = "pool-baseline"
WARN_POD_SECURITY = "restricted"
"""Pod Security level that warns and audits above the enforced one, so owners see what `restricted` would refuse."""


@dataclass(frozen=True)
class CapabilityLink:
    """A capability exposed in this cluster: who serves it and which namespaces call it."""

    capability: Capability
    provider_namespace: str
    consumer_namespaces: list[str]


@dataclass(frozen=True)
class BusinessUnitArgs:
    unit: UnitModel
    cluster: Cluster
    namespaces: list[Namespace]
    """The unit's namespaces in this cluster."""
    capabilities: dict[str, CapabilityLink] = field(default_factory=dict)
    """Every capability exposed in this cluster, by name."""


class BusinessUnit(pulumi.ComponentResource):
    """Namespaces, quotas, limit ranges, network policies and RBAC of one business unit."""

    namespaces: dict[str, k8s.core.v1.Namespace]

    def __init__(self, name: str, args: BusinessUnitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(BUSINESS_UNIT_TYPE, name, None, opts)
        self._args = args
        self.namespaces = {}
        for namespace in args.namespaces:
            ns_resource = self._namespace(namespace)
            self.namespaces[namespace.name] = ns_resource
            inside = pulumi.ResourceOptions(parent=self, depends_on=[ns_resource])
            self._quota(namespace, inside)
            self._limit_range(namespace, inside)
            self._network_policies(namespace, inside)
            self._role_bindings(namespace, inside)
        self.register_outputs({"namespaces": sorted(self.namespaces)})

    # ------------------------------------------------------------------ namespace

    def _namespace(self, namespace: Namespace) -> k8s.core.v1.Namespace:
        unit, cluster = self._args.unit, self._args.cluster
        pool = cluster.node_pool(namespace.node_pool)
        annotations = {
            # PodNodeSelector admission pins every pod of the namespace to its node pool.
            NODE_SELECTOR_ANNOTATION: f"{NODE_POOL_LABEL}={namespace.node_pool}",
        }
        if pool is not None and pool.taints:
            # PodTolerationRestriction admission adds these tolerations to every pod, so workloads
            # pinned to a tainted (dedicated) pool schedule without each manifest repeating them.
            tolerations = [
                {"key": t.key, "operator": "Equal", "value": t.value, "effect": t.effect} for t in pool.taints
            ]
            annotations[DEFAULT_TOLERATIONS_ANNOTATION] = json.dumps(tolerations, separators=(",", ":"))
        return k8s.core.v1.Namespace(
            namespace.name,
            metadata={
                "name": namespace.name,
                "labels": {
                    BUSINESS_UNIT_LABEL: unit.id,
                    COST_CENTER_LABEL: unit.cost_center,
                    NODE_POOL_LABEL: namespace.node_pool,
                    MANAGED_BY_LABEL: MANAGED_BY,
                    **pod_security_labels(namespace, cluster),
                },
                "annotations": annotations,
            },
            # Deleting or replacing a namespace deletes every workload and volume in it: `protect`
            # makes `pulumi up` and `pulumi destroy` refuse both until the unit file says `retire`,
            # and `retain_on_delete` then keeps the namespace in the cluster unless it says
            # `retire: delete`. No `ignore_changes`: with server-side apply, labels and annotations
            # other controllers add are not ours and cause no diff, and ignoring our own fields
            # would hide drift from the catalog.
            opts=pulumi.ResourceOptions(
                parent=self, protect=unit.retire is None, retain_on_delete=unit.retire != "delete"
            ),
        )

    # ------------------------------------------------------------- quota, limits

    def _quota(self, namespace: Namespace, opts: pulumi.ResourceOptions) -> k8s.core.v1.ResourceQuota:
        return k8s.core.v1.ResourceQuota(
            f"{namespace.name}-quota",
            metadata=self._metadata(QUOTA_NAME, namespace),
            spec={"hard": quota_hard(namespace, self._args.cluster)},
            opts=opts,
        )

    def _limit_range(self, namespace: Namespace, opts: pulumi.ResourceOptions) -> k8s.core.v1.LimitRange:
        defaults = namespace.container_defaults
        # Without an explicit maximum a container may take at most the namespace's whole limit.
        max_cpu = defaults.max_cpu if defaults.max_cpu is not None else namespace.quota.cpu_limit
        max_memory = defaults.max_memory if defaults.max_memory is not None else namespace.quota.memory_limit
        return k8s.core.v1.LimitRange(
            f"{namespace.name}-limits",
            metadata=self._metadata(LIMIT_RANGE_NAME, namespace),
            spec={
                "limits": [
                    {
                        "type": "Container",
                        "default": {
                            "cpu": format_cpu(defaults.default_cpu),
                            "memory": format_bytes(defaults.default_memory),
                        },
                        "defaultRequest": {
                            "cpu": format_cpu(defaults.default_request_cpu),
                            "memory": format_bytes(defaults.default_request_memory),
                        },
                        "max": {"cpu": format_cpu(max_cpu), "memory": format_bytes(max_memory)},
                    }
                ]
            },
            opts=opts,
        )

    # ------------------------------------------------------------------ network

    def _network_policies(self, namespace: Namespace, opts: pulumi.ResourceOptions) -> None:
        """`pool-baseline` for every pod, plus one policy per exposed capability that has consumers.

        One baseline policy rather than one per rule: it selects every pod with both policy types,
        which is the default deny, and lists each allowed peer as its own rule. Five objects per
        namespace would say the same; at 2,000 namespaces that is 8,000 more objects to apply,
        diff and keep in the stack state.
        """
        cluster, unit = self._args.cluster, self._args.unit
        network = cluster.network
        own_unit = {"namespaceSelector": {"matchLabels": {BUSINESS_UNIT_LABEL: unit.id}}}
        ingress_controller = {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: network.ingress_namespace}}}
        cluster_dns = {
            "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: network.dns_namespace}},
            "podSelector": {"matchLabels": dict(network.dns_pod_labels)},
        }
        egress_cidrs = sorted(set(network.egress_cidrs) | set(namespace.egress_cidrs))
        consumed = [
            self._args.capabilities[name] for name in sorted(set(namespace.consumes)) if name in self._args.capabilities
        ]
        ingress: list[dict[str, Any]] = [{"from": [own_unit]}]
        if namespace.ingress is not None:
            # The controller proxies for every unit: admitted on all ports, it would reach any pod that some
            # unit's Ingress (or ExternalName Service) names. So only the ports this namespace declares.
            ingress.append({"from": [ingress_controller], "ports": _tcp_ports(namespace.ingress.ports)})
        policies: dict[str, dict[str, Any]] = {
            BASELINE_POLICY: {
                "podSelector": {},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": [
                    {"to": [cluster_dns], "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                    {"to": [own_unit]},
                    {"to": [ingress_controller]},
                    *(
                        {
                            "to": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {NAMESPACE_NAME_LABEL: link.provider_namespace}
                                    },
                                    "podSelector": {"matchLabels": dict(link.capability.pod_selector)},
                                }
                            ],
                            "ports": _tcp_ports(link.capability.ports),
                        }
                        for link in consumed
                    ),
                    *({"to": [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]} for cidrs in [egress_cidrs] if cidrs),
                ],
            }
        }
        for capability in namespace.exposes:
            link = self._args.capabilities.get(capability.name)
            consumers = sorted(set(link.consumer_namespaces)) if link else []
            if not consumers:
                continue  # nobody calls it (yet): the baseline's deny stands
            policies[f"allow-capability-{capability.name}"] = {
                "podSelector": {"matchLabels": dict(capability.pod_selector)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {
                                "namespaceSelector": {
                                    "matchExpressions": [
                                        {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": consumers}
                                    ]
                                }
                            }
                        ],
                        "ports": _tcp_ports(capability.ports),
                    }
                ],
            }
        for policy_name, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{namespace.name}-netpol-{policy_name}",
                metadata=self._metadata(policy_name, namespace),
                spec=spec,
                opts=opts,
            )

    # --------------------------------------------------------------------- rbac

    def _role_bindings(self, namespace: Namespace, opts: pulumi.ResourceOptions) -> None:
        unit = self._args.unit
        bindings = [(OWNERS_BINDING, OWNER_ROLE, unit.owners), (VIEWERS_BINDING, VIEWER_ROLE, unit.viewers)]
        for binding_name, role, groups in bindings:
            if not groups:
                continue
            k8s.rbac.v1.RoleBinding(
                f"{namespace.name}-{binding_name}",
                metadata=self._metadata(binding_name, namespace),
                role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                subjects=[
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}
                    for group in sorted(set(groups))
                ],
                opts=opts,
            )

    def _metadata(self, name: str, namespace: Namespace) -> dict[str, Any]:
        return {
            "name": name,
            "namespace": namespace.name,
            "labels": {BUSINESS_UNIT_LABEL: self._args.unit.id, MANAGED_BY_LABEL: MANAGED_BY},
        }


def pod_security_labels(namespace: Namespace, cluster: Cluster) -> dict[str, str]:
    """Pod Security admission labels: enforce the catalog's level, warn and audit at `restricted`."""
    level = namespace.pod_security or cluster.pod_security
    version = f"v{cluster.kubernetes_version}"
    labels = {}
    for mode, mode_level in (("enforce", level), ("warn", WARN_POD_SECURITY), ("audit", WARN_POD_SECURITY)):
        labels[f"{POD_SECURITY_LABEL_PREFIX}{mode}"] = mode_level
        labels[f"{POD_SECURITY_LABEL_PREFIX}{mode}-version"] = version
    return labels


def quota_hard(namespace: Namespace, cluster: Cluster) -> dict[str, str]:
    """The ResourceQuota `hard` map of a namespace, as Kubernetes quantities (keys from the resource table)."""
    return encode_quota(namespace.quota, cluster)


def _tcp_ports(ports: list[int]) -> list[dict[str, Any]]:
    """NetworkPolicyPort entries (protocol, port) of TCP ports, sorted: `ports` of an ingress or egress rule
    (https://kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/)."""
    return [{"protocol": "TCP", "port": port} for port in sorted(set(ports))]
