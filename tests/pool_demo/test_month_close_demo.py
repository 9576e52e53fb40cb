"""The month close on the demo's two months (2026-09 and 2026-10, generated and backfilled into a real
Prometheus as `make demo` does): close both, change a price retroactively, close again with --correct.

Expected: the originals stay byte for byte as issued (files and ledger rows), and each unit whose figures
changed gets a correction note whose amount is the difference to the cent between the month recomputed
at the new price and the month as issued; `ledger export` gives back the issued FOCUS files.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.ledger.store import Ledger
from chargeback.period import Period
from chargeback.rate.invoices import build_invoices
from chargeback.run import run_period
from pool_catalog import load_catalog
from pool_demo.demo import backfill_months, generate_usage
from pool_demo.demo_usage import DEFAULT_SEED
from pool_demo.local_prometheus import LocalPrometheus
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.focus_model import violations
from tests.support.prometheus import require_prometheus

pytestmark = pytest.mark.prometheus

MONTHS = (Period(2026, 9), Period(2026, 10))
runner = CliRunner(env={"COLUMNS": "250"})


@pytest.fixture(scope="module")
def demo_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_prometheus()
    work = tmp_path_factory.mktemp("demo-months")
    quiet = Progress(console=Console(file=io.StringIO()))
    generate_usage(load_catalog(EXAMPLE_CATALOG), list(MONTHS), work, DEFAULT_SEED, quiet)
    backfill_months(list(MONTHS), work, Progress(console=Console(file=io.StringIO())))
    with LocalPrometheus(work / "tsdb") as server:
        yield server.url


@pytest.fixture
def ledger(tmp_path: Path) -> str:
    """SQLite: the same close on PostgreSQL is covered, on the scenario month, by test_ledger.py."""
    return str(tmp_path / "ledger.db")


def digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "corrections" not in p.relative_to(directory).parts
    }


def totals(url: str, catalog: Path, month: Period) -> dict[str, Decimal]:
    """Invoice totals of a month computed directly (not through the ledger)."""
    return {
        invoice.business_unit.id: invoice.total
        for invoice in build_invoices(run_period(month, catalog, url).chargeback)
    }


def close(url: str, catalog: Path, reports: Path, ledger: str, month: Period, *extra: str) -> str:
    args = ["close", "--period", month.label, "--prometheus", url, "--catalog", str(catalog)]
    result = runner.invoke(app, [*args, "--out", str(reports / month.label), "--ledger", ledger, *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_retroactive_price_change_gives_untouched_originals_and_notes_to_the_cent(
    demo_prometheus: str, ledger: str, tmp_path: Path
) -> None:
    catalog = copy_example(tmp_path)
    reports = tmp_path / "reports"
    for month in MONTHS:
        close(demo_prometheus, catalog, reports, ledger, month)
    issued = {month: digest(reports / month.label) for month in MONTHS}
    with Ledger(ledger) as book:
        originals = book.issues()
    assert [(i.period, i.sequence) for i in originals] == [("2026-09", 0), ("2026-10", 0)]
    before = {i.period: {d.business_unit: Decimal(d.total) for d in i.documents} for i in originals}

    def raise_memory_price(document) -> None:  # from January on, so both months change
        document["versions"][0]["memory"]["price"] = "0.035"

    edit_yaml(catalog / "rates.yaml", raise_memory_price)
    after = {month.label: totals(demo_prometheus, catalog, month) for month in MONTHS}
    for month in MONTHS:
        close(demo_prometheus, catalog, reports, ledger, month, "--correct")

    for month in MONTHS:
        assert digest(reports / month.label) == issued[month]
    with Ledger(ledger) as book:
        issues = book.issues()
    assert issues[:2] == originals
    corrections = {i.period: i for i in issues[2:]}
    assert sorted(corrections) == ["2026-09", "2026-10"]
    for label, issue in corrections.items():
        notes = {d.business_unit: d for d in issue.documents}
        changed = {unit for unit, total in after[label].items() if total != before[label][unit]}
        assert changed and set(notes) == changed
        for unit, note in notes.items():
            assert Decimal(note.total) == after[label][unit] - before[label][unit], (label, unit)
            assert note.reference == f"RP-{label}-{unit}"
            assert note.kind == "debit_note"  # a higher price: every unit pays more
    # Nothing left to correct: closing again is a no-op.
    for month in MONTHS:
        assert "nothing issued" in close(demo_prometheus, catalog, reports, ledger, month, "--correct")

    september = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--from", "2026-09", "--to", "2026-09"])
    assert september.output == (reports / "2026-09" / "focus.csv").read_text(encoding="utf-8")
    both = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--from", "2026-09", "--to", "2026-10"])
    october = (reports / "2026-10" / "focus.csv").read_text(encoding="utf-8")
    assert both.output == september.output + october.split("\n", 1)[1]
    every = runner.invoke(app, ["ledger", "export", "--ledger", ledger])  # months and their corrections
    assert every.exit_code == 0 and "Correction" in every.output and violations(every.output) == []
