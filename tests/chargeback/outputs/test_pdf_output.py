"""PDF invoices: two prints of the same reports are byte-identical, and a long display name wraps
inside the page instead of running off it (checked on the printed page with poppler's pdftotext)."""

from __future__ import annotations

import html
import re
import subprocess
from pathlib import Path

import pytest

from chargeback.outputs.writer import write_reports
from chargeback.period import Period
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG
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
