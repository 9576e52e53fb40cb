"""The FOCUS 1.4 Billing Period dataset a close writes beside focus.csv: checked against the official 1.4 model,
with the status the ledger knows (the closed month Closed, the later month that holds only its correction
notes Open), and written again byte for byte from the ledger by `chargeback ledger export --format files`.
One ledger closed once and corrected once against the closed-form scenario (`priced_prometheus`), shared by
the module's tests.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.ledger.store import Ledger
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.focus_model import billing_period_violations
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
    second = runner.invoke(app, [*args, "--correct"])
    assert second.exit_code == 0, second.output
    return root


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


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
    for name in (f"{PERIOD}/focus-billing-period.csv", f"{PERIOD}/corrections/C1/focus-billing-period.csv"):
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
    content = (closed / "reports" / PERIOD / "focus-billing-period.csv").read_text(encoding="utf-8")
    header, first, *rest = content.splitlines()
    row = dict(zip(header.split(","), next(csv.reader([first])), strict=True)) | {column: value}
    planted = "\n".join([header, ",".join(row.values()), *rest]) + "\n"
    assert billing_period_violations(planted) == [expected]
