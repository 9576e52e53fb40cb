"""The FOCUS 1.4 Billing Period and Invoice Detail datasets a close writes beside focus.csv: checked against the
official 1.4 model, Billing Period with the status the ledger knows (the closed month Closed, the later month
that holds only its correction notes Open), Invoice Detail adding up to the issued invoices and notes to the
cent, both written again byte for byte from the ledger by `chargeback ledger export --format files`.
One ledger closed once and corrected once against the closed-form scenario (`priced_prometheus`), shared by
the module's tests.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.ledger.store import Ledger
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.focus_model import billing_period_violations, invoice_detail_violations
from tests.support.prometheus import ScenarioServer

pytestmark = pytest.mark.prometheus

runner = CliRunner(env={"COLUMNS": "250"})
PERIOD = "2026-10"


@pytest.fixture(scope="module")
def closed(priced_prometheus: ScenarioServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with reports/2026-10 (closed, then corrected: CPU 0.24 → 0.221) and ledger.db."""
    root = tmp_path_factory.mktemp("billing-period")
    catalog = copy_example(root)
    args = ["close", "--period", PERIOD, "--prometheus", priced_prometheus.url, "--catalog", str(catalog)]
    args += ["--out", str(root / "reports" / PERIOD), "--ledger", str(root / "ledger.db"), "--allow-dirty-catalog"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["versions"][0]["cpu"].__setitem__("price", "0.221"))
    edit_yaml(catalog / "rates.yaml", lambda doc: doc.__setitem__("invoicing", {"payment_terms": "Net 45"}))
    second = runner.invoke(app, [*args, "--correct"])
    assert second.exit_code == 0, second.output
    return root


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def planted(path: Path, column: str, value: str) -> str:
    """The file's text with `column` of its first row set to `value`."""
    table = rows(path)
    table[0][column] = value
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def test_billing_periods_validate_and_carry_the_status_the_ledger_knows(closed: Path) -> None:
    reports = closed / "reports" / PERIOD
    with Ledger(str(closed / "ledger.db")) as book:
        original, correction = book.issues()
    assert correction.billing_period > PERIOD  # billed in the month it was issued in
    month = reports / "focus-billing-period.csv"
    assert billing_period_violations(month.read_text(encoding="utf-8")) == []
    october = {key: value for key, value in rows(month)[0].items() if key != "InvoiceIssuerName"}
    assert rows(month) == [{**october, "InvoiceIssuerName": rows(reports / "focus.csv")[0]["InvoiceIssuerName"]}]
    # Bounds: the billing time zone's month (the example catalog bills in UTC) as UTC instants.
    assert october == {
        "BillingPeriodStart": "2026-10-01T00:00:00Z",
        "BillingPeriodEnd": "2026-11-01T00:00:00Z",
        "BillingPeriodStatus": "Closed",
        "BillingPeriodCreated": original.issued_at,
        "BillingPeriodLastUpdated": original.issued_at,
    }
    notes = reports / f"corrections/C{correction.sequence}/focus-billing-period.csv"
    assert billing_period_violations(notes.read_text(encoding="utf-8")) == []
    known = rows(notes)
    assert [(r["BillingPeriodStart"][:7], r["BillingPeriodStatus"]) for r in known] == [
        (PERIOD, "Closed"),  # the closed month: its correction leaves it closed
        (correction.billing_period, "Open"),  # the month the note is billed in: nothing closed in it yet
    ]
    assert known[0] | {"BillingPeriodLastUpdated": original.issued_at} == rows(month)[0]
    assert known[1]["BillingPeriodCreated"] == correction.issued_at
    focus = rows(reports / f"corrections/C{correction.sequence}/focus.csv")
    assert known[1]["BillingPeriodStart"] == focus[0]["BillingPeriodStart"]


def test_the_ledger_writes_the_billing_period_files_again_byte_for_byte(closed: Path, tmp_path: Path) -> None:
    out = tmp_path / "restored"
    args = ["ledger", "export", "--ledger", str(closed / "ledger.db"), "--format", "files", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    names = [f"{folder}/focus-{dataset}.csv" for folder in (PERIOD, f"{PERIOD}/corrections/C1")
             for dataset in ("billing-period", "invoice-detail")]  # fmt: skip
    for name in names:
        assert (out / name).read_bytes() == (closed / "reports" / name).read_bytes(), name


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("BillingPeriodStatus", "Issued", "row 1 BillingPeriodStatus: not an allowed value ('Issued')"),
        ("BillingPeriodEnd", "2026-10-01T00:00:00Z", "row 1 BillingPeriodStart: MUST be before BillingPeriodEnd"),
        ("InvoiceIssuerName", "", "row 1 InvoiceIssuerName: MUST NOT be null ('')"),
    ],
)
def test_a_planted_violation_fails_the_billing_period_check(
    closed: Path, column: str, value: str, expected: str
) -> None:
    content = planted(closed / "reports" / PERIOD / "focus-billing-period.csv", column, value)
    assert billing_period_violations(content) == [expected]


def test_invoice_detail_validates_and_adds_up_to_the_issued_documents(closed: Path) -> None:
    reports = closed / "reports" / PERIOD
    with Ledger(str(closed / "ledger.db")) as book:
        original, correction = book.issues()
    for issue, folder, terms in ((original, reports, "Net 30"), (correction, reports / "corrections/C1", "Net 45")):
        content = (folder / "focus-invoice-detail.csv").read_text(encoding="utf-8")
        assert invoice_detail_violations(content) == []
        details = rows(folder / "focus-invoice-detail.csv")
        issued = {d.number: Decimal(d.total) for d in issue.documents}
        assert {r["InvoiceId"]: Decimal(r["BilledCost"]) for r in details} == issued  # each document, to the cent
        assert sum(Decimal(r["BilledCost"]) for r in details) == sum(issued.values())
        assert {r["PaymentTerms"] for r in details} == {terms}  # rates.yaml's setting at each close
    notes = rows(reports / "corrections/C1/focus-invoice-detail.csv")
    assert notes and all(r["ChargeCategory"] == "Adjustment" for r in notes)
    invoices = {d.business_unit: d.number for d in original.documents}
    assert {r["ReferenceInvoiceId"] for r in notes} == {invoices[r["BillingAccountId"]] for r in notes}
    assert {r["BillingPeriodStart"][:7] for r in notes} == {correction.billing_period}


def test_a_planted_violation_fails_the_invoice_detail_check(closed: Path) -> None:
    path = closed / "reports" / PERIOD / "focus-invoice-detail.csv"
    paid = planted(path, "InvoiceIssueStatus", "Paid")
    assert invoice_detail_violations(paid) == ["row 1 InvoiceIssueStatus: not an allowed value ('Paid')"]
    assert invoice_detail_violations(planted(path, "PaymentTerms", "")) == ["row 1 PaymentTerms: MUST NOT be null ('')"]
