"""A namespace's quota ↔ its ResourceQuota `hard` map: the one encode/decode pair.

Provisioning writes the map with `encode_quota`; the policy pack reads quotas back from the stack (so quotas
declared outside the catalog count too) with `decode_quota`. Both walk the resource table, so the keys are
spelled once, in each resource's spec.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .conventions import storage_quota_key
from .models import Cluster, Quota
from .quantities import parse
from .resources import specs

POD_COUNT_KEY = "pods"
"""Not a billable resource, but bounded by every quota (kube_resourcequota exports it as resource="pods")."""
NODE_PORTS_KEY = "services.nodeports"
"""Not billable either: node ports open a unit's pods on every node's address, outside its NetworkPolicies'
ingress controller rule, so every quota bounds them (0 unless the catalog grants them). The API server's quota
counts one per port of a NodePort Service and of a LoadBalancer Service that allocates node ports
(kubernetes pkg/quota/v1/evaluator/core/services.go)."""


def encode_quota(quota: Quota, cluster: Cluster) -> dict[str, str]:
    """The ResourceQuota `hard` map of `quota`, as Kubernetes quantities, in resource-table order."""
    hard: dict[str, str] = {}
    for spec in specs():
        if spec.quota is None:
            continue
        hard[spec.quota.key] = spec.quota.render(quota.amount(spec))
        if spec.quota.limit is not None:
            key, attribute = spec.quota.limit
            hard[key] = spec.quota.render(getattr(quota, attribute))
        if spec.per_tier:
            # The total above also bounds claims on classes outside the pool (a node-local class, say). Every
            # tier of the cluster appears, 0 where not granted: without the key a namespace could claim any
            # amount of a tier it never asked for (up to the total).
            granted = getattr(quota, spec.quota.field)
            for tier in cluster.storage_tiers:
                hard[storage_quota_key(tier.class_name)] = spec.quota.render(granted.get(tier.name, Decimal(0)))
    hard[POD_COUNT_KEY] = str(quota.pods)
    hard[NODE_PORTS_KEY] = str(quota.node_ports)
    # No `persistentvolumeclaims` count: the catalog bounds storage in bytes per tier, which is what
    # costs money; a claim count would be a number nobody chose.
    return hard


def decode_quota(hard: Mapping[str, Any], tier_of_class: Mapping[str, str]) -> Quota:
    """The catalog Quota a `hard` map stands for (only what is priced: requests, per-tier storage);
    raises ValueError on a quantity that does not parse."""
    values: dict[str, Any] = {}
    for spec in specs():
        if spec.quota is None:
            continue
        if spec.per_tier:
            values[spec.quota.field] = {
                tier: parse(hard[storage_quota_key(cls)])
                for cls, tier in tier_of_class.items()
                if storage_quota_key(cls) in hard
            }
            continue
        amount = parse(hard.get(spec.quota.key, 0))
        field = Quota.model_fields.get(spec.quota.field)
        if field is None:
            values[spec.name] = amount  # a registered resource: its allocation is written under its name
        else:
            values[spec.quota.field] = int(amount) if field.annotation in (int, "int") else amount
    return Quota(**values)


def node_amounts(hard: Mapping[str, Any]) -> dict[str, Decimal]:
    """Amounts of the resources node pools supply (cpu, memory, gpu), read from a `hard` map."""
    return {spec.name: parse(hard.get(spec.quota.key, 0)) for spec in specs() if spec.node_capacity and spec.quota}
