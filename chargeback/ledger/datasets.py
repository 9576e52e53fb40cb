"""The FOCUS 1.4 Billing Period dataset, derived from what the ledger stores (never from a recomputation).

One row per billing period the ledger knows when an issue is appended: the billing periods of that issue and
of every issue before it. A billing period is Closed once a month was issued in it (an original close; later
corrections keep it closed) and Open while it only holds correction notes of earlier months. Its bounds and the
issuer are read from the issued FOCUS rows billed in it, so `chargeback ledger export --format files` writes
the file a close wrote, byte for byte, without the catalog. A billing period whose issues hold no FOCUS row
(a correction run that issued nothing) has no bounds in the ledger and is left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from ..errors import LedgerError
from ..outputs.csv_tables import csv_text
from .store import Issue, focus_name

BILLING_PERIOD_COLUMNS: tuple[str, ...] = (
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "BillingPeriodStatus",
    "BillingPeriodCreated",
    "BillingPeriodLastUpdated",
    "InvoiceIssuerName",
)


def billing_period_name(issue: Issue) -> str:
    """Where an issue's Billing Period file goes, beside its focus.csv."""
    return focus_name(issue.kind, issue.sequence).replace("focus.csv", "focus-billing-period.csv")


def billing_period_rows(known: Sequence[Issue], upto: Issue) -> list[dict[str, str]]:
    """The Billing Period rows as the ledger knew them when `upto` was appended; `known`: the ledger's issues
    in issue order (it must hold `upto`)."""
    keys = [(i.period, i.sequence) for i in known]
    if (upto.period, upto.sequence) not in keys:
        raise LedgerError(f"internal: {upto.period} #{upto.sequence} is not among the ledger's issues")
    before = known[: keys.index((upto.period, upto.sequence)) + 1]
    rows = []
    for billing in sorted({i.billing_period for i in before}):
        issues = [i for i in before if i.billing_period == billing]
        bounds = next((row for i in issues for row in _focus_rows(i)), None)
        if bounds is None:
            continue
        rows.append(
            {
                "BillingPeriodStart": bounds["BillingPeriodStart"],
                "BillingPeriodEnd": bounds["BillingPeriodEnd"],
                "BillingPeriodStatus": "Closed" if any(i.kind == "original" for i in issues) else "Open",
                "BillingPeriodCreated": min(i.issued_at for i in issues),
                "BillingPeriodLastUpdated": max(i.issued_at for i in issues),
                "InvoiceIssuerName": bounds["InvoiceIssuerName"],
            }
        )
    return rows


def billing_period_file(known: Sequence[Issue], upto: Issue) -> dict[str, str]:
    """Relative path → text of the Billing Period file written beside `upto`'s focus.csv."""
    return {billing_period_name(upto): csv_text(BILLING_PERIOD_COLUMNS, billing_period_rows(known, upto))}


def _focus_rows(issue: Issue) -> list[dict[str, str]]:
    content = issue.files.get(focus_name(issue.kind, issue.sequence))
    if not isinstance(content, str):
        raise LedgerError(
            f"{issue.period} #{issue.sequence} has no {focus_name(issue.kind, issue.sequence)} in the ledger"
        )
    return list(csv.DictReader(io.StringIO(content)))
