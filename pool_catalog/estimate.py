"""What a unit will really pay per month: its measured use where there is history, its quota as the ceiling.

The full-quota price (`pricing`) is a figure few units reach, and it leaves out what no quota bounds:
egress, capability calls, the unit's share of shared namespaces. `project` prices both figures from one
typed input — a month of the unit's measured use (`UnitHistory`, read from an issued invoice at the
edge) — so `pool request` and any later form quote the same numbers:

- expected: each namespace with history at its measured use scaled from the hours it was seen to a
  730-hour month and repriced at the rate card in force, each quota-bounded resource capped at what the
  quota lets it use (cpu and memory at their limits, the rest at the quota); quota a request adds counts
  at full use; a namespace without history at full quota. A namespace that used more than its requests
  (bursting towards its limits) can be expected above its full-quota figure. What no quota bounds
  (egress), the shares of shared namespaces and the capability calls are carried from the history month
  (capability calls as invoiced, not repriced).
- at full quota: every namespace at full quota, plus the same carried amounts.

Money is unrounded Decimal; callers round for display with `pricing.round_money`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from .models import HOURS_PER_MONTH, Namespace, Quota, RateVersion
from .pricing import hourly_price, quota_monthly_cost
from .resources import spec_of, specs

ResourceKey = tuple[str, str]
"""(resource, tier); tier is '' for a resource not priced per tier."""


@dataclass(frozen=True)
class MeasuredSection:
    """One namespace of the history month: what it used, in each resource's usage unit."""

    cluster: str
    namespace: str
    hours: int
    """Hours the month's data had the namespace; its use is scaled from these to a 730-hour month."""
    quantities: Mapping[ResourceKey, Decimal]
    """(resource, tier) → billed quantity in the resource's usage unit (core-hour, GiB-hour, GiB…)."""


@dataclass(frozen=True)
class UnitHistory:
    """A unit's measured month, parsed from its invoice: own namespaces, shares of shared ones, calls."""

    source: str
    """Where it was read (a file), for messages."""
    period: str
    hours: int
    """Hours in the period (744 for October)."""
    own: tuple[MeasuredSection, ...]
    shared: tuple[MeasuredSection, ...]
    """The unit's share of each shared namespace (ingress, monitoring), as invoiced."""
    capabilities: Decimal
    """Capability calls consumed plus credits recovered from consumers (≤ 0), as invoiced."""


@dataclass(frozen=True)
class NamespaceEstimate:
    """Monthly figures of one of the unit's namespaces."""

    cluster: str
    namespace: str
    expected: Decimal
    at_quota: Decimal
    """Full quota plus what no quota bounds (egress) carried from history."""
    measured: bool
    """False: no history for it (new, or not seen that month): expected is the full quota."""
    usage_billed: Mapping[str, Decimal] = field(default_factory=dict)
    """Resources no quota bounds (egress) → monthly amount carried from history (in both figures)."""


@dataclass(frozen=True)
class UnitEstimate:
    """A unit's monthly projection; `history` None means no history: both figures are the full quota."""

    history: UnitHistory | None
    namespaces: tuple[NamespaceEstimate, ...]
    shared: Decimal
    capabilities: Decimal
    dropped: tuple[str, ...] = ()
    """Namespaces of the history month the unit no longer has (left out)."""

    @property
    def carried(self) -> Decimal:
        """What no quota bounds, carried from history into both figures."""
        usage = sum((sum(ns.usage_billed.values(), Decimal(0)) for ns in self.namespaces), Decimal(0))
        return usage + self.shared + self.capabilities

    @property
    def expected(self) -> Decimal:
        return sum((ns.expected for ns in self.namespaces), Decimal(0)) + self.shared + self.capabilities

    @property
    def at_quota(self) -> Decimal:
        return sum((ns.at_quota for ns in self.namespaces), Decimal(0)) + self.shared + self.capabilities

    def usage_billed(self) -> dict[str, Decimal]:
        """Resource → monthly amount no quota bounds, over the unit's namespaces."""
        totals: dict[str, Decimal] = {}
        for ns in self.namespaces:
            for resource, amount in ns.usage_billed.items():
                totals[resource] = totals.get(resource, Decimal(0)) + amount
        return totals


def measured_monthly(section: MeasuredSection, version: RateVersion) -> dict[ResourceKey, Decimal]:
    """The section's use at `version`'s prices, scaled from its hours to a 730-hour month."""
    scale = Decimal(HOURS_PER_MONTH) / section.hours
    return {
        (resource, tier): quantity * hourly_price(version, resource, tier or None) * scale
        for (resource, tier), quantity in section.quantities.items()
    }


def usable_monthly_cost(quota: Quota, version: RateVersion) -> dict[ResourceKey, Decimal]:
    """The most a namespace can use per month under `quota`: its full-quota lines, with cpu and memory at their
    limits (usage is billed, and a container may use up to its limit, so requests are not a ceiling of use)."""
    lines = dict(quota_monthly_cost(quota, version).lines)
    for spec in specs():
        if spec.quota is not None and spec.quota.limit is not None:
            limit = Decimal(getattr(quota, spec.quota.limit[1]))
            price = hourly_price(version, spec.name)
            lines[(spec.name, "")] = limit / spec.quota.per_unit * HOURS_PER_MONTH * price
    return lines


def project(
    namespaces: Sequence[tuple[str, Namespace]],
    version: RateVersion,
    history: UnitHistory | None,
    previous: Mapping[tuple[str, str], Quota] | None = None,
) -> UnitEstimate:
    """Monthly projection of a unit's `namespaces` ((cluster, namespace) pairs) at `version`'s prices.

    `previous` gives the quota a namespace had before a requested change (keyed by (cluster, name)): the
    quota it adds is counted at full use, as its measured month says nothing about it. Raises
    MissingPriceError when the rate card lacks a price for something used or granted.
    """
    previous = previous or {}
    sections = {(s.cluster, s.namespace): s for s in history.own} if history else {}
    estimates = []
    for cluster, namespace in namespaces:
        ceiling = quota_monthly_cost(namespace.quota, version).lines
        at_quota = sum(ceiling.values(), Decimal(0))
        section = sections.get((cluster, namespace.name))
        if section is None or section.hours <= 0:
            estimates.append(NamespaceEstimate(cluster, namespace.name, at_quota, at_quota, measured=False))
            continue
        old = previous.get((cluster, namespace.name), namespace.quota)
        before = quota_monthly_cost(old, version).lines
        usable, usable_before = usable_monthly_cost(namespace.quota, version), usable_monthly_cost(old, version)
        measured = measured_monthly(section, version)
        expected = Decimal(0)
        usage_billed: dict[str, Decimal] = {}
        for key in dict.fromkeys([*ceiling, *measured]):
            use = measured.get(key, Decimal(0))
            if spec_of(key[0]).quota is None:
                usage_billed[key[0]] = usage_billed.get(key[0], Decimal(0)) + use
                continue
            added = max(ceiling.get(key, Decimal(0)) - before.get(key, Decimal(0)), Decimal(0))
            cap, cap_before = usable.get(key, Decimal(0)), usable_before.get(key, Decimal(0))
            expected += min(min(use, cap_before) + added, cap)
        carried = sum(usage_billed.values(), Decimal(0))
        estimates.append(
            NamespaceEstimate(
                cluster,
                namespace.name,
                expected + carried,
                at_quota + carried,
                measured=True,
                usage_billed=usage_billed,
            )
        )
    if history is None:
        return UnitEstimate(None, tuple(estimates), Decimal(0), Decimal(0))
    shared = sum(
        (sum(measured_monthly(s, version).values(), Decimal(0)) for s in history.shared if s.hours > 0), Decimal(0)
    )
    capabilities = history.capabilities * HOURS_PER_MONTH / history.hours
    kept = {(cluster, ns.name) for cluster, ns in namespaces}
    dropped = tuple(f"{s.cluster}/{s.namespace}" for s in history.own if (s.cluster, s.namespace) not in kept)
    return UnitEstimate(history, tuple(estimates), shared, capabilities, dropped)
