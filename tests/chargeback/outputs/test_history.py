"""Month over month: the previous period's invoices found beside this period's output (or given), shown
per unit with closed-form changes; absent means no section; bad history is a clear error and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chargeback.errors import HistoryError
from chargeback.outputs.reports import report_files
from chargeback.outputs.writer import write_reports
from chargeback.period import Period
from chargeback.rate.result import Chargeback, charge
from pool_catalog import Catalog, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.usage_frames import steady, usage_frame

SEP, OCT = Period.parse("2026-09"), Period.parse("2026-10")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


def one_core(catalog: Catalog, period: Period) -> Chargeback:
    """di-api runs one core all month: 720 h × 0.24 = 172.80 in September, 744 h × 0.24 = 178.56 in October."""
    return charge(usage_frame(steady("di-api", "cpu", 1.0, period.start, period.hours)), catalog, period)


def test_sibling_directory_of_the_previous_period_gives_month_over_month(catalog: Catalog, tmp_path: Path) -> None:
    def with_retired_unit(chargeback: Chargeback) -> dict[str, str]:
        files = report_files(chargeback)
        retired = json.loads(files["invoices/platform.json"])
        retired["business_unit"] = {"id": "retired", "display_name": "Retired unit", "cost_center": ""}
        retired["total"] = "12.50"
        return {**files, "invoices/retired.json": json.dumps(retired)}

    write_reports(one_core(catalog, SEP), tmp_path / "2026-09", render_files=with_retired_unit)
    # A JSON a person put beside September's invoices is not one of them: the manifest says which are.
    (tmp_path / "2026-09/invoices/approval.json").write_text('{"approved_by": "cfo"}', encoding="utf-8")
    write_reports(one_core(catalog, OCT), tmp_path / "2026-10")
    summary = (tmp_path / "2026-10/finance-summary.html").read_text(encoding="utf-8")
    assert "<h2>Month over month</h2>" in summary
    # data-insight: 172.80 → 178.56 = +5.76, +3.3 %; platform 0 → 0 (no share of nothing); retired 12.50 → 0.
    assert (
        '<td class="num">172.80</td>\n      <td class="num">178.56</td>\n'
        '      <td class="num">+5.76</td>\n      <td class="num">+3.3 %</td>'
    ) in summary
    assert '<th scope="row">Retired unit</th>\n      <td class="num">12.50</td>' in summary
    assert '<td class="num">-12.50</td>\n      <td class="num">-100.0 %</td>' in summary
    assert '<td class="num">0.00</td>\n      <td class="num">+0.00</td>\n      <td class="num">—</td>' in summary
    invoice = (tmp_path / "2026-10/invoices/data-insight.html").read_text(encoding="utf-8")
    assert "2026-09: CNY 172.80; change CNY +5.76 (+3.3 %)." in invoice
    # The JSON contract does not depend on which earlier runs lie around.
    assert "previous" not in (tmp_path / "2026-10/invoices/data-insight.json").read_text(encoding="utf-8")


def test_rerun_with_history_is_byte_identical(catalog: Catalog, tmp_path: Path) -> None:
    write_reports(one_core(catalog, SEP), tmp_path / "2026-09")
    first = {p: p.read_bytes() for p in write_reports(one_core(catalog, OCT), tmp_path / "2026-10")}
    second = {p: p.read_bytes() for p in write_reports(one_core(catalog, OCT), tmp_path / "2026-10")}
    assert first == second


def test_no_previous_period_means_no_section(catalog: Catalog, tmp_path: Path) -> None:
    write_reports(one_core(catalog, OCT), tmp_path / "2026-10")
    write_reports(one_core(catalog, OCT), tmp_path / "reports")  # not named after the period: no default
    for out in ("2026-10", "reports"):
        summary = (tmp_path / out / "finance-summary.html").read_text(encoding="utf-8")
        invoice = (tmp_path / out / "invoices/data-insight.html").read_text(encoding="utf-8")
        assert "Month over month" not in summary and "2026-09" not in summary + invoice


def test_explicit_previous_directory_of_any_name(catalog: Catalog, tmp_path: Path) -> None:
    write_reports(one_core(catalog, SEP), tmp_path / "september-run")
    write_reports(one_core(catalog, OCT), tmp_path / "reports", previous=tmp_path / "september-run")
    assert "2026-09: CNY 172.80" in (tmp_path / "reports/invoices/data-insight.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d.unlink(), "no invoices/\\*.json there"),
        (lambda d: d.write_text("{not json", encoding="utf-8"), "is not an invoice JSON"),
        (
            lambda d: d.write_text('{"period": "2026-09"}', encoding="utf-8"),
            r"platform\.json is not an invoice JSON of `chargeback invoice`: lacks field 'invoice_number', "
            r"'period_start', 'period_end' and 11 more; remove it or rerun that period",
        ),
        (lambda d: _edit(d, business_unit={"id": "platform"}), "lacks field 'business_unit.display_name'"),
        (lambda d: _edit(d, total="12,50"), "field 'total': Value error, '12,50' is not fixed-point decimal text"),
        (lambda d: _edit(d, total=12.5), "field 'total': Value error, 12.5 must be fixed-point decimal text"),
        (lambda d: _edit(d, currency="USD"), "is in USD but this period is billed in CNY"),
        (lambda d: _edit(d, period="2026-10"), "not of a period before 2026-10"),
    ],
)
def test_bad_history_is_a_clear_error_and_writes_nothing(catalog, tmp_path: Path, damage, message: str) -> None:
    previous = tmp_path / "previous"
    (previous / "invoices").mkdir(parents=True)
    document = previous / "invoices" / "platform.json"
    write_reports(one_core(catalog, SEP), tmp_path / "september")
    document.write_bytes((tmp_path / "september/invoices/platform.json").read_bytes())
    damage(document)
    with pytest.raises(HistoryError, match=message):
        write_reports(one_core(catalog, OCT), tmp_path / "out", previous=previous)
    assert not (tmp_path / "out").exists()


def test_mixed_periods_in_the_default_directory_are_refused(catalog: Catalog, tmp_path: Path) -> None:
    write_reports(one_core(catalog, SEP), tmp_path / "2026-09")
    _edit(tmp_path / "2026-09/invoices/platform.json", period="2026-08")
    with pytest.raises(HistoryError, match="mixes invoices of periods 2026-08, 2026-09"):
        write_reports(one_core(catalog, OCT), tmp_path / "2026-10")


def _edit(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    document.update(changes)
    path.write_text(json.dumps(document), encoding="utf-8")
