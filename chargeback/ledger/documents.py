"""Documents of the ledger made from a chargeback, what a closed month stands at, and its corrections.

A month's figures in force are its original invoices with every later correction applied in issue
order: a correction line `reversal` cancels the line of that key, a `charge` line puts a new one in
place. A changed line is corrected by reversing it and charging it anew (credit and re-bill), so a
note shows both the old and the new price and quantity, and a note's total is exactly the new
figure minus the old one, to the cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from pool_catalog.pricing import round_money

from ..outputs.focus import capability_text_lines, text_line
from ..rate.documents import Invoice
from ..rate.invoices import text
from ..rate.result import Chargeback
from .schema import LINE_FIELDS
from .store import Document, Issue

LineKey = tuple[str, str, str, str, str, str]
"""(cluster, namespace, resource, tier, rate_effective_from, shared_split): what a line bills."""

COMPARED = tuple(f for f in LINE_FIELDS if f != "entry")

NEGATED = ("usage_quantity", "billed_quantity", "amount")


def line_key(line: dict[str, str]) -> LineKey:
    return (
        line["cluster"],
        line["namespace"],
        line["resource"],
        line["tier"],
        line["rate_effective_from"],
        line["shared_split"],
    )


def chargeback_lines(chargeback: Chargeback) -> dict[str, list[dict[str, str]]]:
    """Business unit → its rated lines as ledger text lines, in the order of the reports, then its capability
    lines (charges it consumed, credits for its capabilities): together they add up to its invoice total."""
    result: dict[str, list[dict[str, str]]] = {}
    for row in chargeback.lines.to_dict("records"):
        result.setdefault(row["business_unit"], []).append(text_line(row))
    for unit, line in capability_text_lines(chargeback):
        result.setdefault(unit, []).append(line)
    return result


def invoice_documents(chargeback: Chargeback, invoices: Sequence[Invoice], contents: dict[str, str]) -> list[Document]:
    """The invoices of a close as ledger documents; `contents`: unit id → the invoice's JSON report."""
    lines = chargeback_lines(chargeback)
    return [
        Document(
            number=invoice.invoice_number,
            kind="invoice",
            business_unit=invoice.business_unit.id,
            reference=None,
            currency=invoice.currency,
            total=text(invoice.total),
            content=contents[invoice.business_unit.id],
            lines=tuple(lines.get(invoice.business_unit.id, ())),
        )
        for invoice in invoices
    ]


# ------------------------------------------------------------------ the month in force


@dataclass(frozen=True)
class UnitState:
    """A unit's figures in force for a closed month."""

    business_unit: str
    invoice: str | None
    """Number of its original invoice (None: it had none, e.g. a unit added to the catalog later)."""
    lines: dict[LineKey, dict[str, str]]
    chain: tuple[tuple[str, str, str, str], ...]
    """(number, kind, total, issued_at) of its documents in issue order."""
    currency: str

    @property
    def total(self) -> Decimal:
        return sum((Decimal(line["amount"]) for line in self.lines.values()), Decimal(0))


def month_in_force(issues: Sequence[Issue]) -> dict[str, UnitState]:
    """Unit → figures in force, from a period's issues (original first, then corrections in order)."""
    states: dict[str, dict] = {}
    for issue in sorted(issues, key=lambda i: i.sequence):
        for document in issue.documents:
            state = states.setdefault(
                document.business_unit,
                {"invoice": None, "lines": {}, "chain": [], "currency": document.currency},
            )
            if document.kind == "invoice":
                state["invoice"] = document.number
            state["chain"].append((document.number, document.kind, document.total, issue.issued_at))
            for line in document.lines:
                key = line_key(line)
                if line["entry"] == "reversal":
                    state["lines"].pop(key, None)
                else:
                    state["lines"][key] = line
    return {
        unit: UnitState(unit, s["invoice"], s["lines"], tuple(s["chain"]), s["currency"])
        for unit, s in sorted(states.items())
    }


@dataclass(frozen=True)
class Difference:
    """A line that differs between the month in force and a recomputation."""

    business_unit: str
    key: LineKey
    before: dict[str, str] | None
    after: dict[str, str] | None

    @property
    def change(self) -> Decimal:
        before = Decimal(self.before["amount"]) if self.before else Decimal(0)
        after = Decimal(self.after["amount"]) if self.after else Decimal(0)
        return after - before

    def describe(self) -> str:
        cluster, namespace, resource, tier, effective, split = self.key
        what = f"{cluster}/{namespace} {resource}{f' ({tier})' if tier else ''} at prices from {effective}"
        if split:
            what += f" ({split} share)"

        def figures(line: dict[str, str] | None) -> str:
            if line is None:
                return "none"
            return f"{line['billed_quantity']} {line['unit']} × {line['unit_price']} = {line['amount']}"

        return f"{what}: {figures(self.before)} → {figures(self.after)} ({self.change:+f})"


def differences(in_force: dict[str, UnitState], recomputed: dict[str, list[dict[str, str]]]) -> list[Difference]:
    """Every line whose figures differ, per unit and line key, sorted."""
    result = []
    for unit in sorted(set(in_force) | set(recomputed)):
        before = in_force[unit].lines if unit in in_force else {}
        after = {line_key(line): line for line in recomputed.get(unit, ())}
        for key in sorted(set(before) | set(after)):
            old, new = before.get(key), after.get(key)
            if old is None or new is None or any(old[f] != new[f] for f in COMPARED):
                result.append(Difference(unit, key, old, new))
    return result


@dataclass(frozen=True)
class BelowThreshold:
    """A unit whose month changed by less than rates.yaml `corrections.materiality`: recorded, not issued."""

    business_unit: str
    change: Decimal
    lines: int

    def as_dict(self) -> dict[str, str | int]:
        return {"business_unit": self.business_unit, "change": text(self.change), "lines": self.lines}


def by_materiality(
    changes: Sequence[Difference], materiality: Decimal
) -> tuple[list[Difference], list[BelowThreshold]]:
    """The changes of units whose net change is at least `materiality` in absolute value (they get a note), and
    the units below it. The test is per unit, on the note's total: its lines may move more than that."""
    per_unit: dict[str, list[Difference]] = {}
    for change in changes:
        per_unit.setdefault(change.business_unit, []).append(change)
    material: list[Difference] = []
    below = []
    for unit, mine in sorted(per_unit.items()):
        total = sum((c.change for c in mine), Decimal(0))
        if abs(total) < materiality:
            below.append(BelowThreshold(unit, total, len(mine)))
        else:
            material.extend(mine)
    return material, below


def _reversal(line: dict[str, str]) -> dict[str, str]:
    reversed_line = {**line, "entry": "reversal"}
    for name in NEGATED:
        reversed_line[name] = text(-Decimal(line[name]))
    return reversed_line


def correction_lines(changes: Sequence[Difference]) -> list[dict[str, str]]:
    """Credit the old line and charge the new one, for each change of one unit."""
    lines = []
    for change in changes:
        if change.before is not None:
            lines.append(_reversal(change.before))
        if change.after is not None:
            lines.append({**change.after, "entry": "charge"})
    return lines


def note_number(invoice: str, sequence: int) -> str:
    """Number of the correction note of sequence `sequence` to `invoice`: RP-2026-10-unit-C1."""
    return f"{invoice}-C{sequence}"


def note_total(lines: Iterable[dict[str, str]], currency: str) -> Decimal:
    return round_money(sum((Decimal(line["amount"]) for line in lines), Decimal(0)), currency)
