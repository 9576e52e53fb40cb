"""PDF invoices: two prints of the same reports are byte-identical, a long display name wraps inside the
page instead of running off it, and every table of the invoices, finance summary and correction notes
prints whole words inside the page (checked on the printed pages with poppler's pdftotext)."""

from __future__ import annotations

import datetime as dt
import html
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from chargeback.ledger.close import _correction
from chargeback.ledger.documents import UnitState, chargeback_lines, differences, line_key
from chargeback.ledger.fingerprint import build_fingerprint
from chargeback.outputs.pdf import print_pdfs
from chargeback.outputs.writer import write_reports
from chargeback.period import Period
from chargeback.rate.invoices import text
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from tests.chargeback.outputs.test_outputs import month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.pdf_layout import layout_problems
from tests.support.usage_frames import steady, usage_frame

OCT = Period.parse("2026-10")
LONG_NAME = "Zahlungsverkehrsabwicklungsdienstleistungsgeschaeftsbereich_Sued_Ost_" * 3  # no break opportunity
MARGIN_MM = 15  # report.css: @page margin 18mm 15mm 15mm


def reports_with_long_name(out: Path) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    units = [u.model_copy(update={"display_name": LONG_NAME}) if u.id == "platform" else u for u in catalog.units]
    catalog = catalog.model_copy(update={"units": units})
    frame = usage_frame(steady("pf-identity", "cpu", 2.0, OCT.start, 48))
    write_reports(charge(frame, catalog, OCT), out, pdf=True)


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """The reports printed twice into one folder: the first print's PDFs, and the folder after the second."""
    out = tmp_path_factory.mktemp("reports") / "2026-10"
    reports_with_long_name(out)
    first = {p.name: p.read_bytes() for p in [out / "finance-summary.pdf", *(out / "invoices").glob("*.pdf")]}
    reports_with_long_name(out)
    return out, first


def test_two_prints_are_byte_identical(printed: tuple[Path, dict[str, bytes]]) -> None:
    out, first = printed
    assert len(first) == 5  # the finance summary and an invoice per unit
    for name, content in first.items():
        path = out / name if name == "finance-summary.pdf" else out / "invoices" / name
        assert path.read_bytes() == content, name
    assert b"/CreationDate (D:20261101000000+00'00')" in first["platform.pdf"]
    # Links lead, relative, to the published invoices: no local path, not the folder the run printed in.
    summary = first["finance-summary.pdf"]
    assert b"/URI (invoices/platform.html)" in summary
    assert b"file:" not in summary and str(out.resolve()).encode() not in summary and b".staging-" not in summary
    for name, content in first.items():
        assert b"file:" not in content and str(out.resolve()).encode() not in content, name


def test_the_same_reports_print_the_same_pdfs_in_another_folder(
    printed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    _, first = printed
    elsewhere = tmp_path / "somewhere" / "else" / "2026-10"
    reports_with_long_name(elsewhere)
    assert (elsewhere / "finance-summary.pdf").read_bytes() == first["finance-summary.pdf"]
    assert (elsewhere / "invoices" / "platform.pdf").read_bytes() == first["platform.pdf"]


A4_WIDTH_PT = 595.28
RIGHT_EDGE_PT = A4_WIDTH_PT - MARGIN_MM / 25.4 * 72
WORD = re.compile(r'<word xMin="([\d.]+)" yMin="[\d.]+" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>')


def first_page_words(pdf: Path) -> list[tuple[float, float, str]]:
    """(left, right, text) of each word on page 1, from poppler's pdftotext -bbox."""
    layout = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [(float(left), float(right), html.unescape(text)) for left, right, text in WORD.findall(layout)]


def test_a_long_display_name_stays_inside_the_page(printed: tuple[Path, dict[str, bytes]]) -> None:
    """Before: a name with no break opportunity ran past the text width: Chromium shrank the page and
    still cut the name at the edge. Now it wraps: every word inside the margins, the whole name printed."""
    words = first_page_words(printed[0] / "invoices/platform.pdf")
    texts = [text for _, _, text in words]
    start = next(i for i in range(len(texts) - 1) if texts[i : i + 2] == ["Billed", "to"]) + 2
    end = texts.index("Cost", start)
    assert "".join(texts[start:end]) == LONG_NAME
    assert end - start >= 2, "the name wraps onto several lines"
    outside = [(text, right) for _, right, text in words if right > RIGHT_EDGE_PT + 1]
    assert not outside, outside


def test_a_long_display_name_in_a_table_stays_inside_the_page(printed: tuple[Path, dict[str, bytes]]) -> None:
    """Table cells break only between words, so a name without any break opportunity gets one every 20
    letters (html.breakable); without it the units table ran off the page and Chromium shrank the page."""
    out = printed[0]
    html_page = (out / "finance-summary.html").read_text(encoding="utf-8")
    assert "Zahlungsverkehrsabwi<wbr>cklungsdienstleistun<wbr>" in html_page
    problems = layout_problems(out / "finance-summary.html", out / "finance-summary.pdf")
    assert not [p for p in problems if "margins" in p or "overlap" in p], problems


# ------------------------------------------------------------------ every table, readable at A4

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "chargeback-2026-10"


def correction_notes(tmp: Path) -> dict[str, str]:
    """The correction notes a close issues after the golden month's CPU price went from 0.24 to 0.31: one
    per unit, each with its reversal and charge lines (`close._correction`, what `close --correct` runs)."""
    catalog_dir = copy_example(tmp)
    original = charge(usage_frame(month_rows()), load_catalog(catalog_dir), OCT)
    edit_yaml(catalog_dir / "rates.yaml", lambda rates: rates["versions"][0]["cpu"].update(price="0.31"))
    repriced = charge(usage_frame(month_rows()), load_catalog(catalog_dir), OCT)
    issued = chargeback_lines(original)
    totals = {invoice.business_unit.id: text(invoice.total) for invoice in original.invoices}
    in_force = {
        unit: UnitState(
            unit,
            f"RP-2026-10-{unit}",
            {line_key(line): line for line in lines},
            ((f"RP-2026-10-{unit}", "invoice", totals[unit], "2026-11-01T00:00:00Z"),),
            original.currency,
        )
        for unit, lines in issued.items()
    }
    changes = differences(in_force, chargeback_lines(repriced))
    assert changes, "the new price changes the month"
    now = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    fingerprint = build_fingerprint(
        repriced,
        catalog_root=catalog_dir,
        prometheus_url="http://prometheus.example:9090",
        server_version="2.42.0",
        queries={},
        issued_by="finops@group.example.com",
        issued_at=now,
    )
    run = SimpleNamespace(chargeback=repriced)
    issue = _correction(run, fingerprint, in_force, changes, 1, now, "finops@group.example.com")  # type: ignore[arg-type]
    return {name: content for name, content in issue.files.items() if name.endswith(".html")}


@pytest.fixture(scope="module")
def printed_tables(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Path, Path]]:
    """(HTML, PDF) of every document with tables: the golden month's invoices and finance summary (idle
    allocations, lines, capabilities, month figures) and its correction notes."""
    folder = tmp_path_factory.mktemp("tables")
    pages = {f"golden-{p.name}": p.read_text(encoding="utf-8") for p in GOLDEN.rglob("*.html")}
    pages |= {name.replace("/", "-"): content for name, content in correction_notes(folder / "catalog").items()}
    pairs = []
    for name, content in sorted(pages.items()):
        page = folder / name
        page.write_text(content, encoding="utf-8")
        pairs.append((page, page.with_suffix(".pdf")))
    print_pdfs(pairs)
    return pairs


def test_every_table_prints_whole_words_inside_the_page(printed_tables: list[tuple[Path, Path]]) -> None:
    """Before: table cells could break anywhere, so Chromium squeezed columns and split words mid-way
    ("me/mo/ry", "CC-/420/0", "2026-10-/15"; 12 to 17 split words per demo PDF, the idle table one letter
    wide). Now every word of every table prints whole (a break only after a hyphen), no two words overlap
    and nothing leaves the A4 margins."""
    names = [page.name for page, _ in printed_tables]
    assert "golden-finance-summary.html" in names and "golden-data-insight.html" in names
    assert sum(name.startswith("corrections-") for name in names) >= 2
    for page, pdf in printed_tables:
        assert "<table" in page.read_text(encoding="utf-8"), page.name
        assert layout_problems(page, pdf) == [], page.name


def test_the_check_finds_a_word_split_mid_way(tmp_path: Path) -> None:
    """The check itself: a column too narrow for its word, breaking anywhere, is reported."""
    page = tmp_path / "narrow.html"
    page.write_text(
        "<!doctype html><html><head><style>td { width: 1.2em; overflow-wrap: anywhere; }</style></head>"
        "<body><table><tr><td>memory</td><td>CC-4200</td></tr></table></body></html>",
        encoding="utf-8",
    )
    print_pdfs([(page, tmp_path / "narrow.pdf")])
    problems = layout_problems(page, tmp_path / "narrow.pdf")
    assert any("'memory'" in p for p in problems) and any("'CC-4200'" in p for p in problems), problems
