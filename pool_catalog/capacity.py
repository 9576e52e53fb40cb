"""Capacity arithmetic: what each node pool, storage tier and load-balancer range has, promises and can still give.

One module for the sums and the over-capacity message, so the catalog checks (`pool validate`), the policy
pack, `pool capacity` and `pool request` always agree on what is free.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .models import Catalog, Cluster, NodePool, parse_address_range, range_within
from .quantities import format_amount  # the one human format of amounts; pool request imports it here
from .resources import BUILT_IN, spec_of

NODE_RESOURCES: tuple[str, ...] = tuple(spec.name for spec in BUILT_IN if spec.node_capacity)
"""Resources node pools supply (their spec names a NodePool attribute): cpu, memory, gpu."""


def pool_allocation(catalog: Catalog, cluster: Cluster, pool: NodePool) -> dict[str, Decimal]:
    """Sum of cpu (cores), memory (bytes) and gpu quotas of the namespaces pinned to `pool`."""
    totals = {name: Decimal(0) for name in NODE_RESOURCES}
    for _, ns in catalog.namespaces(cluster.name):
        if ns.node_pool == pool.name:
            for name in NODE_RESOURCES:
                totals[name] += ns.quota.amount(spec_of(name))
    return totals


def tier_allocation(catalog: Catalog, cluster: Cluster, tier: str) -> Decimal:
    """Sum of storage quotas (bytes) on `tier` in `cluster`."""
    return sum((ns.quota.storage.get(tier, Decimal(0)) for _, ns in catalog.namespaces(cluster.name)), Decimal(0))


def pool_capacity(cluster: Cluster, pool: NodePool) -> dict[str, tuple[Decimal, Decimal]]:
    """Per resource (cpu, memory, gpu): what the pool's servers have and the overcommit allowed on it."""
    ratios = cluster.overcommit_of(pool)
    capacity = {name: Decimal(getattr(pool, spec_of(name).node_capacity or name)) for name in NODE_RESOURCES}
    return {resource: (capacity[resource], Decimal(str(getattr(ratios, resource)))) for resource in capacity}


def over_capacity(
    what: str,
    resource: str,
    allocated: Decimal,
    capacity: Decimal,
    ratio: Decimal | None = None,
    headroom: Decimal = Decimal(0),
) -> str | None:
    """Why `allocated` does not fit in `capacity` × `ratio` less a `headroom` fraction, or None when it fits.

    The message carries every number, so a reviewer sees by how much without doing the arithmetic.
    """
    limit = capacity * (ratio if ratio is not None else 1) * (1 - headroom)
    if allocated <= limit:
        return None
    formula = format_amount(resource, capacity)
    if ratio is not None:
        formula += f" × overcommit {ratio}"
    if headroom:
        formula += f" less {(headroom * 100).normalize():f}% headroom"
    if ratio is not None or headroom:
        formula += f" = {format_amount(resource, limit)}"
    return (
        f"{what}: {resource} quotas total {format_amount(resource, allocated)}, above capacity {formula} "
        f"by {format_amount(resource, allocated - limit)}"
    )


@dataclass(frozen=True)
class Room:
    """One resource of a node pool or storage tier: what exists, what quotas promise, what is left."""

    capacity: Decimal
    """Physical amount: cores, bytes or GPUs."""
    overcommit: Decimal
    """Quotas may total capacity × this (1 for storage)."""
    allocated: Decimal
    """Sum of the quotas placed on it."""

    @property
    def limit(self) -> Decimal:
        return self.capacity * self.overcommit

    @property
    def free(self) -> Decimal:
        """What new quotas may still take; negative when the quotas already exceed the limit."""
        return self.limit - self.allocated

    @property
    def share_allocated(self) -> Decimal | None:
        """Allocated / limit, None when the limit is zero (a pool without GPUs)."""
        return self.allocated / self.limit if self.limit else None


def node_pool_room(catalog: Catalog, cluster: Cluster, pool: NodePool) -> dict[str, Room]:
    """cpu, memory and gpu room of `pool`, counting every namespace of `catalog` pinned to it."""
    allocated = pool_allocation(catalog, cluster, pool)
    return {
        resource: Room(capacity, ratio, allocated[resource])
        for resource, (capacity, ratio) in pool_capacity(cluster, pool).items()
    }


def tier_room(catalog: Catalog, cluster: Cluster, tier: str) -> Room:
    """Storage room of `tier` in `cluster` (bytes); tiers are never overcommitted."""
    found = cluster.tier(tier)
    if found is None:
        raise KeyError(tier)
    return Room(found.capacity, Decimal(1), tier_allocation(catalog, cluster, tier))


@dataclass(frozen=True)
class AddressRoom:
    """Load-balancer addresses of a cluster: the pool's ranges, the slices units own, the quotas using them."""

    addresses: int
    """Addresses in network.load_balancer_ranges."""
    assigned: int
    """Addresses handed to units (their load_balancer_addresses inside these ranges)."""
    quota: int
    """Load balancers the cluster's namespaces may create (sum of quota.load_balancers)."""

    @property
    def unassigned(self) -> int:
        return self.addresses - self.assigned


def _size(text: str) -> int:
    first, last = parse_address_range(text)
    return int(last) - int(first) + 1


def address_room(catalog: Catalog, cluster: Cluster) -> AddressRoom:
    """Load-balancer address use of `cluster`."""
    ranges = cluster.network.load_balancer_ranges
    assigned = 0
    for unit in catalog.units:
        for text in unit.load_balancer_addresses:
            if range_within(text, ranges):
                assigned += _size(text)
    quota = sum(ns.quota.load_balancers for _, ns in catalog.namespaces(cluster.name))
    return AddressRoom(sum(_size(text) for text in cluster.network.load_balancer_ranges), assigned, quota)


@dataclass(frozen=True)
class ClusterCapacity:
    """Everything `pool capacity` shows for one cluster."""

    cluster: str
    node_pools: dict[str, dict[str, Room]]
    tiers: dict[str, Room]
    addresses: AddressRoom


def cluster_capacity(catalog: Catalog, cluster: Cluster) -> ClusterCapacity:
    return ClusterCapacity(
        cluster=cluster.name,
        node_pools={pool.name: node_pool_room(catalog, cluster, pool) for pool in cluster.node_pools},
        tiers={tier.name: tier_room(catalog, cluster, tier.name) for tier in cluster.storage_tiers},
        addresses=address_room(catalog, cluster),
    )


def capacity_report(catalog: Catalog, cluster: str | None = None) -> list[ClusterCapacity]:
    """Capacity of every cluster (or only `cluster`); raises KeyError for an unknown cluster name."""
    if cluster is not None and catalog.pool.cluster(cluster) is None:
        raise KeyError(cluster)
    return [cluster_capacity(catalog, c) for c in catalog.pool.clusters if cluster is None or c.name == cluster]


def _number(value: Decimal) -> str:
    """512.0 as "512", bytes without an exponent."""
    return f"{value.normalize():f}"


def _room_json(room: Room) -> dict[str, object]:
    share = room.share_allocated
    return {
        "capacity": _number(room.capacity),
        "overcommit": _number(room.overcommit),
        "limit": _number(room.limit),
        "allocated": _number(room.allocated),
        "free": _number(room.free),
        "allocated_percent": None if share is None else str((share * 100).quantize(Decimal("0.1"))),
    }


def capacity_json(report: list[ClusterCapacity]) -> list[dict[str, object]]:
    """The report as JSON-ready data: cpu in cores, memory and storage in bytes, amounts as decimal strings."""
    return [
        {
            "cluster": c.cluster,
            "node_pools": {
                pool: {resource: _room_json(room) for resource, room in rooms.items()}
                for pool, rooms in c.node_pools.items()
            },
            "storage_tiers": {tier: _room_json(room) for tier, room in c.tiers.items()},
            "load_balancer_addresses": {
                "addresses": c.addresses.addresses,
                "assigned_to_units": c.addresses.assigned,
                "unassigned": c.addresses.unassigned,
                "quota": c.addresses.quota,
            },
        }
        for c in report
    ]
