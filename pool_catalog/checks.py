"""Rules that need the whole catalog: cross references, capacity, address ranges, prices, budgets.

Each check returns findings instead of raising, so one `pool validate` shows every problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .capacity import over_capacity, pool_allocation, pool_capacity, tier_allocation
from .errors import Finding, Severity
from .files import POOL_FILE, RATES_FILE, UNITS_DIR, field_path, line_of, unit_file
from .models import Catalog, Cluster, parse_address_range, range_within
from .numbers import format_money, minor_unit
from .pricing import MissingPriceError, rate_version_for, round_money, unit_monthly_cost

RESERVED_NAMESPACES = {"default", "kube-system", "kube-public", "kube-node-lease"}
RESERVED_PREFIXES = ("kube-",)


class _Reporter:
    """Builds findings with file paths and line numbers from the loaded documents."""

    def __init__(self, catalog: Catalog, documents: dict[str, Any]) -> None:
        self.root = Path(catalog.root)
        self.documents = documents
        self.findings: list[Finding] = []

    def file(self, name: str) -> str:
        return str(self.root / name)

    def unit_file(self, unit_id: str) -> str:
        return str(unit_file(self.root, unit_id))

    def add(
        self, file: str, loc: tuple[int | str, ...], message: str, hint: str = "", severity: Severity = Severity.ERROR
    ) -> None:
        line = line_of(self.documents.get(file), loc) if file in self.documents else None
        self.findings.append(Finding(file, field_path(loc), message, hint, severity, line))


def check_catalog(catalog: Catalog, documents: dict[str, Any] | None = None, *, capacity: bool = True) -> list[Finding]:
    """Every cross-file finding (errors and warnings) of a catalog whose files parsed; `capacity=False`: all
    but the capacity sums of node pools and storage tiers."""
    report = _Reporter(catalog, documents or {})
    _check_pool(catalog, report)
    _check_units(catalog, report)
    if not [f for f in report.findings if f.severity is Severity.ERROR]:
        if capacity:
            _check_capacity(catalog, report)
        _check_load_balancers(catalog, report)
    _check_rates(catalog, report)
    _check_capability_rates(catalog, report)
    _check_alerting(catalog, report)
    return report.findings


def _duplicates(names: list[str]) -> set[str]:
    return {name for name, count in Counter(names).items() if count > 1}


def _check_pool(catalog: Catalog, report: _Reporter) -> None:
    pool_file = report.file(POOL_FILE)
    for name in _duplicates([c.name for c in catalog.pool.clusters]):
        report.add(pool_file, ("clusters",), f"cluster {name!r} is defined twice", "give each cluster one entry")
    for ci, cluster in enumerate(catalog.pool.clusters):
        for name in _duplicates([p.name for p in cluster.node_pools]):
            report.add(
                pool_file,
                ("clusters", ci, "node_pools"),
                f"node pool {name!r} is defined twice",
                "merge the two entries",
            )
        for name in _duplicates([t.name for t in cluster.storage_tiers]):
            report.add(
                pool_file,
                ("clusters", ci, "storage_tiers"),
                f"storage tier {name!r} is defined twice",
                "merge the two entries",
            )
        for name in _duplicates([t.class_name for t in cluster.storage_tiers]):
            report.add(
                pool_file,
                ("clusters", ci, "storage_tiers"),
                f"two tiers use the StorageClass {name!r}",
                "give each tier its own storage_class",
            )
        nodes = [n.name for p in cluster.node_pools for n in p.nodes]
        for name in _duplicates(nodes):
            report.add(
                pool_file,
                ("clusters", ci, "node_pools"),
                f"server {name!r} is listed in more than one place",
                "a server belongs to exactly one node pool",
            )
        ranges = cluster.network.load_balancer_ranges
        for (i, a), (j, b) in _overlapping_pairs(ranges):
            report.add(
                pool_file,
                ("clusters", ci, "network", "load_balancer_ranges", j),
                f"{b} overlaps {a} (entry {i})",
                "make the ranges disjoint",
            )


def _overlapping_pairs(ranges: list[str]) -> Iterator[tuple[tuple[int, str], tuple[int, str]]]:
    bounds = [(i, text, *parse_address_range(text)) for i, text in enumerate(ranges)]
    for x in range(len(bounds)):
        for y in range(x + 1, len(bounds)):
            i, a, a_first, a_last = bounds[x]
            j, b, b_first, b_last = bounds[y]
            if a_first.version == b_first.version and int(a_first) <= int(b_last) and int(b_first) <= int(a_last):
                yield (i, a), (j, b)


def _check_units(catalog: Catalog, report: _Reporter) -> None:
    for unit_id in _duplicates([u.id for u in catalog.units]):
        report.add(
            report.file(UNITS_DIR),
            (),
            f"unit id {unit_id!r} is used by more than one file",
            "each unit has one file named <id>.yaml",
        )
    capabilities: dict[str, str] = {}
    seen: dict[tuple[str, str], str] = {}
    shared = {(s.cluster, s.namespace) for s in catalog.rates.shared_namespaces}
    for unit in catalog.units:
        file = report.unit_file(unit.id)
        _check_groups(catalog, unit.id, unit.owners, "owners", report)
        _check_groups(catalog, unit.id, unit.viewers, "viewers", report)
        for ni, ns in enumerate(unit.namespaces):
            loc: tuple[int | str, ...] = ("namespaces", ni)
            cluster = _resolve_cluster(catalog, ns.cluster, file, (*loc, "cluster"), report)
            if cluster is None:
                continue
            key = (cluster.name, ns.name)
            if key in seen:
                other = seen[key]
                where = "this file" if other == unit.id else f"business-units/{other}.yaml"
                report.add(
                    file,
                    (*loc, "name"),
                    f"namespace {ns.name!r} in cluster {cluster.name!r} is already declared by {where}",
                    "namespace names are unique per cluster; pick another name",
                )
            seen[key] = unit.id
            reserved = RESERVED_NAMESPACES | {cluster.network.ingress_namespace, cluster.network.dns_namespace}
            if ns.name in reserved or ns.name.startswith(RESERVED_PREFIXES):
                report.add(
                    file,
                    (*loc, "name"),
                    f"namespace {ns.name!r} is reserved for the platform (names starting kube- belong to Kubernetes)",
                    f"choose a name prefixed with the unit, e.g. {unit.id}-{ns.name.removeprefix('kube-')}",
                )
            if (None, ns.name) in shared or (cluster.name, ns.name) in shared:
                report.add(
                    file,
                    (*loc, "name"),
                    f"namespace {ns.name!r} is also a shared namespace in rates.yaml: its cost would be both this "
                    "unit's and split across units",
                    "remove it from rates.yaml shared_namespaces, or from this unit",
                )
            if cluster.node_pool(ns.node_pool) is None:
                known = ", ".join(p.name for p in cluster.node_pools)
                report.add(
                    file,
                    (*loc, "node_pool"),
                    f"unknown node pool {ns.node_pool!r} in cluster {cluster.name!r}",
                    f"use one of: {known}",
                )
            for tier in ns.quota.storage:
                if cluster.tier(tier) is None:
                    known = ", ".join(t.name for t in cluster.storage_tiers)
                    report.add(
                        file,
                        (*loc, "quota", "storage", tier),
                        f"unknown storage tier {tier!r} in cluster {cluster.name!r}",
                        f"use one of: {known}",
                    )
            for ci, cap in enumerate(ns.exposes):
                if cap.name in capabilities:
                    report.add(
                        file,
                        (*loc, "exposes", ci, "name"),
                        f"capability {cap.name!r} is already exposed by {capabilities[cap.name]}",
                        "capability names are unique across the catalog",
                    )
                capabilities.setdefault(cap.name, f"{unit.id}/{ns.name}")
    for unit in catalog.units:
        file = report.unit_file(unit.id)
        for ni, ns in enumerate(unit.namespaces):
            for ci, name in enumerate(ns.consumes):
                if name not in capabilities:
                    known = ", ".join(sorted(capabilities)) or "none are exposed"
                    report.add(
                        file,
                        ("namespaces", ni, "consumes", ci),
                        f"unknown capability {name!r}",
                        f"known capabilities: {known}",
                    )


GROUP_HINT = (
    "name a group of your identity provider; if the platform team really means to grant it, they list it "
    "under allowed_groups in pool.yaml"
)


def _check_groups(catalog: Catalog, unit_id: str, groups: list[str], field: str, report: _Reporter) -> None:
    """`system:` groups are Kubernetes' own (system:authenticated is every logged-in user,
    system:unauthenticated everyone): a unit may name one only when pool.yaml allows it."""
    file = report.unit_file(unit_id)
    allowed = set(catalog.pool.allowed_groups)
    for gi, group in enumerate(groups):
        if group.lower().startswith("system:") and group not in allowed:
            role = "administer" if field == "owners" else "read"
            report.add(
                file,
                (field, gi),
                f"group {group!r} is a Kubernetes system group: binding it would let its members {role} "
                f"this unit's namespaces",
                GROUP_HINT,
            )
    for group in _duplicates(groups):
        report.add(file, (field,), f"group {group!r} is listed twice", "list each group once")


def _resolve_cluster(
    catalog: Catalog, name: str | None, file: str, loc: tuple[int | str, ...], report: _Reporter
) -> Cluster | None:
    clusters = catalog.pool.clusters
    if name is None:
        if len(clusters) > 1:
            report.add(
                file,
                loc,
                "is required when pool.yaml has several clusters",
                f"set it to one of: {', '.join(c.name for c in clusters)}",
            )
            return None
        return clusters[0]
    cluster = catalog.pool.cluster(name)
    if cluster is None:
        report.add(file, loc, f"unknown cluster {name!r}", f"use one of: {', '.join(c.name for c in clusters)}")
    return cluster


def _check_capacity(catalog: Catalog, report: _Reporter) -> None:
    pool_file = report.file(POOL_FILE)
    for ci, cluster in enumerate(catalog.pool.clusters):
        for pi, pool in enumerate(cluster.node_pools):
            allocated = pool_allocation(catalog, cluster, pool)
            for resource, (capacity, ratio) in pool_capacity(cluster, pool).items():
                message = over_capacity(f"node pool {pool.name!r}", resource, allocated[resource], capacity, ratio)
                if message:
                    users = [ns.name for _, ns in catalog.namespaces(cluster.name) if ns.node_pool == pool.name]
                    report.add(
                        pool_file,
                        ("clusters", ci, "node_pools", pi),
                        message,
                        f"add servers, raise overcommit.{resource}, or shrink quotas of: {', '.join(users)}",
                    )
        for ti, tier in enumerate(cluster.storage_tiers):
            allocated_bytes = tier_allocation(catalog, cluster, tier.name)
            message = over_capacity(f"storage tier {tier.name!r}", "storage", allocated_bytes, tier.capacity)
            if message:
                report.add(
                    pool_file,
                    ("clusters", ci, "storage_tiers", ti, "capacity"),
                    message,
                    "add capacity to the tier or shrink storage quotas",
                )


def _check_load_balancers(catalog: Catalog, report: _Reporter) -> None:
    owners: list[tuple[str, int, str]] = []
    for unit in catalog.units:
        file = report.unit_file(unit.id)
        lb_quota = sum(ns.quota.load_balancers for ns in unit.namespaces)
        clusters = {catalog.cluster_of(ns).name for ns in unit.namespaces}
        pool_ranges = [r for c in catalog.pool.clusters if c.name in clusters for r in c.network.load_balancer_ranges]
        addresses = 0
        for ai, text in enumerate(unit.load_balancer_addresses):
            first, last = parse_address_range(text)
            addresses += int(last) - int(first) + 1
            owners.append((unit.id, ai, text))
            if not range_within(text, pool_ranges):
                report.add(
                    file,
                    ("load_balancer_addresses", ai),
                    f"{text} is not inside the pool's load-balancer ranges",
                    "pick a slice of network.load_balancer_ranges in pool.yaml",
                )
        if lb_quota > addresses:
            report.add(
                file,
                ("load_balancer_addresses",),
                f"namespaces may create {lb_quota} load balancers but the unit owns {addresses} addresses",
                "add addresses or lower quota.load_balancers",
            )
    for (i, a), (j, b) in _overlapping_pairs([text for _, _, text in owners]):
        unit_a, unit_b = owners[i][0], owners[j][0]
        report.add(
            report.unit_file(unit_b),
            ("load_balancer_addresses", owners[j][1]),
            f"{b} overlaps {a} of unit {unit_a!r}",
            "each address belongs to one unit",
        )


def _check_rates(catalog: Catalog, report: _Reporter) -> None:
    rates_file = report.file(RATES_FILE)
    tiers = {t.name for c in catalog.pool.clusters for t in c.storage_tiers}
    for vi, version in enumerate(catalog.rates.versions):
        for tier in sorted(tiers - set(version.storage)):
            report.add(
                rates_file,
                ("versions", vi, "storage"),
                f"no price for storage tier {tier!r} (effective {version.effective_from:%Y-%m-%d})",
                f"add storage.{tier}: {{price: ..., unit: GiB-month}}",
            )
        for tier in sorted(set(version.storage) - tiers):
            report.add(
                rates_file,
                ("versions", vi, "storage", tier),
                f"prices tier {tier!r}, which pool.yaml does not define",
                "remove it or add the tier",
                Severity.WARNING,
            )
    unit_ids = {u.id for u in catalog.units}
    for si, shared in enumerate(catalog.rates.shared_namespaces):
        for ai, unit_id in enumerate(shared.among):
            if unit_id not in unit_ids:
                report.add(
                    rates_file,
                    ("shared_namespaces", si, "among", ai),
                    f"unknown unit {unit_id!r}",
                    f"use one of: {', '.join(sorted(unit_ids))}",
                )
        if shared.cluster is not None and catalog.pool.cluster(shared.cluster) is None:
            report.add(rates_file, ("shared_namespaces", si, "cluster"), f"unknown cluster {shared.cluster!r}")
    materiality, currency = catalog.rates.corrections.materiality, catalog.rates.currency
    if materiality != round_money(materiality, currency):
        report.add(
            rates_file,
            ("corrections", "materiality"),
            f"{materiality} is finer than {currency}'s smallest amount ({minor_unit(currency)})",
            f"write a multiple of {minor_unit(currency)} {currency}",
        )
    if any(f.file == rates_file and f.severity is Severity.ERROR for f in report.findings):
        return
    version = rate_version_for(catalog.rates)
    currency = catalog.rates.currency
    for unit in catalog.units:
        try:
            cost = unit_monthly_cost(unit, version)
        except MissingPriceError as e:
            report.add(rates_file, ("versions",), str(e), "add the price")
            continue
        if cost > unit.budget.monthly:
            report.add(
                report.unit_file(unit.id),
                ("budget", "monthly"),
                f"full-quota monthly cost {format_money(cost, currency)} {currency} is above the budget "
                f"{format_money(unit.budget.monthly, currency)} {currency} by "
                f"{format_money(cost - unit.budget.monthly, currency)}",
                "fine if the unit never uses all of its quota; otherwise raise the budget or shrink quotas",
                Severity.WARNING,
            )


def _check_capability_rates(catalog: Catalog, report: _Reporter) -> None:
    """rates.yaml `capabilities`: each names an exposed capability once; each exposed capability has a method;
    calls are told apart by the provider namespace, so a namespace bills at most one capability."""
    rates_file = report.file(RATES_FILE)
    exposed: dict[str, tuple[str, str]] = {}
    by_namespace: dict[tuple[str, str], list[str]] = {}
    for unit in catalog.units:
        for ns in unit.namespaces:
            cluster = ns.cluster or catalog.pool.clusters[0].name
            for capability in ns.exposes:
                exposed.setdefault(capability.name, (unit.id, ns.name))
                by_namespace.setdefault((cluster, ns.name), []).append(capability.name)
    known = ", ".join(sorted(exposed)) or "none are exposed"
    seen: set[str] = set()
    counting = catalog.rates.call_counting
    for ci, rate in enumerate(catalog.rates.capabilities):
        if rate.capability in seen:
            report.add(
                rates_file,
                ("capabilities", ci, "capability"),
                f"capability {rate.capability!r} has two entries",
                "give each capability one entry and list its methods under `versions`",
            )
        seen.add(rate.capability)
        if rate.capability not in exposed:
            report.add(
                rates_file,
                ("capabilities", ci, "capability"),
                f"unknown capability {rate.capability!r}: no namespace of business-units/*.yaml exposes it",
                f"use one of: {known} (or add `exposes` to the namespace that serves it)",
            )
        if counting.class_label is None:
            for vi, version in enumerate(rate.versions):
                if version.classes:
                    report.add(
                        rates_file,
                        ("capabilities", ci, "versions", vi, "classes"),
                        "call classes need call_counting.class_label (the label whose value picks the class)",
                        "set call_counting.class_label, e.g. destination_service_name, or remove the classes",
                    )
    for name, (unit_id, namespace) in sorted(exposed.items()):
        if name not in seen:
            report.add(
                rates_file,
                ("capabilities",),
                f"capability {name!r} (exposed by {unit_id}/{namespace}) has no billing method: its calls are "
                "shown, not charged",
                f"add `- capability: {name}` with versions of method per_call, cost_recovery or none",
                Severity.WARNING,
            )
    for (cluster, namespace), names in sorted(by_namespace.items()):
        billed = [n for n in names if n in seen]
        if len(billed) > 1:
            report.add(
                rates_file,
                ("capabilities",),
                f"namespace {namespace!r} (cluster {cluster}) exposes {', '.join(billed)}: calls are attributed to "
                "a capability by the namespace that serves them, so these cannot be told apart",
                "serve each billed capability from its own namespace, or bill them as one capability",
            )


def _check_alerting(catalog: Catalog, report: _Reporter) -> None:
    """Contacts need an SMTP server for e-mail; a unit without contacts is told its alerts go to the platform."""
    alerting = catalog.pool.alerting
    if alerting is None:
        return
    if alerting.email is None:
        mailed = [
            (report.file(POOL_FILE), ("alerting", "platform_contacts", i))
            for i, c in enumerate(alerting.platform_contacts)
            if c.kind == "email"
        ]
        for unit in catalog.units:
            contacts = unit.alerts.contacts if unit.alerts else []
            mailed += [
                (report.unit_file(unit.id), ("alerts", "contacts", i))
                for i, c in enumerate(contacts)
                if c.kind == "email"
            ]
        for file, loc in mailed:
            report.add(
                file,
                loc,
                "is an e-mail contact but pool.yaml's alerting has no email server",
                'add `email: {smarthost: "smtp.example.com:587", sender: resource-pool@example.com}` under '
                "alerting in pool.yaml",
            )
    for unit in catalog.units:
        if unit.alerts is None:
            report.add(
                report.unit_file(unit.id),
                ("id",),
                "declares no alert contacts, so its budget and idle alerts go to the platform team",
                "add `alerts: {contacts: [{kind: email, to: oncall@example.com}]}`",
                Severity.WARNING,
            )
