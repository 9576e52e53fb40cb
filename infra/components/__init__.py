"""Pulumi components: the pool (storage classes, node pinning, address pools) and business units."""

from .business_unit import BusinessUnit, BusinessUnitArgs, CapabilityLink
from .resource_pool import AddressPoolSpec, ResourcePool, ResourcePoolArgs

__all__ = [
    "AddressPoolSpec",
    "BusinessUnit",
    "BusinessUnitArgs",
    "CapabilityLink",
    "ResourcePool",
    "ResourcePoolArgs",
]
