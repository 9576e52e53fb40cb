"""Month over month: the previous period's invoice totals, read back from its invoices/*.json.

The invoice JSON is the stable contract of a run, so an earlier run's directory is all this needs; the
invoices are those its manifest lists (`report_set`), read back with the model they were written from
(`rate.documents.Invoice`): a file that does not validate is refused naming the file and the field.
By default the previous period's directory is the sibling named after it when the output directory
is named after the period (out/2026-10 → out/2026-09); a missing default means no comparison.
A directory given explicitly (`--previous`) must hold invoices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import HistoryError
from ..period import Period
from ..rate.documents import Invoice
from ..rate.invoices import ratio, text
from .report_set import manifest_files


@dataclass(frozen=True)
class PreviousPeriod:
    """Invoice totals of an earlier period."""

    period: str
    directory: Path | None
    """Where the totals were read (None: from the ledger of closed months)."""
    currency: str
    totals: dict[str, Decimal]
    """Business unit id → invoice total."""
    names: dict[str, str]
    """Business unit id → display name (for units that have no invoice this period)."""
    north_star: dict[str, Decimal] = field(default_factory=dict)
    """Business unit id → its north-star volume that period (units whose invoice has one)."""


def default_previous_dir(out: Path, period: Period) -> Path | None:
    """out/<period> → out/<previous period>; None when the output directory is not named after the period."""
    return out.parent / period.previous.label if out.name == period.label else None


def read_previous(directory: Path, period: Period, currency: str, *, explicit: bool) -> PreviousPeriod | None:
    """The totals of the invoices in `directory`/invoices, or None when the default directory has none.

    Raises HistoryError for an explicit directory without invoices, unreadable JSON, a mix of periods,
    the current period itself, or another currency."""
    invoices_dir = directory / "invoices"
    published = manifest_files(directory)
    if published is not None:  # follow the run's manifest: other JSON people put there is not an invoice
        files = [directory / name for name in published if name.startswith("invoices/") and name.endswith(".json")]
    else:  # reports written before report sets had manifests
        files = sorted(invoices_dir.glob("*.json")) if invoices_dir.is_dir() else []
    if not files:
        if explicit:
            raise HistoryError(
                f"--previous {directory}: no invoices/*.json there; give the output directory of an earlier "
                "`chargeback invoice` run"
            )
        return None
    documents = [read_invoice(path) for path in files]
    periods = sorted({doc.period for doc in documents})
    if len(periods) > 1:
        raise HistoryError(
            f"{invoices_dir} mixes invoices of periods {', '.join(periods)}: keep one period per directory"
        )
    if periods[0] >= period.label:
        raise HistoryError(
            f"{invoices_dir} holds invoices of {periods[0]}, not of a period before {period.label}: "
            "pass --previous with an earlier period's output directory"
        )
    currencies = sorted({doc.currency for doc in documents})
    if currencies != [currency]:
        raise HistoryError(
            f"{invoices_dir} is in {', '.join(currencies)} but this period is billed in {currency}: "
            "totals in different currencies cannot be compared; pass --previous with a run in the same currency"
        )
    return PreviousPeriod(
        period=periods[0],
        directory=directory,
        currency=currency,
        totals={doc.business_unit.id: doc.total for doc in documents},
        names={doc.business_unit.id: doc.business_unit.display_name for doc in documents},
        north_star={
            doc.business_unit.id: doc.north_star.volume
            for doc in documents
            if doc.north_star is not None and doc.north_star.volume is not None
        },
    )


def read_invoice(path: Path) -> Invoice:
    """An invoice JSON written by `chargeback invoice`, validated by the model it was written from.

    Raises HistoryError naming the file and the first fields that are wrong, with how to fix it."""
    try:
        content = path.read_bytes()
    except OSError as e:
        raise HistoryError(f"cannot read previous invoice {path}: {e.strerror}") from e
    try:
        return Invoice.model_validate_json(content)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        if errors[0]["type"] == "json_invalid":
            raise HistoryError(
                f"previous invoice {path} is not an invoice JSON ({errors[0]['msg']}); remove it or rerun that period"
            ) from None
        raise HistoryError(
            f"previous invoice {path} is not an invoice JSON of `chargeback invoice`: {_problems(errors)}; "
            "remove it or rerun that period"
        ) from None


def _problems(errors: list[Any], shown: int = 3) -> str:
    """The validation errors as "lacks field 'a', 'b'; field 'c': message", a few of each."""

    def where(error: Any) -> str:
        return "'" + (".".join(str(part) for part in error["loc"]) or "(document)") + "'"

    missing = [where(e) for e in errors if e["type"] == "missing"]
    wrong = [f"field {where(e)}: {e['msg']}" for e in errors if e["type"] != "missing"]
    parts = []
    if missing:
        more = f" and {len(missing) - shown} more" if len(missing) > shown else ""
        parts.append(f"lacks field {', '.join(missing[:shown])}{more}")
    parts.extend(wrong[:shown])
    if len(wrong) > shown:
        parts.append(f"{len(wrong) - shown} more wrong fields")
    return "; ".join(parts)


def change(previous: Decimal | None, current: Decimal) -> dict[str, str | None]:
    """Previous and current total, the difference and its share of the previous total (None if that is 0)."""
    before = previous if previous is not None else Decimal(0)
    difference = current - before
    share = ratio(difference, before)
    return {
        "previous": None if previous is None else text(previous),
        "current": text(current),
        "change": text(difference),
        "change_share": None if share is None else text(share),
    }


def _north_star_change(previous: PreviousPeriod, invoice: Invoice) -> dict[str, Any]:
    """{"north_star": change} for an invoice with a north-star figure and a previous total, else nothing."""
    from ..rate.north_star import change as north_star_change

    unit_id, north_star = invoice.business_unit.id, invoice.north_star
    if north_star is None or unit_id not in previous.totals:
        return {}
    figures = north_star_change(
        previous.totals[unit_id], previous.north_star.get(unit_id), invoice.total, north_star.volume
    )
    return {"north_star": {**north_star.model_dump(mode="json"), **figures}}


def month_over_month(previous: PreviousPeriod, invoices: Sequence[Invoice]) -> dict[str, Any]:
    """Per unit (this period's units, then units only the previous period had) and for the pool."""
    rows = []
    seen = set()
    for invoice in invoices:
        unit_id = invoice.business_unit.id
        seen.add(unit_id)
        rows.append(
            {
                "id": unit_id,
                "display_name": invoice.business_unit.display_name,
                **change(previous.totals.get(unit_id), invoice.total),
                **_north_star_change(previous, invoice),
            }
        )
    for unit_id in sorted(set(previous.totals) - seen):
        rows.append(
            {"id": unit_id, "display_name": previous.names[unit_id], **change(previous.totals[unit_id], Decimal(0))}
        )
    return {
        "previous_period": previous.period,
        "units": rows,
        "total": change(sum(previous.totals.values(), Decimal(0)), sum((i.total for i in invoices), Decimal(0))),
    }
