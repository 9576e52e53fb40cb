"""Month over month: the previous period's invoice totals, read back from its invoices/*.json.

The invoice JSON is the stable contract of a run, so an earlier run's directory is all this needs; the
invoices are those its manifest lists (`report_set`).
By default the previous period's directory is the sibling named after it when the output directory
is named after the period (out/2026-10 → out/2026-09); a missing default means no comparison.
A directory given explicitly (`--previous`) must hold invoices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ..errors import HistoryError
from ..period import Period
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
    documents = [_read(path) for path in files]
    periods = sorted({doc["period"] for doc in documents})
    if len(periods) > 1:
        raise HistoryError(
            f"{invoices_dir} mixes invoices of periods {', '.join(periods)}: keep one period per directory"
        )
    if periods[0] >= period.label:
        raise HistoryError(
            f"{invoices_dir} holds invoices of {periods[0]}, not of a period before {period.label}: "
            "pass --previous with an earlier period's output directory"
        )
    currencies = sorted({doc["currency"] for doc in documents})
    if currencies != [currency]:
        raise HistoryError(
            f"{invoices_dir} is in {', '.join(currencies)} but this period is billed in {currency}: "
            "totals in different currencies cannot be compared; pass --previous with a run in the same currency"
        )
    return PreviousPeriod(
        period=periods[0],
        directory=directory,
        currency=currency,
        totals={doc["business_unit"]["id"]: doc["total"] for doc in documents},
        names={doc["business_unit"]["id"]: doc["business_unit"]["display_name"] for doc in documents},
        north_star={
            doc["business_unit"]["id"]: doc["north_star_volume"]
            for doc in documents
            if doc.get("north_star_volume") is not None
        },
    )


def _read(path: Path) -> dict[str, Any]:
    """The fields of an invoice JSON the comparison needs, checked."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        unit = document["business_unit"]
        north_star = document.get("north_star") or {}
        volume = north_star.get("volume")
        return {
            "period": str(document["period"]),
            "currency": str(document["currency"]),
            "total": Decimal(str(document["total"])),
            "business_unit": {"id": str(unit["id"]), "display_name": str(unit["display_name"])},
            "north_star_volume": None if volume is None else Decimal(str(volume)),
        }
    except OSError as e:
        raise HistoryError(f"cannot read previous invoice {path}: {e.strerror}") from e
    except (ValueError, InvalidOperation) as e:
        raise HistoryError(
            f"previous invoice {path} is not an invoice JSON ({e}); remove it or rerun that period"
        ) from e
    except (KeyError, TypeError) as e:
        raise HistoryError(
            f"previous invoice {path} lacks field {e}: it is not an invoice JSON of `chargeback invoice`; "
            "remove it or rerun that period"
        ) from e


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


def _north_star_change(previous: PreviousPeriod, invoice: dict[str, Any]) -> dict[str, Any]:
    """{"north_star": change} for an invoice with a north-star figure and a previous total, else nothing."""
    from ..rate.north_star import change as north_star_change

    unit_id, north_star = invoice["business_unit"]["id"], invoice.get("north_star")
    if not north_star or unit_id not in previous.totals:
        return {}
    volume = None if north_star["volume"] is None else Decimal(north_star["volume"])
    figures = north_star_change(
        previous.totals[unit_id], previous.north_star.get(unit_id), Decimal(invoice["total"]), volume
    )
    return {"north_star": {**north_star, **figures}}


def month_over_month(previous: PreviousPeriod, invoices: list[dict[str, Any]]) -> dict[str, Any]:
    """Per unit (this period's units, then units only the previous period had) and for the pool."""
    rows = []
    seen = set()
    for invoice in invoices:
        unit_id = invoice["business_unit"]["id"]
        seen.add(unit_id)
        rows.append(
            {
                "id": unit_id,
                "display_name": invoice["business_unit"]["display_name"],
                **change(previous.totals.get(unit_id), Decimal(invoice["total"])),
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
        "total": change(
            sum(previous.totals.values(), Decimal(0)), sum((Decimal(i["total"]) for i in invoices), Decimal(0))
        ),
    }
