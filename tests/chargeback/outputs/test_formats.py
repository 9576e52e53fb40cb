"""The registry of output formats: every format registers once, the report set is exactly what the
registered formats write, and a new format is picked up without touching the writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from chargeback.outputs import formats
from chargeback.outputs.formats import FORMATS, Format, Inputs, register
from chargeback.outputs.reports import report_files
from chargeback.outputs.writer import write_reports
from chargeback.rate.result import Chargeback, charge
from pool_catalog import load_catalog
from tests.chargeback.outputs.test_outputs import OCT, month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.usage_frames import usage_frame


@pytest.fixture(scope="module")
def chargeback() -> Chargeback:
    return charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT)


def test_the_shipped_formats_are_registered() -> None:
    assert set(FORMATS) == {"csv", "focus", "json", "html", "pdf"}
    assert [f.name for f in formats.derived()] == ["pdf"]


def test_the_report_set_is_what_the_formats_write(chargeback: Chargeback) -> None:
    files = report_files(chargeback)
    inputs = Inputs(chargeback, chargeback.invoices, chargeback.finance_summary, None, None)
    by_format = {f.name: set(f.render(inputs)) for f in formats.rendered() if f.render}
    assert by_format["csv"] == {"usage.csv", "line_items.csv", "idle.csv"}
    assert by_format["focus"] == {"focus.csv"}
    units = [invoice.business_unit.id for invoice in chargeback.invoices]
    assert by_format["json"] == {f"invoices/{unit}.json" for unit in units}
    assert by_format["html"] == {f"invoices/{unit}.html" for unit in units} | {"finance-summary.html"}
    assert set(files) == set().union(*by_format.values())


def test_a_name_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="'csv' is registered twice"):
        register(Format("csv", "again.csv", ("chargeback",), render=lambda inputs: {}))
    with pytest.raises(ValueError, match="exactly one of render and derive"):
        Format("odd", "nothing", ())


def test_a_new_format_is_one_registration(
    chargeback: Chargeback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        FORMATS,
        "totals",
        Format(
            "totals",
            "totals.txt",
            ("invoices",),
            render=lambda inputs: {"totals.txt": "".join(f"{i.business_unit.id} {i.total}\n" for i in inputs.invoices)},
        ),
    )
    written = write_reports(chargeback, tmp_path / "out")
    assert tmp_path / "out" / "totals.txt" in written
    assert "data-insight " in (tmp_path / "out" / "totals.txt").read_text(encoding="utf-8")


def test_two_formats_writing_one_file_is_a_bug_not_an_overwrite(
    chargeback: Chargeback, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        FORMATS, "shadow", Format("shadow", "usage.csv", ("chargeback",), render=lambda inputs: {"usage.csv": ""})
    )
    with pytest.raises(ValueError, match=r"write usage\.csv twice"):
        report_files(chargeback)
