"""The decision on a request: the edit applied to a copy of the catalog, then the name, capacity, budget and the
policy pack checked, each problem a typed `Refusal` (or a warning) naming the limit, by how much it is exceeded
and what would fit.

Who checks what, so nothing is reported twice: capacity is `_check_capacity` (it knows what would fit), and
the edited catalog is reloaded from a temporary copy without its capacity sums (proving the file a reviewer
will see validates); the budget is `_check_budget`, so the pack's unit-budget rule is disabled for the request;
the pack's node-pool-capacity rule still runs, as it adds the configured headroom.
New warnings and violations are told from old ones as typed objects (findings, violations), not as text.
"""

from __future__ import annotations

import datetime as dt
import difflib
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from pool_catalog import Catalog, CatalogError, Severity, load_catalog
from pool_catalog.capacity import NODE_RESOURCES, Room, format_amount, node_pool_room, over_capacity, tier_room
from pool_catalog.checks import RESERVED_NAMESPACES, RESERVED_PREFIXES
from pool_catalog.estimate import NamespaceEstimate, UnitEstimate, UnitHistory, project
from pool_catalog.files import UNITS_DIR, unit_file
from pool_catalog.loader import parse_model
from pool_catalog.models import BusinessUnit, Cluster, DnsLabel, Namespace
from pool_catalog.numbers import format_money, format_percent
from pool_catalog.pricing import (
    MissingPriceError,
    QuotaCost,
    quota_monthly_cost,
    rate_version_for,
    round_money,
    unit_monthly_cost,
)

from ..errors import PoolError, RequestError
from .edit import apply_request, dump, load_document, new_entry, write_unit_file
from .model import NamespaceRequest

BudgetBasis = Literal["expected", "quota"]
"""Which monthly figure the budget is compared with: expected from history, or at full quota."""


def parse_budget_basis(value: str | None) -> BudgetBasis | None:
    """--budget-basis as typed: expected, quota, or None (the default for the history given)."""
    if value is None:
        return None
    if value not in ("expected", "quota"):
        raise RequestError(
            f"--budget-basis {value!r}: write expected (what the unit is expected to pay, needs --history) or "
            "quota (every namespace at full quota)"
        )
    return "expected" if value == "expected" else "quota"


@dataclass(frozen=True)
class Refusal:
    """Why a request cannot be accepted: the limit, by how much, and what would fit."""

    limit: str
    message: str
    fits: str = ""


@dataclass
class Decision:
    """Outcome of a request, with the figures a unit and a reviewer need."""

    unit: str
    namespace: str
    cluster: str
    is_new: bool
    file: Path
    refusals: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    entry: Namespace | None = None
    """The namespace entry as it would be written."""
    currency: str = ""
    rates_from: dt.datetime | None = None
    cost: QuotaCost | None = None
    """Full-quota monthly cost of the namespace after the request."""
    previous_cost: Decimal | None = None
    """…and before it, for a quota change."""
    unit_before: Decimal | None = None
    unit_after: Decimal | None = None
    budget: Decimal | None = None
    estimate_before: UnitEstimate | None = None
    """The unit's monthly projection before the request (expected from history, and at full quota)…"""
    estimate_after: UnitEstimate | None = None
    """…and after it."""
    budget_basis: BudgetBasis = "quota"
    original_text: str = ""
    new_text: str = ""

    @property
    def accepted(self) -> bool:
        return not self.refusals

    @property
    def changed(self) -> bool:
        return self.new_text != self.original_text

    def diff(self) -> str:
        """Unified diff of the unit file, paths relative to the catalog directory."""
        name = f"{UNITS_DIR}/{self.file.name}"
        return "".join(
            difflib.unified_diff(
                self.original_text.splitlines(keepends=True),
                self.new_text.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )

    def figure(self, estimate: UnitEstimate | NamespaceEstimate) -> Decimal:
        """The figure of a unit's or a namespace's estimate that the budget is compared with (`budget_basis`)."""
        return estimate.expected if self.budget_basis == "expected" else estimate.at_quota

    def budget_lines(self) -> list[str]:
        """The unit's monthly figures before → after, which one was compared with the budget, and what was carried."""
        before, after = self.estimate_before, self.estimate_after
        if before is None or after is None or self.budget is None:
            return []
        currency = self.currency

        def m(amount: Decimal) -> str:
            return format_money(amount, currency)

        def change(a: Decimal, b: Decimal) -> str:
            return f"{m(a)} → {m(b)} {currency} ({format_money(b - a, currency, sign=True)})"

        compared = self.figure(after)
        share = f"{format_percent(compared / self.budget)} of it" if self.budget else "no budget"
        basis = "the expected figure" if self.budget_basis == "expected" else "the full-quota figure"
        history = after.history
        if history is None:
            return [
                f"unit {self.unit} monthly total at full quota: {change(before.at_quota, after.at_quota)}; "
                f"budget {format_money(self.budget, currency)} {currency} ({share}; compared: {basis})",
                "  not included: egress, capability calls and shared namespaces, which no quota bounds; pass "
                "--history <folder of an issued month> to count them and compare what the unit really pays",
            ]
        lines = [
            f"unit {self.unit} monthly total expected from {history.period}'s use: "
            f"{change(before.expected, after.expected)}; at full quota: {change(before.at_quota, after.at_quota)}",
            f"budget {format_money(self.budget, currency)} {currency} ({share}; compared: {basis}, --budget-basis "
            f"{'quota' if self.budget_basis == 'expected' else 'expected'} compares the other)",
        ]
        carried = [f"{resource} {m(amount)}" for resource, amount in sorted(after.usage_billed().items())]
        carried += [f"shared namespaces {m(after.shared)}", f"capability calls net of credits {m(after.capabilities)}"]
        lines.append(
            f"  in both, carried from {history.period} ({history.source}), scaled to 730 h: {', '.join(carried)} "
            f"{currency}; measured use repriced at the rates from {self.rates_from:%Y-%m-%d}, "
            "capped at what the quota allows"
        )
        unmeasured = [ns.namespace for ns in after.namespaces if not ns.measured]
        if unmeasured:
            lines.append(f"  counted at full quota (no use in {history.period}): {', '.join(unmeasured)}")
        if after.dropped:
            lines.append(f"  left out (in {history.period}, no longer the unit's): {', '.join(after.dropped)}")
        return lines

    def to_json(self) -> dict[str, Any]:
        """The decision for scripts and pull-request bots: money as decimal strings rounded like an invoice."""

        def money(amount: Decimal | None) -> str | None:
            return None if amount is None else str(round_money(amount, self.currency))

        return {
            "accepted": self.accepted,
            "unit": self.unit,
            "namespace": self.namespace,
            "cluster": self.cluster,
            "new_namespace": self.is_new,
            "file": str(self.file),
            "refusals": [{"limit": r.limit, "message": r.message, "fits": r.fits} for r in self.refusals],
            "warnings": self.warnings,
            "currency": self.currency or None,
            "rates_effective_from": self.rates_from.isoformat() if self.rates_from else None,
            "monthly_cost": money(self.cost.total if self.cost else None),
            "monthly_cost_lines": [
                {"resource": resource.value, "tier": tier, "amount": money(amount)}
                for (resource, tier), amount in (self.cost.lines.items() if self.cost else [])
            ],
            "previous_monthly_cost": money(self.previous_cost),
            "unit_monthly_before": money(self.unit_before),
            "unit_monthly_after": money(self.unit_after),
            "budget": None if self.budget is None else str(self.budget),
            "budget_basis": self.budget_basis,
            "budget_compared": money(self.figure(self.estimate_after) if self.estimate_after else None),
            "estimate": self._estimate_json(money),
            "diff": self.diff() if self.accepted else "",
        }

    def _estimate_json(self, money: Callable[[Decimal | None], str | None]) -> dict[str, Any] | None:
        before, after = self.estimate_before, self.estimate_after
        if before is None or after is None:
            return None
        history = after.history
        return {
            "history": None if history is None else {"file": history.source, "period": history.period},
            "expected_before": None if history is None else money(before.expected),
            "expected_after": None if history is None else money(after.expected),
            "at_full_quota_before": money(before.at_quota),
            "at_full_quota_after": money(after.at_quota),
            "carried": {
                "usage_billed": {resource: money(amount) for resource, amount in sorted(after.usage_billed().items())},
                "shared_namespaces": money(after.shared),
                "capability_calls": money(after.capabilities),
            },
            "namespaces": [
                {
                    "cluster": ns.cluster,
                    "namespace": ns.namespace,
                    "expected": money(ns.expected),
                    "at_full_quota": money(ns.at_quota),
                    "measured": ns.measured,
                }
                for ns in after.namespaces
            ],
            "left_out": list(after.dropped),
        }

    def write(self) -> None:
        """Write the edited unit file (atomically); a refused request is never written."""
        if not self.accepted:
            raise RequestError("a refused request is never written")
        write_unit_file(self.file, self.new_text, read_as=self.original_text)


def evaluate(
    catalog: Catalog,
    request: NamespaceRequest,
    *,
    at: dt.datetime | None = None,
    allow_over_budget: bool = False,
    policy_config: Mapping[str, Any] | None = None,
    history: UnitHistory | None = None,
    budget_basis: BudgetBasis | None = None,
    revalidate: bool = True,
) -> Decision:
    """Apply `request` to a copy of `catalog` and decide. Raises RequestError for requests that cannot be read.

    `history` (the unit's measured month) makes the budget check compare the expected figure by default;
    `budget_basis` "quota" compares the full-quota figure instead ("expected" needs a history).
    `revalidate=False` leaves out reloading the edited catalog and the policy pack (seconds): the portal's
    estimate while a person types runs the name, capacity and budget checks only, and the full decision
    when the request is submitted and approved."""
    root = Path(catalog.root)
    unit = catalog.unit(request.unit)
    if unit is None:
        known = ", ".join(sorted(u.id for u in catalog.units))
        raise RequestError(f"unknown unit {request.unit!r}: use one of {known}")
    path = unit_file(root, unit.id)
    existing_index = _existing_index(catalog, unit, request)
    existing = unit.namespaces[existing_index] if existing_index is not None else None
    cluster_name = request.cluster or (
        catalog.cluster_of(existing).name if existing is not None else catalog.pool.clusters[0].name
    )
    if budget_basis == "expected" and history is None:
        raise RequestError(
            "--budget-basis expected needs --history: give the folder of an issued month's invoices "
            "(e.g. out/demo/2026-10), or compare at full quota with --budget-basis quota"
        )
    original_text = path.read_text(encoding="utf-8")
    decision = Decision(
        unit.id, request.name, cluster_name, existing is None, path, original_text=original_text, new_text=original_text
    )
    decision.budget_basis = budget_basis or ("expected" if history is not None else "quota")
    owner = catalog.owner_of(request.name, cluster_name)
    if owner is not None and owner.id != unit.id:
        decision.refusals.append(
            Refusal(
                "namespace owner",
                f"namespace {request.name!r} in cluster {cluster_name!r} belongs to unit {owner.id!r}",
                f"pick another name, e.g. {unit.id}-{request.name}, or ask {owner.id} to hand it over",
            )
        )
        return decision
    if not _name_allowed(request.name, unit, decision):
        return decision
    cluster = catalog.pool.cluster(cluster_name)
    if cluster is None:
        known = ", ".join(c.name for c in catalog.pool.clusters)
        decision.refusals.append(Refusal("cluster", f"unknown cluster {cluster_name!r}", f"use one of: {known}"))
        return decision
    if existing is None and (request.node_pool is None or request.quota.cpu is None or request.quota.memory is None):
        raise RequestError(
            f"namespace {request.name!r} is new for unit {unit.id!r}: give at least --node-pool, --cpu and --memory "
            "(node_pool and quota.cpu/quota.memory in a file)"
        )

    document = load_document(original_text)
    if existing_index is None:
        write_cluster = cluster_name if (request.cluster or len(catalog.pool.clusters) > 1) else None
        entry = new_entry(request, write_cluster)
        document["namespaces"].append(entry)
    else:
        entry = document["namespaces"][existing_index]
    apply_request(entry, request)
    try:
        namespace = parse_model(Namespace, entry, str(path))
    except CatalogError as e:
        problems = "; ".join(f"{f.field}: {f.message}" if f.field else f.message for f in e.findings)
        raise RequestError(f"namespace {request.name!r} would not be a valid entry: {problems}") from e
    decision.entry = namespace
    decision.new_text = dump(document)

    if not _known_pool_and_tiers(cluster, namespace, decision):
        return decision
    namespaces = list(unit.namespaces)
    if existing_index is None:
        namespaces.append(namespace)
    else:
        namespaces[existing_index] = namespace
    unit_after = unit.model_copy(update={"namespaces": namespaces})
    others = [u for u in catalog.units if u.id != unit.id]
    unit_without = unit.model_copy(update={"namespaces": [ns for ns in namespaces if ns is not namespace]})
    without = catalog.model_copy(update={"units": [*others, unit_without]})
    _check_capacity(without, cluster, namespace, decision)
    _check_budget(catalog, unit, unit_after, namespace, existing, at, allow_over_budget, history, decision)
    if revalidate:
        _revalidate(catalog, decision, cluster_name, policy_config)
    return decision


def _existing_index(catalog: Catalog, unit: BusinessUnit, request: NamespaceRequest) -> int | None:
    for index, ns in enumerate(unit.namespaces):
        if ns.name == request.name and (request.cluster is None or catalog.cluster_of(ns).name == request.cluster):
            return index
    return None


def _name_allowed(name: str, unit: BusinessUnit, decision: Decision) -> bool:
    try:
        TypeAdapter(DnsLabel).validate_python(name)
    except ValidationError as e:
        reason = e.errors()[0]["msg"].removeprefix("Value error, ")
        decision.refusals.append(Refusal("namespace name", reason, f"e.g. {_suggest_name(name, unit)}"))
        return False
    if name in RESERVED_NAMESPACES or name.startswith(RESERVED_PREFIXES):
        decision.refusals.append(
            Refusal(
                "namespace name",
                f"{name!r} is reserved for the platform (kube- names belong to Kubernetes)",
                f"e.g. {unit.id}-{name.removeprefix('kube-')}",
            )
        )
        return False
    return True


def _suggest_name(name: str, unit: BusinessUnit) -> str:
    """The name in lower case with other characters turned into '-', or the unit id and '-app'."""
    cleaned = "".join(c if c.isalnum() and c.isascii() else "-" for c in name.lower())
    return "-".join(part for part in cleaned.split("-") if part)[:63].strip("-") or f"{unit.id}-app"


def _known_pool_and_tiers(cluster: Cluster, namespace: Namespace, decision: Decision) -> bool:
    known = True
    if cluster.node_pool(namespace.node_pool) is None:
        pools = ", ".join(p.name for p in cluster.node_pools)
        decision.refusals.append(
            Refusal(
                "node pool",
                f"cluster {cluster.name!r} has no node pool {namespace.node_pool!r}",
                f"use one of: {pools}",
            )
        )
        known = False
    for tier in namespace.quota.storage:
        if cluster.tier(tier) is None:
            tiers = ", ".join(t.name for t in cluster.storage_tiers)
            decision.refusals.append(
                Refusal(
                    "storage tier", f"cluster {cluster.name!r} has no storage tier {tier!r}", f"use one of: {tiers}"
                )
            )
            known = False
    return known


def _check_capacity(without: Catalog, cluster: Cluster, namespace: Namespace, decision: Decision) -> None:
    """Does the namespace fit in what its node pool and tiers have left once every other quota is counted?"""
    pool = cluster.node_pool(namespace.node_pool)
    assert pool is not None  # checked by _known_pool_and_tiers
    wanted = {"cpu": namespace.quota.cpu, "memory": namespace.quota.memory, "gpu": Decimal(namespace.quota.gpu)}
    rooms = node_pool_room(without, cluster, pool)
    for resource in NODE_RESOURCES:
        room = rooms[resource]
        message = over_capacity(
            f"node pool {pool.name!r}",
            resource,
            room.allocated + wanted[resource],
            room.capacity,
            room.overcommit,
        )
        if message:
            alternatives = [
                f"{other.name} has {_free_text(other_rooms)}"
                for other in cluster.node_pools
                if other.name != pool.name and not other.taints
                for other_rooms in [node_pool_room(without, cluster, other)]
                if all(wanted[r] <= other_rooms[r].free for r in NODE_RESOURCES)
            ]
            free = format_amount(resource, max(room.free, Decimal(0)), ROUND_FLOOR)  # safe to ask for
            fits = f"node pool {pool.name} has {free} free at overcommit {room.overcommit}: ask for ≤ {free}"
            fits += f", or another pool: {'; '.join(alternatives)}" if alternatives else "; no other pool has room"
            decision.refusals.append(Refusal(f"node pool {pool.name} {resource}", message, fits))
    for tier, size in namespace.quota.storage.items():
        room = tier_room(without, cluster, tier)
        message = over_capacity(f"storage tier {tier!r}", "storage", room.allocated + size, room.capacity)
        if message:
            others = [
                f"{other.name} has {format_amount('storage', free, ROUND_FLOOR)} free"
                for other in cluster.storage_tiers
                if other.name != tier
                for free in [tier_room(without, cluster, other.name).free]
                if size <= free
            ]
            fits = f"ask for ≤ {format_amount('storage', max(room.free, Decimal(0)), ROUND_FLOOR)} on {tier}"
            fits += f", or another tier: {'; '.join(others)}" if others else ""
            decision.refusals.append(Refusal(f"storage tier {tier}", message, fits))


def _free_text(rooms: dict[str, Room]) -> str:
    return ", ".join(format_amount(r, max(rooms[r].free, Decimal(0)), ROUND_FLOOR) for r in NODE_RESOURCES) + " free"


def _check_budget(
    catalog: Catalog,
    unit: BusinessUnit,
    unit_after: BusinessUnit,
    namespace: Namespace,
    existing: Namespace | None,
    at: dt.datetime | None,
    allow_over_budget: bool,
    history: UnitHistory | None,
    decision: Decision,
) -> None:
    """Project the unit's monthly cost at the rate card in force and compare it with the budget.

    A request that raises the compared figure above the budget is refused: the budget is what finance
    approved, and a request is the moment cost is added. With a history the expected figure (measured use,
    quota as the ceiling, egress and capability calls carried) is compared by default, else the full-quota
    one; `--allow-over-budget` accepts with a warning.
    """
    version = rate_version_for(catalog.rates, at)
    currency = catalog.rates.currency
    placed = [(catalog.cluster_of(ns).name, ns) for ns in unit.namespaces]
    placed_after = [
        (decision.cluster if ns is namespace else catalog.cluster_of(ns).name, ns) for ns in unit_after.namespaces
    ]
    previous = {(decision.cluster, existing.name): existing.quota} if existing else {}
    try:
        decision.cost = quota_monthly_cost(namespace.quota, version)
        decision.previous_cost = quota_monthly_cost(existing.quota, version).total if existing else None
        decision.unit_before = unit_monthly_cost(unit, version)
        decision.unit_after = unit_monthly_cost(unit_after, version)
        decision.estimate_before = previously = project(placed, version, history)
        decision.estimate_after = estimate = project(placed_after, version, history, previous)
    except MissingPriceError as e:
        raise RequestError(f"{e}: add the price to rates.yaml before requesting it") from e
    decision.currency = currency
    decision.rates_from = version.effective_from
    decision.budget = budget = unit.budget.monthly
    after, before = decision.figure(estimate), decision.figure(previously)
    if after <= budget or after <= before:
        return
    over = round_money(after - budget, currency)
    if decision.budget_basis == "expected" and estimate.history is not None:
        figure = (
            f"{format_money(after, currency)} {currency} per month expected from {estimate.history.period}'s use "
            f"(at full quota: {format_money(estimate.at_quota, currency)})"
        )
    else:
        figure = f"{format_money(after, currency)} {currency} per month at full quota"
    message = (
        f"unit {unit.id!r} would cost {figure}, above its budget {format_money(budget, currency)} {currency} "
        f"by {format_money(over, currency)} {currency}"
    )
    key = (decision.cluster, namespace.name)
    own_before = next(
        (decision.figure(ns) for ns in previously.namespaces if (ns.cluster, ns.namespace) == key),
        None,
    )
    own_after = next(decision.figure(ns) for ns in estimate.namespaces if (ns.cluster, ns.namespace) == key)
    left = budget - (before - (own_before or Decimal(0)))
    fits = (
        f"the budget leaves {format_money(max(left, Decimal(0)), currency)} {currency} per month for {namespace.name} "
        f"({'it is expected to cost' if decision.budget_basis == 'expected' else 'this quota costs'} "
        f"{format_money(own_after, currency)}): shrink the quota, raise budget.monthly "
        "in the unit's file with finance, or pass --allow-over-budget"
    )
    if allow_over_budget:
        decision.warnings.append(f"{message} — accepted with --allow-over-budget")
    else:
        decision.refusals.append(Refusal("budget", message, fits))


def _revalidate(catalog: Catalog, decision: Decision, cluster: str, policy_config: Mapping[str, Any] | None) -> None:
    """Load the edited catalog from a temporary copy and, when it loads, run the policy pack on it.

    The capacity sums are left out: `_check_capacity` checks them, with what would fit.
    """
    root = Path(catalog.root)
    with tempfile.TemporaryDirectory(prefix="pool-request-") as scratch:
        copy = Path(scratch) / "catalog"
        shutil.copytree(root, copy)
        unit_file(copy, decision.unit).write_text(decision.new_text, encoding="utf-8")
        try:
            after = load_catalog(copy, capacity=False)
        except CatalogError as e:
            for finding in e.findings:
                real = replace(finding, file=finding.file.replace(str(copy), str(root), 1))
                decision.refusals.append(Refusal("catalog rule", str(real)))
            return
        before = set(catalog.warnings)
        for warning in after.warnings:
            real = replace(warning, file=warning.file.replace(str(copy), str(root), 1))
            # The budget warning is _check_budget's; a warning the catalog already had is not the request's.
            if real.severity is Severity.WARNING and real.field != "budget.monthly" and real not in before:
                decision.warnings.append(str(real))
        if decision.refusals:
            return
        _check_policies(catalog, after, decision, cluster, policy_config)


def _check_policies(
    before: Catalog, after: Catalog, decision: Decision, cluster: str, policy_config: Mapping[str, Any] | None
) -> None:
    """Mandatory violations the request introduces refuse it; advisory ones become warnings.

    Violations already in the catalog are not the requester's to fix, so only new ones count (compared as
    violations, not as text). The pack's unit-budget rule does not run: `_check_budget` is the stricter check.
    """
    from ..check import check_catalog

    config = {**(policy_config or {}), "unit-budget": "disabled"}
    try:
        existing = set(check_catalog(before, cluster, config))
        found = check_catalog(after, cluster, config)
    except CatalogError as e:
        raise RequestError("policy check failed: " + "; ".join(str(f) for f in e.findings)) from e
    except PoolError as e:
        raise RequestError(f"policy check failed: {e}") from e
    for violation in found:
        if violation in existing:
            continue
        text = f"{violation.resource}: {violation.message}"
        if violation.enforcement == "mandatory":
            decision.refusals.append(Refusal(f"policy {violation.rule}", text))
        else:
            decision.warnings.append(f"policy {violation.rule} (advisory): {text}")
