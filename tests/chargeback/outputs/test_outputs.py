"""Reports of a period: golden files, the output contract, FOCUS 1.3, escaping, byte-identical re-runs,
and atomic writing.

Refresh the golden files after an intended change of the reports with
    UPDATE_GOLDEN=1 .venv/bin/pytest tests/chargeback/outputs/test_outputs.py
and review the diff of tests/golden/ like any other change.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.errors import OutputError, RatingError
from chargeback.outputs.csv_tables import BOM, IDLE_COLUMNS, LINE_COLUMNS, USAGE_COLUMNS, csv_records
from chargeback.outputs.focus import relayout
from chargeback.outputs.reports import report_files
from chargeback.outputs.writer import write_reports
from chargeback.period import Period
from chargeback.rate.result import Chargeback, charge
from pool_catalog import Catalog, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.focus_model import violations
from tests.support.usage_frames import row, steady, usage_frame

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "chargeback-2026-10"
# FOCUS 1.2's column table plus the columns 1.3 adds (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec,
# specification/datasets/cost_and_usage/columns/: allocated*.md, contractapplied.md, hostprovidername.md,
# serviceprovidername.md); HostProviderName "MUST NOT be null" there, so it is not nullable here.
FOCUS_REFERENCE = Path(__file__).resolve().parents[2] / "data" / "focus-1.3-columns.tsv"
OCT = Period.parse("2026-10")
START = OCT.start
HOSTILE = '<script>alert("pwned")</script>'


def month_rows() -> list[dict]:
    """A month touching every feature of the reports; quantities are round so the figures can be read."""
    hours = OCT.hours
    rows = steady("di-api", "cpu", 2.0, START, hours, requested=4.0, allocated=24.0)
    rows += steady("di-api", "memory", 8.0, START, hours, requested=16.0, allocated=96.0)
    rows += steady("di-api", "egress", 0.5, START, hours)
    rows += steady("di-api", "pods", 3.0, START, hours)
    rows += steady("di-batch", "gpu", 1.0, START, 100, requested=1.0, allocated=2.0)
    rows += steady("di-batch", "storage", 600.0, START, hours, tier="cold", requested=1024.0, allocated=20480.0)
    rows += steady("di-batch", "pods", 1.0, START, 100)
    rows += steady("cs-miniapp", "cpu", 6.0, START, hours, requested=6.0, allocated=32.0)
    rows += steady("cs-miniapp", "load_balancer", 1.0, START, hours, requested=1.0, allocated=2.0)
    rows += steady("cs-miniapp", "storage", 90.0, START, hours, tier="hot", requested=100.0, allocated=1024.0)
    rows += steady("cs-miniapp", "pods", 4.0, START, hours)
    rows += steady("pf-credit", "cpu", 0.0, START, hours, allocated=16.0)  # nothing runs: no pods
    rows += steady("ingress-nginx", "cpu", 1.0, START, hours)
    rows += steady("ingress-nginx", "egress", 2.0, START, hours)
    rows += steady("monitoring", "memory", 4.0, START, hours)
    rows += steady("sandbox-x", "cpu", 0.25, START, 48)
    # A scrape gap: two hours of di-api without data, one half covered.
    gap = START + dt.timedelta(hours=100)
    rows = [r for r in rows if not (r["namespace"] == "di-api" and gap <= r["hour"] < gap + dt.timedelta(hours=3))]
    rows += [
        row(gap, "di-api", "cpu", float("nan"), coverage=0.0),
        row(gap, "di-api", "memory", float("nan"), coverage=0.0),
    ]
    rows += [row(gap + dt.timedelta(hours=1), "di-api", "cpu", float("nan"), coverage=0.0)]
    rows += [row(gap + dt.timedelta(hours=2), "di-api", "cpu", 1.0, requested=2.0, allocated=24.0, coverage=0.5)]
    return rows


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def chargeback(catalog: Catalog) -> Chargeback:
    return charge(usage_frame(month_rows()), catalog, OCT)


@pytest.fixture(scope="module")
def files(chargeback: Chargeback) -> dict[str, str]:
    return report_files(chargeback)


def read_csv(content: str) -> list[dict[str, str]]:
    return csv_records(content)


def test_report_files_match_golden(files: dict[str, str]) -> None:
    if os.environ.get("UPDATE_GOLDEN"):
        for relative, content in files.items():
            target = GOLDEN / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8", newline="")
    expected = sorted(str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*") if p.is_file())
    assert sorted(files) == expected, "report file list changed; refresh with UPDATE_GOLDEN=1 if intended"
    for relative, content in files.items():
        golden = (GOLDEN / relative).read_text(encoding="utf-8")
        assert content == golden, f"{relative} differs from {GOLDEN / relative}; refresh with UPDATE_GOLDEN=1"


def test_output_file_list_and_csv_columns(files: dict[str, str]) -> None:
    assert sorted(files) == [
        "finance-summary.html",
        "focus.csv",
        "idle.csv",
        *(
            f"invoices/{unit}.{ext}"
            for unit in ("community-services", "data-insight", "edge-security", "platform", "unallocated")
            for ext in ("html", "json")
        ),
        "line_items.csv",
        "usage.csv",
    ]
    assert files["usage.csv"].splitlines()[0] == BOM + ",".join(USAGE_COLUMNS)
    assert USAGE_COLUMNS == (
        "period", "cluster", "namespace", "business_unit", "resource", "tier", "used", "requested", "allocated", "unit"
    )  # fmt: skip
    assert files["line_items.csv"].splitlines()[0] == BOM + ",".join(LINE_COLUMNS)
    assert LINE_COLUMNS == (
        "period", "business_unit", "cost_center", "cluster", "namespace", "resource", "tier", "usage_quantity",
        "billed_quantity", "unit", "unit_price", "amount", "currency", "rate_effective_from", "business_unit_name",
    )  # fmt: skip
    assert files["idle.csv"].splitlines()[0] == BOM + ",".join(IDLE_COLUMNS)
    assert IDLE_COLUMNS == (
        "business_unit", "namespace", "resource", "tier", "basis", "allocated", "used_avg", "used_peak",
        "requests_peak", "utilization", "idle_value", "capacity_held", "unit_pays", "recommended_allocation",
        "advice_basis", "reason", "pvc",
    )  # fmt: skip


def test_usage_csv_lists_every_namespace_seen(files: dict[str, str]) -> None:
    rows = read_csv(files["usage.csv"])
    owners = {(r["namespace"]): r["business_unit"] for r in rows}
    assert owners["sandbox-x"] == "unallocated"
    assert owners["ingress-nginx"] == "shared" and owners["di-api"] == "data-insight"
    sandbox = next(r for r in rows if r["namespace"] == "sandbox-x")
    assert (sandbox["used"], sandbox["requested"], sandbox["allocated"], sandbox["unit"]) == (
        "12.000000000",
        "",
        "",
        "core-hour",
    )
    di_cpu = next(r for r in rows if r["namespace"] == "di-api" and r["resource"] == "cpu")
    assert di_cpu["used"] == "1483.000000000"  # 741 full hours × 2 + the half-covered hour's 1


def test_invoice_json_totals_lines_coverage_and_idle(files: dict[str, str]) -> None:
    invoice = json.loads(files["invoices/data-insight.json"])
    assert invoice["invoice_number"] == "RP-2026-10-data-insight"
    assert invoice["business_unit"] == {"id": "data-insight", "display_name": "数据洞察事业部 (Data Insight)",
                                        "cost_center": "CC-4100"}  # fmt: skip
    assert invoice["issuer"]["name"] == "Group IT Shared Services Co., Ltd."
    assert invoice["billing_mode"] == "usage"
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    assert invoice["rate_versions"] == ["2026-01-01T00:00:00Z", "2026-10-15T00:00:00Z"]
    line_sum = sum(Decimal(line["amount"]) for ns in invoice["namespaces"] for line in ns["lines"])
    assert Decimal(invoice["total"]) == line_sum
    csv_sum = sum(
        Decimal(r["amount"]) for r in read_csv(files["line_items.csv"]) if r["business_unit"] == "data-insight"
    )
    assert csv_sum == line_sum
    di_api = next(ns for ns in invoice["namespaces"] if ns["namespace"] == "di-api")
    assert di_api["coverage"] == {"hours_in_period": 744, "hours_seen": 744, "hours_covered": "741.50",
                                  "share": "0.9966", "complete": False}  # fmt: skip
    assert invoice["coverage"]["incomplete_namespaces"] == ["di-api"]
    # di-api: cpu 1,483 core-h × 0.24 = 355.92; memory 741 h × 8 GiB × 0.032 = 189.70 (189.696);
    # egress 741 × 0.5 GiB × 0.50 = 185.25
    amounts = {(line["resource"], line["rate_effective_from"][:10]): line["amount"] for line in di_api["lines"]}
    assert sum(Decimal(a) for (r, _), a in amounts.items() if r == "egress") == Decimal("185.25")
    idle = {(a["namespace"], a["resource"], a["basis"]): a for a in invoice["idle"]["allocations"]}
    assert idle[("di-api", "cpu", "quota")]["reason"] == "quota-underused"
    assert Decimal(invoice["idle"]["capacity_held"]) > 0
    assert Decimal(invoice["idle"]["unit_pays"]) == 0  # usage billing: idle quota is on no invoice
    idle_csv = [row for row in read_csv(files["idle.csv"]) if row["business_unit"] == "data-insight"]
    assert sum(Decimal(row["capacity_held"]) for row in idle_csv) == Decimal(invoice["idle"]["capacity_held"])


def test_shared_split_and_budget_in_finance_summary(files: dict[str, str], chargeback: Chargeback) -> None:
    html = files["finance-summary.html"]
    for unit in chargeback.catalog.units:
        assert unit.display_name in html and f"invoices/{unit.id}.html" in html
    assert "Unallocated (namespaces no business unit owns)" in html
    invoices = [json.loads(files[f"invoices/{u}.json"]) for u in
                ("community-services", "data-insight", "edge-security", "platform", "unallocated")]  # fmt: skip
    pool_total = sum(Decimal(i["total"]) for i in invoices)
    assert pool_total == sum(chargeback.lines["amount"], Decimal(0))
    assert f"{pool_total:,.2f}" in html
    edge = json.loads(files["invoices/edge-security.json"])  # no own use: only its even share of monitoring
    assert [(ns["namespace"], ns["shared_split"], ns["share"]) for ns in edge["namespaces"] if ns["lines"]] == [
        ("monitoring", "even", "0.250000000")
    ]


def test_focus_validates_against_the_1_4_model(files: dict[str, str]) -> None:
    assert files["focus.csv"].startswith("AllocatedMethodDetails,")
    assert "ProviderName" not in files["focus.csv"].partition("\n")[0].split(",")  # removed in FOCUS 1.4
    assert violations(files["focus.csv"]) == []


def test_focus_1_3_has_every_mandatory_column_with_its_type(files: dict[str, str]) -> None:
    """`--focus-version 1.3`: the same rows in the 1.3 layout, against the 1.3 columns."""
    # The reference file has stray carriage returns inside rows: read bytes (no newline translation), drop them.
    text = FOCUS_REFERENCE.read_bytes().decode("utf-8").replace("\r", "")
    spec = {r["Column"]: r for r in csv.DictReader(io.StringIO(text), delimiter="\t")}
    assert len(spec) == 65 and all(r["FeatureLevel"] and r["Nullable"] and r["Type"] for r in spec.values())
    content = relayout(files["focus.csv"], "1.3")
    rows = read_csv(content)
    header = content.splitlines()[0].split(",")
    mandatory = [name for name, r in spec.items() if r["FeatureLevel"] == "Mandatory"]
    assert len(mandatory) == 23 and {"ChargeClass", "ServiceProviderName", "HostProviderName"} <= set(mandatory)
    assert set(mandatory) <= set(header)
    assert all(name in spec or name.startswith("x_") for name in header), "non-FOCUS columns must start with x_"
    assert {"x_Namespace", "x_BusinessUnit", "x_CostCenter", "x_Cluster"} <= set(header)
    iso = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
    for record in rows:
        for name in header:
            if name not in spec:
                continue
            value, kind = record[name], spec[name]["Type"]
            if value == "":
                assert spec[name]["Nullable"] == "True", f"{name} is not nullable"
                continue
            if kind == "Decimal":
                Decimal(value)
            elif kind == "Date/Time":
                assert iso.match(value), (name, value)
            elif kind == "JSON":
                json.loads(value)
        assert record["ChargeCategory"] == "Usage"
        assert record["ServiceCategory"] in {"Compute", "Storage", "Networking"}
        assert record["ProviderName"] == record["PublisherName"] == record["InvoiceIssuerName"]
        assert record["ServiceProviderName"] == record["HostProviderName"] == record["InvoiceIssuerName"]
        assert (record["BillingPeriodStart"], record["BillingPeriodEnd"]) == ("2026-10-01T00:00:00Z",
                                                                            "2026-11-01T00:00:00Z")  # fmt: skip


def test_focus_billed_cost_adds_up_to_each_invoice(files: dict[str, str]) -> None:
    by_invoice: dict[str, Decimal] = defaultdict(Decimal)
    for record in read_csv(files["focus.csv"]):
        by_invoice[record["InvoiceId"]] += Decimal(record["BilledCost"])
    invoices = [json.loads(content) for name, content in files.items() if name.endswith(".json")]
    assert {i["invoice_number"]: Decimal(i["total"]) for i in invoices if Decimal(i["total"])} == dict(by_invoice)


def test_hostile_label_values_are_escaped_in_html(catalog: Catalog) -> None:
    unit = catalog.units[1].model_copy(update={"display_name": "<b>Evil & Co</b>"})
    units = [unit if u.id == unit.id else u for u in catalog.units]
    hostile_catalog = catalog.model_copy(update={"units": units})
    frame = usage_frame(steady(HOSTILE, "cpu", 1.0, START, 2) + steady("di-api", "cpu", 1.0, START, 2))
    files = report_files(charge(frame, hostile_catalog, OCT))
    for name in ("invoices/unallocated.html", "finance-summary.html", "invoices/data-insight.html"):
        assert "<script>" not in files[name], name
        assert "<b>Evil" not in files[name], name
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in files["invoices/unallocated.html"]
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in files["invoices/data-insight.html"]
    assert json.loads(files["invoices/unallocated.json"])["namespaces"][0]["namespace"] == HOSTILE


def test_rerun_is_byte_identical_whatever_the_row_order(catalog: Catalog, files: dict[str, str], tmp_path: Path):
    shuffled = usage_frame(month_rows()).sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert report_files(charge(shuffled, catalog, OCT)) == files
    first = write_reports(charge(usage_frame(month_rows()), catalog, OCT), tmp_path / "a")
    second = write_reports(charge(shuffled, catalog, OCT), tmp_path / "b")
    assert [p.relative_to(tmp_path / "a") for p in first] == [p.relative_to(tmp_path / "b") for p in second]
    for one, two in zip(first, second, strict=True):
        assert one.read_bytes() == two.read_bytes()


def test_failed_run_keeps_earlier_reports(chargeback: Chargeback, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    write_reports(chargeback, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def failing(_: Chargeback) -> dict[str, str]:
        raise RatingError("boom while rendering")

    with pytest.raises(RatingError):
        write_reports(chargeback, out, render_files=failing)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["reports"], "no staging directory may be left behind"


def test_rewrite_removes_invoices_of_an_earlier_run_only(
    catalog: Catalog, chargeback: Chargeback, tmp_path: Path
) -> None:
    """A unit gone since the last run loses its invoice; files people put in the folder all stay."""
    out = tmp_path / "reports"
    retired = catalog.model_copy(
        update={"units": [*catalog.units, catalog.units[0].model_copy(update={"id": "retired"})]}
    )
    write_reports(charge(usage_frame(month_rows()), retired, OCT), out)
    assert (out / "invoices" / "retired.json").is_file()
    people = {"notes.txt": "mine", "invoices/platform-signed.pdf": "%PDF signed", "approval.json": "{}"}
    for name, content in people.items():
        (out / name).write_text(content, encoding="utf-8")
    written = write_reports(chargeback, out)
    assert not (out / "invoices" / "retired.json").exists() and not (out / "invoices" / "retired.json").is_symlink()
    for name, content in people.items():
        assert (out / name).read_text(encoding="utf-8") == content, name
    visible = sorted(p for p in out.rglob("*") if p.is_file() and ".reports" not in p.parts)
    assert sorted(set(visible) - {out / name for name in people}) == written


def test_out_must_be_a_directory(chargeback: Chargeback, tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep me", encoding="utf-8")
    with pytest.raises(OutputError, match="is a file: give a directory"):
        write_reports(chargeback, target)
    assert target.read_text(encoding="utf-8") == "keep me"


def test_empty_period_still_writes_every_invoice(catalog: Catalog) -> None:
    empty = usage_frame([])
    files = report_files(charge(empty, catalog, OCT))
    assert read_csv(files["line_items.csv"]) == [] and read_csv(files["focus.csv"]) == []
    invoice = json.loads(files["invoices/platform.json"])
    assert invoice["total"] == "0.00" and invoice["coverage"]["complete"] is False


def test_currency_without_minor_unit_rounds_to_whole_yen(tmp_path: Path) -> None:
    directory = copy_example(tmp_path)
    edit_yaml(directory / "rates.yaml", lambda doc: doc.__setitem__("currency", "JPY"))
    catalog = load_catalog(directory)
    # 3 core-hours × 0.24 = 0.72 → 1 yen; 1.25 GiB × 0.50 = 0.625 → 1; 1 GiB × 0.50 = 0.5 → 0 (half-even)
    egress = [row(START, "di-batch", "egress", 1.25), row(START, "cs-miniapp", "egress", 1.0)]
    frame = usage_frame([*steady("di-api", "cpu", 1.0, START, 3), *egress])
    files = report_files(charge(frame, catalog, OCT))
    amounts = {(r["namespace"], r["resource"]): r["amount"] for r in read_csv(files["line_items.csv"])}
    assert amounts == {("di-api", "cpu"): "1", ("di-batch", "egress"): "1", ("cs-miniapp", "egress"): "0"}
    assert json.loads(files["invoices/data-insight.json"])["total"] == "2"
    assert "Total JPY 2</p>" in files["invoices/data-insight.html"]


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+SUM(1;2)", "-2+3", "@cmd", "\tTAB", "\rCR"]


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(catalog: Catalog) -> None:
    """OWASP CSV injection: namespaces and display names starting with = + - @ TAB CR are written with a
    leading quote in every CSV; numbers (negative ones too) stay numbers."""
    unit = catalog.units[1].model_copy(update={"display_name": "=cmd|' /C calc'!A0"})
    hostile_catalog = catalog.model_copy(update={"units": [unit if u.id == unit.id else u for u in catalog.units]})
    rows = steady("di-api", "cpu", 1.0, START, 30, allocated=24.0)
    for formula in FORMULAS:
        rows += steady(formula, "cpu", 1.0, START, 30, allocated=8.0)
    files = report_files(charge(usage_frame(rows), hostile_catalog, OCT))
    seen = set()
    for name in ("usage.csv", "line_items.csv", "idle.csv", "focus.csv"):
        for record in read_csv(files[name]):
            for column, value in record.items():
                assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, column, value)
                if value.startswith("'"):
                    seen.add(value[1:])
    assert {f.replace("\r", "\n") for f in FORMULAS} <= seen  # a CR inside a cell is written as a line break
    assert "=cmd|' /C calc'!A0" in seen  # the display name, in FOCUS's account names


def test_negative_numbers_stay_numbers_and_text_is_quoted() -> None:
    from chargeback.outputs.csv_tables import csv_text

    text = csv_text(["namespace", "amount"], [{"namespace": "-x", "amount": "-12.50"}])
    assert text == "namespace,amount\n'-x,-12.50\n"
    with pytest.raises(OutputError, match="CSV column amount got '=1\\+1', which is not a number"):
        csv_text(["amount"], [{"amount": "=1+1"}])
