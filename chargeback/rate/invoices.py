"""Invoices and the finance summary of a period, built as the typed documents of `documents`.

Built once per period (`Chargeback.invoices`, `Chargeback.finance_summary`) and consumed as models by
every output, the command line, the exporter and the demo; numbers stay Decimal until a writer dumps them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

from pool_catalog.models import BusinessUnit
from pool_catalog.pricing import round_money

from ..collect import usage
from ..collect.calls import UNKNOWN_CALLER
from ..collect.findings import findings_for, sort_findings
from ..period import iso_utc
from .documents import (
    Budget,
    CapabilitiesConsumed,
    CapabilitiesRecovered,
    CapabilityCell,
    CapabilityConsumed,
    CapabilityMatrix,
    CapabilityRecovered,
    CapabilityRow,
    DataFinding,
    Estimate,
    FinanceSummary,
    IdleAllocation,
    IdleSummary,
    Invoice,
    InvoiceCoverage,
    Line,
    NamespaceCoverage,
    NorthStar,
    ResourceAmount,
    Section,
    SharedNamespace,
    SharedUnit,
    SummaryTotal,
    SummaryUnit,
    UndeclaredCaller,
    UnitRef,
    text,
)
from .idle import REASONS
from .rating import UNALLOCATED
from .result import Chargeback

UNALLOCATED_NAME = "Unallocated (namespaces no business unit owns)"
SHARE = Decimal("0.0001")


def invoice_number(chargeback: Chargeback, unit_id: str) -> str:
    """Deterministic invoice number: RP-<year>-<month>-<unit id>."""
    return f"RP-{chargeback.period.year:04d}-{chargeback.period.month:02d}-{unit_id}"


__all__ = ["text"]  # re-exported: the writers of the ledger and history format numbers with it


def ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(SHARE, rounding=ROUND_HALF_EVEN) if whole else None


def idle_totals(idle: pd.DataFrame, currency: str) -> tuple[Decimal, Decimal]:
    """(what the unit pays for idle allocations, the pool capacity they hold at the rate card): the plain
    sums of idle.csv's `unit_pays` and `capacity_held`, which count each allocation once (`idle.find_idle`)."""
    unit_pays = sum(idle["unit_pays"], Decimal(0)) if not idle.empty else Decimal(0)
    capacity = sum(idle["capacity_held"], Decimal(0)) if not idle.empty else Decimal(0)
    return round_money(unit_pays, currency), round_money(capacity, currency)


def invoice_line(row: dict) -> Line:
    """A rated line (rating.LINE_SCHEMA record) as an invoice (and a ledger line) shows it."""
    return Line(**{name: iso_utc(row[name]) if name in LINE_TIMES else row[name] for name in Line.model_fields})


LINE_TIMES = frozenset({"rate_effective_from", "charge_period_start", "charge_period_end"})


def line_text(row: dict) -> dict[str, Any]:
    """A rated line as the text fields a ledger line stores (the invoice line's JSON)."""
    return invoice_line(row).model_dump(mode="json")


def _coverage(chargeback: Chargeback) -> dict[tuple[str, str], NamespaceCoverage]:
    """(cluster, namespace) → coverage entry of the invoice; namespaces without samples are left out.

    hours_seen: hours in which Prometheus had the namespace (hours before it was created are not
    gaps); hours_covered: how much of those hours scrapes covered; share = covered / seen. Complete
    means every hour seen was fully scraped; a catalog namespace never seen is never complete."""
    hours = chargeback.period.hours
    result = {}
    for row in chargeback.coverage.to_dict("records"):
        covered = Decimal(repr(float(row["hours_covered"]))).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        seen = int(row["hours_seen"])
        result[(row["cluster"], row["namespace"])] = NamespaceCoverage(
            hours_in_period=hours,
            hours_seen=seen,
            hours_covered=covered,
            share=(covered / seen).quantize(SHARE, rounding=ROUND_HALF_EVEN),
            complete=covered >= seen,
        )
    return result


def _no_coverage(hours: int) -> NamespaceCoverage:
    return NamespaceCoverage(
        hours_in_period=hours, hours_seen=0, hours_covered=Decimal("0.00"), share=Decimal("0.0000"), complete=False
    )


IDLE_FIELDS = tuple(name for name in IdleAllocation.model_fields if name != "reason_text")


def _idle_rows(idle: pd.DataFrame) -> list[IdleAllocation]:
    return [
        IdleAllocation(**{name: row[name] for name in IDLE_FIELDS}, reason_text=REASONS[row["reason"]])
        for row in idle.to_dict("records")
    ]


def _namespaces(chargeback: Chargeback, unit_id: str, own: Iterable[tuple[str, str]]) -> list[Section]:
    lines = chargeback.lines[chargeback.lines["business_unit"] == unit_id]
    currency = chargeback.currency
    by_namespace: dict[tuple[str, str], list[dict]] = {}
    for line in lines.to_dict("records"):
        by_namespace.setdefault((line["cluster"], line["namespace"]), []).append(line)
    coverage = _coverage(chargeback)
    estimates = _estimates(chargeback)
    result = []
    for cluster, namespace in sorted(set(own) | set(by_namespace)):
        ns_lines = by_namespace.get((cluster, namespace), [])
        split = ns_lines[0]["shared_split"] if ns_lines else ""
        result.append(
            Section(
                cluster=cluster,
                namespace=namespace,
                shared_split=split,
                share=ns_lines[0]["share"] if split else None,
                subtotal=round_money(sum((row["amount"] for row in ns_lines), Decimal(0)), currency),
                coverage=coverage.get((cluster, namespace)) or _no_coverage(chargeback.period.hours),
                lines=[invoice_line(row) for row in ns_lines],
                estimates=estimates.get((cluster, namespace)),
            )
        )
    return result


ESTIMATE_TEXT = {
    usage.NOT_MEASURED: "not measured per pod (hostNetwork pods send as the node); not billed",
    usage.CARRIED: "claim not mounted: use carried forward from its last observation, at most its request",
    usage.NEVER_OBSERVED: "claim never mounted in the period: no kubelet reported it; its use counts as 0",
    usage.NODE_GAP: "a node running pods of this namespace was not (fully) scraped: use in those hours is incomplete",
    usage.NAN_SAMPLES: "samples were NaN: those hours are left unknown and not billed",
    usage.UNREPORTED: "pods ran but cAdvisor reported none of their containers: those hours are unknown, not billed",
}
"""What each estimate kind (usage.ESTIMATE_SCHEMA) means for the reader of an invoice."""


def _estimates(chargeback: Chargeback) -> dict[tuple[str, str], list[Estimate]]:
    """(cluster, namespace) → the figures of its invoice section that are estimates or gaps."""
    result: dict[tuple[str, str], list[Estimate]] = {}
    frame = chargeback.estimates.sort_values(["cluster", "namespace", "resource", "tier", "kind", "detail"])
    for row in frame.to_dict("records"):
        result.setdefault((row["cluster"], row["namespace"]), []).append(
            Estimate(
                resource=row["resource"],
                tier=row["tier"],
                kind=row["kind"],
                hours=int(row["hours"]),
                detail=row["detail"],
                text=ESTIMATE_TEXT[row["kind"]],
            )
        )
    return result


def _by_resource(lines: pd.DataFrame) -> list[ResourceAmount]:
    totals = lines.groupby(["resource", "tier"], sort=True)["amount"].agg(lambda s: sum(s, Decimal(0)))
    return [ResourceAmount(resource=r, tier=t, amount=amount) for (r, t), amount in totals.items()]


def build_invoice(chargeback: Chargeback, unit: BusinessUnit | None) -> Invoice:
    """The invoice of one unit, or (unit None) the statement of unallocated namespaces."""
    catalog, period = chargeback.catalog, chargeback.period
    unit_id = unit.id if unit else UNALLOCATED
    lines = chargeback.lines[chargeback.lines["business_unit"] == unit_id]
    if unit:
        own = [(catalog.cluster_of(ns).name, ns.name) for ns in unit.namespaces]
    else:
        usage = chargeback.usage[chargeback.usage["business_unit"] == UNALLOCATED]
        pairs = usage[["cluster", "namespace"]].drop_duplicates()
        own = list(zip(pairs["cluster"], pairs["namespace"], strict=True))
    resources = round_money(sum(lines["amount"], Decimal(0)), chargeback.currency)
    consumed = capabilities_consumed(chargeback, unit_id) if unit else None
    recovered = recovered_from_consumers(chargeback, unit_id) if unit else None
    # Money moves between units, it is never created: what a consumer pays, its provider is credited.
    total = resources + (consumed.total if consumed else 0) + (recovered.total if recovered else 0)
    idle = chargeback.idle[chargeback.idle["business_unit"] == unit_id]
    idle_pays, idle_capacity = idle_totals(idle, chargeback.currency)
    namespaces = _namespaces(chargeback, unit_id, own)
    budget = unit.budget.monthly if unit else None
    versions = sorted({iso_utc(v) for v in lines["rate_effective_from"]})
    pairs = [(ns.cluster, ns.namespace) for ns in namespaces]
    # Only when there are: a run without findings gives the same bytes as before findings existed.
    findings = [DataFinding(**f.as_dict()) for f in findings_for(chargeback.findings, pairs)] or None
    return Invoice(
        invoice_number=invoice_number(chargeback, unit_id),
        period=period.label,
        period_start=iso_utc(period.start),
        period_end=iso_utc(period.end),
        time_zone=period.zone_name,
        issuer=chargeback.catalog.rates.issuer,
        business_unit=UnitRef(
            id=unit_id,
            display_name=unit.display_name if unit else UNALLOCATED_NAME,
            cost_center=unit.cost_center if unit else "",
        ),
        currency=chargeback.currency,
        billing_mode=chargeback.billing_mode.value,
        rate_versions=versions,
        total=total,
        by_resource=_by_resource(lines),
        budget=None
        if budget is None
        else Budget(
            monthly=round_money(budget, chargeback.currency),
            used=ratio(total, budget),
            alert_at=Decimal(str(unit.budget.alert_at)),
        ),
        coverage=InvoiceCoverage(
            hours_in_period=period.hours,
            complete=all(ns.coverage.complete for ns in namespaces),
            incomplete_namespaces=[ns.namespace for ns in namespaces if not ns.coverage.complete],
        ),
        namespaces=namespaces,
        idle=IdleSummary(unit_pays=idle_pays, capacity_held=idle_capacity, allocations=_idle_rows(idle)),
        capabilities_consumed=consumed,
        recovered_from_consumers=recovered,
        north_star=_north_star(chargeback, unit, total),
        data_findings=findings,
    )


def billed_amount(row: dict) -> Decimal:
    """What a capability line moves from its consumer to its provider (its amount, when charged)."""
    return row["amount"] if row["charged"] else Decimal(0) * row["amount"]


def _number(value: Decimal, used: bool) -> Decimal | None:
    return value if used else None


def _call_fields(row: dict) -> dict[str, Any]:
    """The fields both sides of a capability line show: what was called, how it is billed, how often."""
    return {
        "cluster": row["cluster"],
        "capability": row["capability"],
        "provider_namespace": row["provider_namespace"],
        "call_class": row["call_class"],
        "method": row["method"],
        "calls": int(row["calls"]),
        "not_billable_calls": int(row["not_billable_calls"]),
    }


def capabilities_consumed(chargeback: Chargeback, unit_id: str) -> CapabilitiesConsumed | None:
    """The unit's namespaces' calls to capabilities of other namespaces; None when they made none.

    A provider's calls to its own capability stay on its recovered section (not billed)."""
    frame = chargeback.capability_lines
    mine = frame[(frame["consumer_unit"] == unit_id) & (frame["consumer_namespace"] != frame["provider_namespace"])]
    if mine.empty:
        return None
    lines = []
    for row in mine.sort_values(["cluster", "consumer_namespace", "capability", "rate_effective_from"]).to_dict(
        "records"
    ):
        per_call, recovery = row["method"] == "per_call", row["method"] == "cost_recovery"
        lines.append(
            CapabilityConsumed(
                **_call_fields(row),
                provider_unit=row["provider_unit"],
                namespace=row["consumer_namespace"],
                price_per_thousand=_number(row["unit_price"], per_call),
                share=_number(row["share"], recovery),
                recovered_cost=_number(row["recovered_cost"], recovery),
                amount=billed_amount(row),
                rate_effective_from=iso_utc(row["rate_effective_from"]),
                charge_period_start=iso_utc(row["charge_period_start"]),
                charge_period_end=iso_utc(row["charge_period_end"]),
                declared=bool(row["declared"]),
            )
        )
    total = round_money(sum((line.amount for line in lines), Decimal(0)), chargeback.currency)
    return CapabilitiesConsumed(total=total, lines=lines)


def not_billed_note(row: dict) -> str:
    """Why a capability line moved no money ("" when it did)."""
    if row["charged"]:
        return ""
    if row["consumer_namespace"] == row["provider_namespace"]:
        return "the provider's own calls: not billed"
    if row["consumer_namespace"] == UNKNOWN_CALLER:
        return "callers without a namespace: counted, billed to nobody"
    if row["consumer_unit"] == UNALLOCATED:
        return "no business unit owns the calling namespace: not billed"
    if row["method"] == "none":
        return "method none: shown, not billed"
    return "nothing to charge (no billable calls, or no provider cost to recover)"


def recovered_from_consumers(chargeback: Chargeback, unit_id: str) -> CapabilitiesRecovered | None:
    """Every call to the unit's capabilities: a credit for each charge, the rest shown with why it was not
    billed; None when nobody called them."""
    frame = chargeback.capability_lines
    mine = frame[frame["provider_unit"] == unit_id]
    if mine.empty:
        return None
    lines = [
        CapabilityRecovered(
            **_call_fields(row),
            consumer_unit=row["consumer_unit"],
            consumer_namespace=row["consumer_namespace"],
            amount=_credit(billed_amount(row)),
            note=not_billed_note(row),
        )
        for row in mine.sort_values(["cluster", "capability", "consumer_namespace", "rate_effective_from"]).to_dict(
            "records"
        )
    ]
    total = round_money(sum((line.amount for line in lines), Decimal(0)), chargeback.currency)
    return CapabilitiesRecovered(total=total, lines=lines)


def _credit(amount: Decimal) -> Decimal:
    return -amount if amount else amount  # never "-0.00"


def capability_matrix(chargeback: Chargeback) -> CapabilityMatrix | None:
    """Consumer units × capabilities: billable calls and the amount charged; None without calls."""
    frame = chargeback.capability_lines
    if frame.empty:
        return None
    currency = chargeback.currency
    capabilities = sorted(set(frame["capability"]))
    billed = frame.assign(billed=[billed_amount(row) for row in frame.to_dict("records")])
    cells: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for (unit_id, capability), group in billed.groupby(["consumer_unit", "capability"], sort=True):
        cells[(unit_id, capability)] = (int(group["calls"].sum()), sum(group["billed"], Decimal(0)))
    zero = round_money(Decimal(0), currency)
    rows = []
    for unit_id in sorted({unit for unit, _cap in cells}):
        row_cells = [
            CapabilityCell(capability=c, calls=cells.get((unit_id, c), (0, zero))[0],
                           amount=round_money(cells.get((unit_id, c), (0, zero))[1], currency))
            for c in capabilities
        ]  # fmt: skip
        rows.append(
            CapabilityRow(
                id=unit_id,
                cells=row_cells,
                calls=sum(cell.calls for cell in row_cells),
                amount=round_money(sum((cell.amount for cell in row_cells), Decimal(0)), currency),
            )
        )
    totals = [
        CapabilityCell(
            capability=c,
            calls=sum(cell.calls for row in rows for cell in row.cells if cell.capability == c),
            amount=round_money(
                sum((cell.amount for row in rows for cell in row.cells if cell.capability == c), Decimal(0)), currency
            ),
        )
        for c in capabilities
    ]
    return CapabilityMatrix(
        capabilities=capabilities,
        units=rows,
        totals=totals,
        calls=sum(row.calls for row in rows),
        amount=round_money(sum((row.amount for row in rows), Decimal(0)), currency),
    )


def undeclared_callers(chargeback: Chargeback) -> list[UndeclaredCaller] | None:
    """The doctor's undeclared-caller findings: namespaces calling a capability they do not declare, with every
    call they made (billable or not); None when there are none."""
    callers = [
        UndeclaredCaller(
            cluster=finding.cluster,
            namespace=namespace,
            unit=owner.id if (owner := chargeback.catalog.owner_of(namespace, finding.cluster)) else UNALLOCATED,
            capability=finding.capability,
            calls=finding.calls,
        )
        for finding in chargeback.findings
        if finding.code == "undeclared-caller"
        for namespace in finding.namespaces
    ]
    return sorted(callers, key=lambda c: (c.cluster, c.namespace, c.capability)) or None


def _north_star(chargeback: Chargeback, unit: BusinessUnit | None, total: Decimal) -> NorthStar | None:
    """The north-star block of a unit whose north-star metric was measured this run, else None."""
    from .north_star import invoice_entry

    measured = chargeback.north_star or {}
    if unit is None or unit.north_star is None or unit.id not in measured:
        return None
    return NorthStar.model_validate(invoice_entry(unit, measured[unit.id], total))


def build_invoices(chargeback: Chargeback) -> list[Invoice]:
    """An invoice per catalog unit (even without usage), plus the unallocated statement if anything is."""
    invoices = [build_invoice(chargeback, unit) for unit in sorted(chargeback.catalog.units, key=lambda u: u.id)]
    if (chargeback.usage["business_unit"] == UNALLOCATED).any():
        invoices.append(build_invoice(chargeback, None))
    return invoices


def finance_summary(chargeback: Chargeback, invoices: Sequence[Invoice]) -> FinanceSummary:
    """All units side by side: budget vs actual, share of the pool, idle money; unallocated shown."""
    currency = chargeback.currency
    pool_total = round_money(sum((inv.total for inv in invoices), Decimal(0)), currency)
    rows = []
    for invoice in invoices:
        budget = invoice.budget
        used = budget.used if budget else None
        rows.append(
            SummaryUnit(
                id=invoice.business_unit.id,
                display_name=invoice.business_unit.display_name,
                cost_center=invoice.business_unit.cost_center,
                invoice_number=invoice.invoice_number,
                budget=budget.monthly if budget else None,
                actual=invoice.total,
                budget_used=used,
                over_budget=used is not None and used > 1,
                at_alert=used is not None and budget is not None and used >= budget.alert_at,
                share_of_pool=ratio(invoice.total, pool_total),
                idle_unit_pays=invoice.idle.unit_pays,
                idle_capacity_held=invoice.idle.capacity_held,
                coverage_complete=invoice.coverage.complete,
                north_star=invoice.north_star,
            )
        )
    budgets = sum((r.budget for r in rows if r.budget is not None), Decimal(0))
    findings = [DataFinding(**f.as_dict()) for f in sort_findings(chargeback.findings) if f.on_invoice]
    return FinanceSummary(
        period=chargeback.period.label,
        period_start=iso_utc(chargeback.period.start),
        period_end=iso_utc(chargeback.period.end),
        time_zone=chargeback.period.zone_name,
        issuer=chargeback.catalog.rates.issuer,
        currency=chargeback.currency,
        billing_mode=chargeback.billing_mode.value,
        units=rows,
        shared_namespaces=_shared(chargeback),
        capabilities=capability_matrix(chargeback),
        undeclared_callers=undeclared_callers(chargeback),
        total=SummaryTotal(
            actual=pool_total,
            budget=budgets,
            budget_used=ratio(pool_total, budgets),
            idle_unit_pays=round_money(sum((r.idle_unit_pays for r in rows), Decimal(0)), currency),
            idle_capacity_held=round_money(sum((r.idle_capacity_held for r in rows), Decimal(0)), currency),
        ),
        data_findings=findings or None,
    )


def _shared(chargeback: Chargeback) -> list[SharedNamespace]:
    """How each shared namespace's cost was split."""
    lines = chargeback.lines[chargeback.lines["shared_split"] != ""]
    result = []
    for (cluster, namespace, split), group in lines.groupby(["cluster", "namespace", "shared_split"], sort=True):
        units = group.groupby("business_unit", sort=True)["amount"].agg(lambda s: sum(s, Decimal(0)))
        result.append(
            SharedNamespace(
                cluster=cluster,
                namespace=namespace,
                split=split,
                amount=sum(group["amount"], Decimal(0)),
                units=[SharedUnit(id=unit_id, amount=amount) for unit_id, amount in units.items()],
            )
        )
    return result
