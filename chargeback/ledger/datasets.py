"""The FOCUS 1.4 Invoice Detail and Billing Period datasets, derived from what the ledger stores (never from a
recomputation), so `chargeback ledger export --format files` writes the files a close wrote, byte for byte.

Invoice Detail: one row per issued document (each unit's invoice, each credit or debit note) with its number,
total and currency as stored; a note's ReferenceInvoiceId is the invoice it corrects, an invoice's is its own
number (the model does not allow it empty). PaymentTerms is rates.yaml invoicing.payment_terms as the ledger
recorded it at the close (fingerprint "invoicing"); PaymentDueDate, InvoiceDetailGrain and the Conditional
payment-currency and purchase-order columns are left empty or out: the ledger does not know them. An issue
recorded before the ledger kept payment terms gets no Invoice Detail file (its close wrote none).

Billing Period: one row per billing period the ledger knows when an issue is appended: the billing periods of
that issue and of every issue before it. A billing period is Closed once a month was issued in it (an original
close; later corrections keep it closed) and Open while it only holds correction notes of earlier months. Its
bounds and the issuer are read from the issued FOCUS rows billed in it, so no catalog is needed. A billing
period whose issues hold no FOCUS row with its bounds (a correction run that issued nothing) has no bounds in
the ledger and is left out.
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


INVOICE_DETAIL_COLUMNS: tuple[str, ...] = (
    "InvoiceDetailId",
    "InvoiceId",
    "ReferenceInvoiceId",
    "InvoiceIssueStatus",
    "InvoiceIssueDate",
    "InvoiceIssuerName",
    "BillingAccountId",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargeCategory",
    "BilledCost",
    "BillingCurrency",
    "InvoiceDetailDescription",
    "InvoiceDetailGrain",
    "InvoiceDetailCreated",
    "InvoiceDetailLastUpdated",
    "PaymentDueDate",
    "PaymentTerms",
)
DESCRIPTIONS = {"invoice": "Invoice", "credit_note": "Credit note", "debit_note": "Debit note"}


def dataset_name(issue: Issue, dataset: str) -> str:
    """Where an issue's `dataset` file (e.g. billing-period) goes, beside its focus.csv."""
    return focus_name(issue.kind, issue.sequence).replace("focus.csv", f"focus-{dataset}.csv")


def billing_period_name(issue: Issue) -> str:
    return dataset_name(issue, "billing-period")


def invoice_detail_rows(issue: Issue) -> list[dict[str, str]]:
    """One row per document of `issue`; BilledCost is the document's stored total, to the cent."""
    terms = (issue.fingerprint.get("invoicing") or {}).get("payment_terms")
    if not terms:
        raise LedgerError(f"internal: {issue.period} #{issue.sequence} has no payment terms in the ledger")
    rows = [row for row in _focus_rows(issue) if _has_bounds(row)]
    if issue.documents and not rows:
        raise LedgerError(
            f"{issue.period} #{issue.sequence}: its documents have no FOCUS rows with a billing period and issuer "
            "in the ledger; export it with the chargeback version that issued it"
        )
    return [
        {
            "InvoiceDetailId": document.number,
            "InvoiceId": document.number,
            "ReferenceInvoiceId": document.reference or document.number,
            "InvoiceIssueStatus": "Issued",
            "InvoiceIssueDate": issue.issued_at,
            "InvoiceIssuerName": rows[0]["InvoiceIssuerName"],
            "BillingAccountId": document.business_unit,
            "BillingPeriodStart": rows[0]["BillingPeriodStart"],
            "BillingPeriodEnd": rows[0]["BillingPeriodEnd"],
            "ChargeCategory": "Usage" if document.kind == "invoice" else "Adjustment",
            "BilledCost": document.total,
            "BillingCurrency": document.currency,
            "InvoiceDetailDescription": f"{DESCRIPTIONS.get(document.kind, document.kind)} for {issue.period}"
            + (f", correcting {document.reference}" if document.reference else ""),
            "InvoiceDetailGrain": "",
            "InvoiceDetailCreated": issue.issued_at,
            "InvoiceDetailLastUpdated": issue.issued_at,
            "PaymentDueDate": "",
            "PaymentTerms": terms,
        }
        for document in issue.documents
    ]


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
        bounds = next((row for i in issues for row in _focus_rows(i) if _has_bounds(row)), None)
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


def dataset_files(known: Sequence[Issue], upto: Issue) -> dict[str, str]:
    """Relative path → text of the Billing Period and (when the ledger has its payment terms) Invoice Detail
    files written beside `upto`'s focus.csv; `known`: the ledger's issues in issue order."""
    files = {billing_period_name(upto): csv_text(BILLING_PERIOD_COLUMNS, billing_period_rows(known, upto))}
    if (upto.fingerprint.get("invoicing") or {}).get("payment_terms"):
        files[dataset_name(upto, "invoice-detail")] = csv_text(INVOICE_DETAIL_COLUMNS, invoice_detail_rows(upto))
    return files


BOUNDS = ("BillingPeriodStart", "BillingPeriodEnd", "InvoiceIssuerName")


def _has_bounds(row: dict[str, str]) -> bool:
    return all(row.get(name) for name in BOUNDS)


def _focus_rows(issue: Issue) -> list[dict[str, str]]:
    content = issue.files.get(focus_name(issue.kind, issue.sequence))
    if not isinstance(content, str):
        raise LedgerError(
            f"{issue.period} #{issue.sequence} has no {focus_name(issue.kind, issue.sequence)} in the ledger"
        )
    return list(csv.DictReader(io.StringIO(content)))
