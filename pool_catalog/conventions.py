"""Names every component and reader of the cluster agrees on: label keys, annotations, type tokens.

Chargeback, the policy pack and the rendered manifests read these keys, so they live in one place.
"""

from __future__ import annotations

from .resources import STORAGE_CLASS_QUOTA_SUFFIX

LABEL_PREFIX = "pool.resource-pool.io"
BUSINESS_UNIT_LABEL = f"{LABEL_PREFIX}/business-unit"
COST_CENTER_LABEL = f"{LABEL_PREFIX}/cost-center"
NODE_POOL_LABEL = f"{LABEL_PREFIX}/node-pool"
STORAGE_TIER_LABEL = f"{LABEL_PREFIX}/storage-tier"
CLUSTER_LABEL = f"{LABEL_PREFIX}/cluster"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "resource-pool"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""Set by the API server on every namespace (1.21+); the only label a unit cannot forge on another namespace."""

# Admission plugins PodNodeSelector and PodTolerationRestriction read these namespace annotations.
NODE_SELECTOR_ANNOTATION = "scheduler.alpha.kubernetes.io/node-selector"
DEFAULT_TOLERATIONS_ANNOTATION = "scheduler.alpha.kubernetes.io/defaultTolerations"

# pulumi-kubernetes Patch resources: server-side apply field manager and conflict handling.
PATCH_FIELD_MANAGER_ANNOTATION = "pulumi.com/patchFieldManager"
PATCH_FORCE_ANNOTATION = "pulumi.com/patchForce"

METALLB_NAMESPACE = "metallb-system"
METALLB_API_VERSION = "metallb.io/v1beta1"
# The kinds the program declares are CRDs MetalLB installs; the program checks they exist first.
METALLB_CRDS = ("ipaddresspools.metallb.io", "l2advertisements.metallb.io")

# Pod Security admission (built into kube-apiserver since 1.25) reads these namespace labels.
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
POD_SECURITY_LABEL_PREFIX = "pod-security.kubernetes.io/"

# The ClusterRole unit owners are bound to in each of their namespaces (declared by ResourcePool).
UNIT_OWNER_ROLE = "resource-pool-unit-owner"

RESOURCE_POOL_TYPE = "resource-pool:index:ResourcePool"
BUSINESS_UNIT_TYPE = "resource-pool:index:BusinessUnit"


def storage_quota_key(storage_class: str) -> str:
    """ResourceQuota key bounding the storage requested from one StorageClass."""
    return f"{storage_class}{STORAGE_CLASS_QUOTA_SUFFIX}"
