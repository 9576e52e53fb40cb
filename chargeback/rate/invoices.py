"""Invoices and the finance summary as plain documents (dicts of strings), shared by JSON and HTML.

Numbers are written as fixed-point strings (Decimal, never float) so a re-run over the same data
gives the same bytes, and JSON readers do not round money.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

from pool_catalog.models import BusinessUnit
from pool_catalog.pricing import round_money

from ..collect import usage
from ..collect.findings import findings_for, sort_findings
from ..period import iso_utc
from .idle import REASONS
from .rating import UNALLOCATED
from .result import Chargeback

UNALLOCATED_NAME = "Unallocated (namespaces no business unit owns)"
SHARE = Decimal("0.0001")


def invoice_number(chargeback: Chargeback, unit_id: str) -> str:
    """Deterministic invoice number: RP-<year>-<month>-<unit id>."""
    return f"RP-{chargeback.period.year:04d}-{chargeback.period.month:02d}-{unit_id}"


def text(value: Decimal) -> str:
    """A Decimal as fixed-point text, without exponent ('0E-9' → '0.000000000')."""
    return format(value, "f")


def ratio(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(SHARE, rounding=ROUND_HALF_EVEN) if whole else None


def _ratio_text(part: Decimal, whole: Decimal) -> str | None:
    value = ratio(part, whole)
    return None if value is None else text(value)


def idle_totals(idle: pd.DataFrame, currency: str) -> tuple[Decimal, Decimal]:
    """Idle cost and monthly savings, counting each allocation once: where both its quota and its
    requests (or the claims of its volumes, summed) are flagged, the larger figure stands for it."""
    idle_cost = savings = Decimal(0)
    if not idle.empty:
        allocation = ["cluster", "namespace", "resource", "tier"]
        per_basis = idle.groupby([*allocation, "basis"], sort=True)[["idle_cost", "monthly_savings"]].sum()
        per_allocation = per_basis.groupby(level=allocation, sort=True).agg(
            idle_cost=("idle_cost", "max"), monthly_savings=("monthly_savings", "max")
        )
        idle_cost = sum(per_allocation["idle_cost"], Decimal(0))
        savings = sum(per_allocation["monthly_savings"], Decimal(0))
    return round_money(idle_cost, currency), round_money(savings, currency)


def line_text(row: dict) -> dict[str, Any]:
    """A rated line (rating.LINE_SCHEMA record) as the text fields an invoice (and a ledger line) shows."""
    return {
        "resource": row["resource"],
        "tier": row["tier"],
        "rate_effective_from": iso_utc(row["rate_effective_from"]),
        "charge_period_start": iso_utc(row["charge_period_start"]),
        "charge_period_end": iso_utc(row["charge_period_end"]),
        "usage_quantity": text(row["usage_quantity"]),
        "usage_unit": row["usage_unit"],
        "billed_quantity": text(row["billed_quantity"]),
        "unit": row["unit"],
        "unit_price": text(row["unit_price"]),
        "amount": text(row["amount"]),
    }


def _coverage(chargeback: Chargeback) -> dict[tuple[str, str], dict[str, Any]]:
    """(cluster, namespace) → coverage entry of the invoice; namespaces without samples are left out.

    hours_seen: hours in which Prometheus had the namespace (hours before it was created are not
    gaps); hours_covered: how much of those hours scrapes covered; share = covered / seen. Complete
    means every hour seen was fully scraped; a catalog namespace never seen is never complete."""
    hours = chargeback.period.hours
    result = {}
    for row in chargeback.coverage.to_dict("records"):
        covered = Decimal(repr(float(row["hours_covered"]))).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        seen = int(row["hours_seen"])
        result[(row["cluster"], row["namespace"])] = {
            "hours_in_period": hours,
            "hours_seen": seen,
            "hours_covered": text(covered),
            "share": text((covered / seen).quantize(SHARE, rounding=ROUND_HALF_EVEN)),
            "complete": covered >= seen,
        }
    return result


def _no_coverage(hours: int) -> dict[str, Any]:
    return {"hours_in_period": hours, "hours_seen": 0, "hours_covered": "0.00", "share": "0.0000", "complete": False}


def _idle_rows(idle: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "cluster": row["cluster"],
            "namespace": row["namespace"],
            "resource": row["resource"],
            "tier": row["tier"],
            "pvc": row["pvc"],
            "basis": row["basis"],
            "unit": row["unit"],
            "allocated": text(row["allocated"]),
            "used_avg": text(row["used_avg"]),
            "used_p95": text(row["used_p95"]),
            "utilization": text(row["utilization"]),
            "idle_cost": text(row["idle_cost"]),
            "recommended_allocation": text(row["recommended_allocation"]),
            "monthly_savings": text(row["monthly_savings"]),
            "reason": row["reason"],
            "reason_text": REASONS[row["reason"]],
        }
        for row in idle.to_dict("records")
    ]


def _namespaces(chargeback: Chargeback, unit_id: str, own: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
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
        noted = {"estimates": estimates[(cluster, namespace)]} if (cluster, namespace) in estimates else {}
        result.append(
            {
                "cluster": cluster,
                "namespace": namespace,
                "shared_split": split,
                "share": text(ns_lines[0]["share"]) if split else None,
                "subtotal": text(round_money(sum((row["amount"] for row in ns_lines), Decimal(0)), currency)),
                "coverage": coverage.get((cluster, namespace)) or _no_coverage(chargeback.period.hours),
                "lines": [line_text(row) for row in ns_lines],
                **noted,
            }
        )
    return result


ESTIMATE_TEXT = {
    usage.NOT_MEASURED: "not measured per pod (hostNetwork pods send as the node); not billed",
    usage.CARRIED: "claim not mounted: use carried forward from its last observation, at most its request",
    usage.NEVER_OBSERVED: "claim never mounted in the period: no kubelet reported it; its use counts as 0",
    usage.NODE_GAP: "a node running pods of this namespace was not (fully) scraped: use in those hours is incomplete",
    usage.NAN_SAMPLES: "samples were NaN: those hours are left unknown and not billed",
}
"""What each estimate kind (usage.ESTIMATE_SCHEMA) means for the reader of an invoice."""


def _estimates(chargeback: Chargeback) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """(cluster, namespace) → the figures of its invoice section that are estimates or gaps."""
    result: dict[tuple[str, str], list[dict[str, Any]]] = {}
    frame = chargeback.estimates.sort_values(["cluster", "namespace", "resource", "tier", "kind", "detail"])
    for row in frame.to_dict("records"):
        result.setdefault((row["cluster"], row["namespace"]), []).append(
            {
                "resource": row["resource"],
                "tier": row["tier"],
                "kind": row["kind"],
                "hours": int(row["hours"]),
                "detail": row["detail"],
                "text": ESTIMATE_TEXT[row["kind"]],
            }
        )
    return result


def _by_resource(lines: pd.DataFrame) -> list[dict[str, str]]:
    totals = lines.groupby(["resource", "tier"], sort=True)["amount"].agg(lambda s: sum(s, Decimal(0)))
    return [{"resource": r, "tier": t, "amount": text(amount)} for (r, t), amount in totals.items()]


def build_invoice(chargeback: Chargeback, unit: BusinessUnit | None) -> dict[str, Any]:
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
    total = round_money(sum(lines["amount"], Decimal(0)), chargeback.currency)
    idle = chargeback.idle[chargeback.idle["business_unit"] == unit_id]
    idle_cost, savings = idle_totals(idle, chargeback.currency)
    namespaces = _namespaces(chargeback, unit_id, own)
    budget = unit.budget.monthly if unit else None
    versions = sorted({iso_utc(v) for v in lines["rate_effective_from"]})
    document = {
        "invoice_number": invoice_number(chargeback, unit_id),
        "period": period.label,
        "period_start": iso_utc(period.start),
        "period_end": iso_utc(period.end),
        "issuer": chargeback.catalog.rates.issuer.model_dump(),
        "business_unit": {
            "id": unit_id,
            "display_name": unit.display_name if unit else UNALLOCATED_NAME,
            "cost_center": unit.cost_center if unit else "",
        },
        "currency": chargeback.currency,
        "billing_mode": chargeback.billing_mode.value,
        "rate_versions": versions,
        "total": text(total),
        "by_resource": _by_resource(lines),
        "budget": None
        if budget is None
        else {
            "monthly": text(round_money(budget, chargeback.currency)),
            "used": _ratio_text(total, budget),
            "alert_at": text(Decimal(str(unit.budget.alert_at))),
        },
        "coverage": {
            "hours_in_period": period.hours,
            "complete": all(ns["coverage"]["complete"] for ns in namespaces),
            "incomplete_namespaces": [ns["namespace"] for ns in namespaces if not ns["coverage"]["complete"]],
        },
        "namespaces": namespaces,
        "idle": {"idle_cost": text(idle_cost), "monthly_savings": text(savings), "allocations": _idle_rows(idle)},
        **_north_star(chargeback, unit, total),
    }
    pairs = [(ns["cluster"], ns["namespace"]) for ns in namespaces]
    findings = findings_for(chargeback.findings, pairs)
    if findings:  # only then: a run without findings gives the same bytes as before findings existed
        document["data_findings"] = [f.as_dict() for f in findings]
    return document


def _north_star(chargeback: Chargeback, unit: BusinessUnit | None, total: Decimal) -> dict[str, Any]:
    """{"north_star": …} for a unit whose north-star metric was measured this run, else nothing."""
    from .north_star import invoice_entry

    measured = chargeback.north_star or {}
    if unit is None or unit.north_star is None or unit.id not in measured:
        return {}
    return {"north_star": invoice_entry(unit, measured[unit.id], total)}


def build_invoices(chargeback: Chargeback) -> list[dict[str, Any]]:
    """An invoice per catalog unit (even without usage), plus the unallocated statement if anything is."""
    invoices = [build_invoice(chargeback, unit) for unit in sorted(chargeback.catalog.units, key=lambda u: u.id)]
    if (chargeback.usage["business_unit"] == UNALLOCATED).any():
        invoices.append(build_invoice(chargeback, None))
    return invoices


def finance_summary(chargeback: Chargeback, invoices: list[dict[str, Any]]) -> dict[str, Any]:
    """All units side by side: budget vs actual, share of the pool, idle money; unallocated shown."""
    currency = chargeback.currency
    pool_total = round_money(sum((Decimal(inv["total"]) for inv in invoices), Decimal(0)), currency)
    rows = []
    for invoice in invoices:
        actual = Decimal(invoice["total"])
        budget = invoice["budget"]
        used = Decimal(budget["used"]) if budget and budget["used"] is not None else None
        rows.append(
            {
                "id": invoice["business_unit"]["id"],
                "display_name": invoice["business_unit"]["display_name"],
                "cost_center": invoice["business_unit"]["cost_center"],
                "invoice_number": invoice["invoice_number"],
                "budget": budget["monthly"] if budget else None,
                "actual": invoice["total"],
                "budget_used": budget["used"] if budget else None,
                "over_budget": used is not None and used > 1,
                "at_alert": used is not None and used >= Decimal(budget["alert_at"]),
                "share_of_pool": _ratio_text(actual, pool_total),
                "idle_cost": invoice["idle"]["idle_cost"],
                "monthly_savings": invoice["idle"]["monthly_savings"],
                "coverage_complete": invoice["coverage"]["complete"],
                "north_star": invoice.get("north_star"),
            }
        )
    budgets = sum((Decimal(r["budget"]) for r in rows if r["budget"] is not None), Decimal(0))
    summary = {
        "period": chargeback.period.label,
        "period_start": iso_utc(chargeback.period.start),
        "period_end": iso_utc(chargeback.period.end),
        "issuer": chargeback.catalog.rates.issuer.model_dump(),
        "currency": chargeback.currency,
        "billing_mode": chargeback.billing_mode.value,
        "units": rows,
        "shared_namespaces": _shared(chargeback),
        "total": {
            "actual": text(pool_total),
            "budget": text(budgets),
            "budget_used": _ratio_text(pool_total, budgets),
            "idle_cost": text(round_money(sum((Decimal(r["idle_cost"]) for r in rows), Decimal(0)), currency)),
            "monthly_savings": text(
                round_money(sum((Decimal(r["monthly_savings"]) for r in rows), Decimal(0)), currency)
            ),
        },
    }
    findings = [f for f in sort_findings(chargeback.findings) if f.on_invoice]
    if findings:
        summary["data_findings"] = [f.as_dict() for f in findings]
    return summary


def _shared(chargeback: Chargeback) -> list[dict[str, Any]]:
    """How each shared namespace's cost was split."""
    lines = chargeback.lines[chargeback.lines["shared_split"] != ""]
    result = []
    for (cluster, namespace, split), group in lines.groupby(["cluster", "namespace", "shared_split"], sort=True):
        units = group.groupby("business_unit", sort=True)["amount"].agg(lambda s: sum(s, Decimal(0)))
        result.append(
            {
                "cluster": cluster,
                "namespace": namespace,
                "split": split,
                "amount": text(sum(group["amount"], Decimal(0))),
                "units": [{"id": unit_id, "amount": text(amount)} for unit_id, amount in units.items()],
            }
        )
    return result
