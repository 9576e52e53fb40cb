"""The ledger and the month close, against SQLite and a real PostgreSQL (started by these tests), with the
closed-form scenario served by a real Prometheus.

Closing issues a month once; re-running is a no-op; `invoice` on a closed month compares; a retroactive
price change is issued as correction notes whose totals are the difference to the cent, the original
untouched; issued rows refuse UPDATE and DELETE in both databases; two closes at once: one wins.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.ledger.reading import ClosedMonthsCollector
from chargeback.ledger.store import Document, Issue, Ledger, content_hash
from chargeback.outputs.csv_tables import csv_records
from chargeback.outputs.focus import relayout
from chargeback.rate.invoices import build_invoices, text
from chargeback.run import run_period
from pool_catalog.numbers import format_money
from pool_demo.local_prometheus import BINARY_ENV, LocalPrometheus, backfill
from pool_demo.synthetic import closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.chargeback.outputs.test_focus_conformance import check_1_3_columns
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.focus_model import violations
from tests.support.postgres import LocalPostgres, ledger_target, local_postgres
from tests.support.prometheus import ScenarioServer, require_prometheus

pytestmark = pytest.mark.prometheus

runner = CliRunner(env={"COLUMNS": "250"})  # wide enough that tables keep whole document numbers
PERIOD = "2026-10"
CURRENT = dt.datetime.now(dt.UTC)
CURRENT_MONTH = f"{CURRENT.year:04d}-{CURRENT.month:02d}"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    """The closed-form scenario (priced storage only) in Debian's Prometheus."""
    require_prometheus()
    workdir = tmp_path_factory.mktemp("ledger-prometheus")
    scenario = closed_form_scenario("dc1", with_unpriced_storage=False)
    write_openmetrics(workdir / "scenario.om", [scenario, other_cluster_scenario("dc2")])
    backfill(workdir / "scenario.om", workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as server:
        yield ScenarioServer(url=server.url, scenario=scenario, data_dir=workdir / "tsdb")


@pytest.fixture(scope="module")
def postgres() -> Iterator[LocalPostgres]:
    with local_postgres() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger: a SQLite file, or a fresh database on the test PostgreSQL."""
    return ledger_target(request.param, tmp_path, lambda: request.getfixturevalue("postgres"))


def close_args(url: str, out: Path, ledger: str, catalog: Path | None = None, *extra: str) -> list[str]:
    args = ["close", "--period", PERIOD, "--prometheus", url, "--out", str(out), "--ledger", ledger]
    return args + (["--catalog", str(catalog)] if catalog else []) + list(extra)


def digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        # The published files (links into .reports/current); the run folders behind them are named per run.
        if p.is_file() and ".reports" not in p.relative_to(directory).parts
    }


def sample_issue(period: str = "2026-09") -> Issue:
    line = {
        "entry": "charge",
        "cluster": "dc1",
        "namespace": "di-api",
        "resource": "cpu",
        "tier": "",
        "rate_effective_from": "2026-01-01T00:00:00Z",
        "charge_period_start": "2026-09-01T00:00:00Z",
        "charge_period_end": "2026-10-01T00:00:00Z",
        "usage_quantity": "10.000000000",
        "usage_unit": "core-hour",
        "billed_quantity": "10.000000000",
        "unit": "core-hour",
        "unit_price": "0.24",
        "amount": "2.40",
        "shared_split": "",
        "share": "1",
    }
    number = f"RP-{period}-data-insight"
    content = json.dumps(
        {
            "invoice_number": number,
            "business_unit": {"id": "data-insight", "display_name": "Data Insight"},
            "currency": "CNY",
            "total": "2.40",
        }
    )
    document = Document(number, "invoice", "data-insight", None, "CNY", "2.40", content, (line,))
    focus = "BilledCost\n2.40\n"
    return Issue(
        period=period,
        sequence=0,
        kind="original",
        billing_period=period,
        content_hash=content_hash([document], focus),
        fingerprint={"tool_version": "test"},
        issued_at="2026-10-01T00:00:00Z",
        issued_by="test@host",
        documents=(document,),
        files={"focus.csv": focus, "invoices/data-insight.json": content, "invoices/data-insight.pdf": SAMPLE_PDF},
    )


SAMPLE_PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n\x00\xff binary, not UTF-8\n%%EOF\n"


# ------------------------------------------------------------------ append-only


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_documents SET total = '0.00'",
        "UPDATE ledger_lines SET amount = '0.00'",
        "UPDATE ledger_issues SET content_hash = 'x'",
        "UPDATE ledger_files SET content = ''",
        "UPDATE ledger_binary_files SET sha256 = 'x'",
        "DELETE FROM ledger_lines",
        "DELETE FROM ledger_documents",
        "DELETE FROM ledger_files",
        "DELETE FROM ledger_binary_files",
        "DELETE FROM ledger_issues",
    ],
)
def test_issued_rows_refuse_update_and_delete(ledger: str, statement: str) -> None:
    with Ledger(ledger) as book:
        with book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), book.engine.begin() as connection:
            connection.exec_driver_sql(statement)
        [issue] = book.issues()
    assert issue == sample_issue()


def test_a_ledger_of_the_first_schema_is_upgraded_to_keep_pdfs(tmp_path: Path) -> None:
    """A ledger made before close issued PDFs (revision 0001) opens, keeps what it holds, and stores PDFs."""
    from importlib import resources

    from alembic import command
    from alembic.config import Config

    path = tmp_path / "ledger.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    config = Config()
    config.set_main_option("script_location", str(resources.files("chargeback.ledger") / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001_ledger")
        assert "ledger_binary_files" not in sa.inspect(connection).get_table_names()
    engine.dispose()
    with Ledger(str(path)) as book:
        with book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
        [issue] = book.issues()
    assert issue.files["invoices/data-insight.pdf"] == SAMPLE_PDF


def test_postgresql_also_refuses_truncate(postgres: LocalPostgres) -> None:
    url = postgres.create_database("ledger_truncate")
    with Ledger(url) as book:
        with book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), book.engine.begin() as connection:
            connection.exec_driver_sql(
                "TRUNCATE ledger_lines, ledger_documents, ledger_files, ledger_binary_files, ledger_issues"
            )
        assert len(book.issues()) == 1


def test_a_period_is_issued_once_per_sequence(ledger: str) -> None:
    with Ledger(ledger) as book:
        with book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
        with pytest.raises(Exception, match="another run issued it first"), book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
        assert len(book.issues()) == 1


def test_reading_a_missing_sqlite_ledger_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ledger", "list", "--ledger", str(tmp_path / "nope.db")])
    assert result.exit_code == 2
    assert "no ledger at" in result.output and "close a month first" in result.output
    assert not (tmp_path / "nope.db").exists()


def test_unreachable_postgresql_is_a_clear_error() -> None:
    result = runner.invoke(app, ["ledger", "list", "--ledger", "postgresql://nobody@127.0.0.1:1/none"])
    assert result.exit_code == 2
    assert "cannot open the ledger postgresql+psycopg://nobody@127.0.0.1:1/none" in result.output
    assert "check that PostgreSQL runs" in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------ close, re-run, invoice, export


def test_close_issues_once_and_rerun_is_a_no_op(prometheus: ScenarioServer, ledger: str, tmp_path: Path) -> None:
    out = tmp_path / "reports" / PERIOD
    first = runner.invoke(app, close_args(prometheus.url, out, ledger))
    assert first.exit_code == 0, first.output
    assert "RP-2026-10-data-insight" in first.output
    issued = digest(out)
    invoice = json.loads((out / "invoices" / "data-insight.json").read_text(encoding="utf-8"))
    assert invoice["issue"]["period"] == PERIOD and len(invoice["issue"]["short_hash"]) == 12
    fingerprint = invoice["issue"]["fingerprint"]
    assert fingerprint["prometheus"]["url"] == prometheus.url
    assert fingerprint["prometheus"]["version"].startswith("3." if os.environ.get(BINARY_ENV) else "2.")
    assert set(fingerprint["coverage"]) == {"dc1"}
    assert fingerprint["rate_card"]["versions"] == ["2026-01-01T00:00:00Z", "2026-10-15T00:00:00Z"]
    html = (out / "invoices" / "data-insight.html").read_text(encoding="utf-8")
    assert invoice["issue"]["short_hash"] in html and "Issued from the ledger" in html

    again = runner.invoke(app, close_args(prometheus.url, out, ledger))
    assert again.exit_code == 0, again.output
    assert "already closed" in again.output and "nothing issued" in again.output
    assert digest(out) == issued
    with Ledger(ledger) as book:
        assert [(i.period, i.sequence) for i in book.issues()] == [(PERIOD, 0)]

    compared = runner.invoke(
        app, ["invoice", "--period", PERIOD, "--prometheus", prometheus.url, "--out", str(out), "--ledger", ledger]
    )
    assert compared.exit_code == 0, compared.output
    assert "recomputed figures: identical" in compared.output
    assert digest(out) == issued

    restored = tmp_path / "restored"
    result = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--format", "files", "--out", str(restored)])
    assert result.exit_code == 0, result.output
    assert digest(restored / PERIOD) == issued

    exported = tmp_path / "export.csv"
    result = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--from", PERIOD, "--out", str(exported)])
    assert result.exit_code == 0, result.output
    assert exported.read_bytes() == (out / "focus.csv").read_bytes()


def pdf_text(content: bytes) -> str:
    """The text of a PDF, by poppler's pdftotext."""
    return subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True, check=True).stdout.decode()


def test_close_issues_pdfs_in_place_of_earlier_ones_and_export_reproduces_them(
    prometheus: ScenarioServer, ledger: str, tmp_path: Path
) -> None:
    """PDFs an earlier `invoice --pdf` wrote are replaced by the issued ones, not deleted; the ledger keeps those
    bytes; `invoice --pdf` on the closed month says where they are, or the export that writes them back."""
    out = tmp_path / "reports" / PERIOD
    invoice_args = ["invoice", "--period", PERIOD, "--prometheus", prometheus.url, "--out", str(out)]
    drafted = runner.invoke(app, [*invoice_args, "--pdf"])
    assert drafted.exit_code == 0, drafted.output
    units = sorted(p.stem for p in (out / "invoices").glob("*.json"))
    pdf_names = {"finance-summary.pdf", *(f"invoices/{unit}.pdf" for unit in units)}
    drafts = {name: (out / name).read_bytes() for name in pdf_names}

    closed = runner.invoke(app, close_args(prometheus.url, out, ledger))
    assert closed.exit_code == 0, closed.output
    with Ledger(ledger) as book:
        [issue] = book.issues()
    issued = {name: content for name, content in issue.files.items() if isinstance(content, bytes)}
    assert set(issued) == pdf_names
    issued_at = "".join(c for c in issue.issued_at if c.isdigit())
    for name, content in issued.items():
        assert (out / name).read_bytes() == content, name
        assert content.startswith(b"%PDF-")
        assert f"/CreationDate (D:{issued_at}+00'00')".encode() in content, name  # dated when issued
    for unit in units:  # the issued invoice, not the draft: it prints the issue's fingerprint
        assert issue.content_hash[:12] in pdf_text(issued[f"invoices/{unit}.pdf"])
        assert issue.content_hash[:12] not in pdf_text(drafts[f"invoices/{unit}.pdf"])

    told = runner.invoke(app, [*invoice_args, "--pdf", "--ledger", ledger])
    assert told.exit_code == 0, told.output
    assert f"the {len(pdf_names)} PDFs issued for {PERIOD} are in {out} as issued" in told.output
    (out / "invoices" / "data-insight.pdf").unlink()
    told = runner.invoke(app, [*invoice_args, "--pdf", "--ledger", ledger])
    assert told.exit_code == 0, told.output
    assert "1 of the" in told.output and "invoices/data-insight.pdf" in told.output
    command = told.output[told.output.index("chargeback ledger export") :].split(" --out DIR")[0]
    restored = tmp_path / "restored"
    exported = runner.invoke(app, [*command.split()[1:], "--out", str(restored)])
    assert exported.exit_code == 0, exported.output
    for name, content in issued.items():
        assert (restored / PERIOD / name).read_bytes() == content, name


def test_export_formats_and_list(prometheus: ScenarioServer, ledger: str, tmp_path: Path) -> None:
    out = tmp_path / PERIOD
    assert runner.invoke(app, close_args(prometheus.url, out, ledger)).exit_code == 0
    lines = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--format", "csv"])
    assert lines.exit_code == 0, lines.output
    rows = csv_records(lines.output)
    issued = list(csv.DictReader((out / "line_items.csv").open(encoding="utf-8-sig")))
    assert len(rows) == len(issued)
    assert sum(Decimal(r["amount"]) for r in rows) == sum(Decimal(r["amount"]) for r in issued)
    documents = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--format", "json"])
    [issue] = json.loads(documents.output)
    assert [d["invoice_number"] for d in issue["documents"]] == sorted(
        json.loads(p.read_text(encoding="utf-8"))["invoice_number"] for p in (out / "invoices").glob("*.json")
    )
    listed = runner.invoke(app, ["ledger", "list", "--ledger", ledger], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and PERIOD in listed.output and "original" in listed.output
    empty = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--from", "2027-01"])
    assert empty.exit_code == 2 and "nothing issued" in empty.output
    bad = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--format", "xlsx"])
    assert bad.exit_code == 2 and "choose focus, csv, json or files" in bad.output


def test_a_month_that_is_not_over_cannot_be_closed(tmp_path: Path) -> None:
    month = f"{CURRENT.year:04d}-{CURRENT.month:02d}"
    result = runner.invoke(
        app,
        ["close", "--period", month, "--prometheus", "http://127.0.0.1:1", "--out", str(tmp_path / month)],
    )
    assert result.exit_code == 2
    assert "only a month that is over can be closed" in result.output
    assert not (tmp_path / "ledger.db").exists()


def test_correct_needs_a_closed_month(prometheus: ScenarioServer, ledger: str, tmp_path: Path) -> None:
    result = runner.invoke(app, close_args(prometheus.url, tmp_path / PERIOD, ledger, None, "--correct"))
    assert result.exit_code == 2
    assert "was never closed" in result.output and "close it first" in result.output


def raise_cpu_price(catalog: Path, price: str) -> None:
    def change(document) -> None:
        document["versions"][0]["cpu"]["price"] = price

    edit_yaml(catalog / "rates.yaml", change)


def test_retroactive_price_change_is_issued_as_correction_notes(
    prometheus: ScenarioServer, ledger: str, tmp_path: Path
) -> None:
    catalog = copy_example(tmp_path)
    out = tmp_path / "reports" / PERIOD
    assert runner.invoke(app, close_args(prometheus.url, out, ledger, catalog)).exit_code == 0
    issued_files = digest(out)
    with Ledger(ledger) as book:
        [original] = book.issues()
    old_totals = {d.business_unit: Decimal(d.total) for d in original.documents}

    raise_cpu_price(catalog, "0.30")
    new_totals = {
        inv.business_unit.id: inv.total
        for inv in build_invoices(run_period(PERIOD, catalog, prometheus.url).chargeback)
    }
    changed = {unit for unit in new_totals if new_totals[unit] != old_totals[unit]}
    assert changed >= {"data-insight", "community-services"}

    refused = runner.invoke(app, close_args(prometheus.url, out, ledger, catalog), env={"COLUMNS": "250"})
    assert refused.exit_code == 1, refused.output
    assert "figures changed" in refused.output and "--correct" in refused.output
    assert "dc1/di-api cpu at prices from 2026-01-01T00:00:00Z" in refused.output
    compared = runner.invoke(
        app,
        [
            "invoice",
            "--period",
            PERIOD,
            "--prometheus",
            prometheus.url,
            "--out",
            str(out),
            "--ledger",
            ledger,
            "--catalog",
            str(catalog),
        ],
        env={"COLUMNS": "250"},
    )
    assert compared.exit_code == 1, compared.output
    assert "lines differ" in compared.output and "0.24 = " in compared.output and "0.30 = " in compared.output

    corrected = runner.invoke(app, close_args(prometheus.url, out, ledger, catalog, "--correct"))
    assert corrected.exit_code == 0, corrected.output
    assert {k: v for k, v in digest(out).items() if not k.startswith("corrections/")} == issued_files

    with Ledger(ledger) as book:
        issues = book.issues()
    assert [(i.sequence, i.kind) for i in issues] == [(0, "original"), (1, "correction")]
    assert issues[0] == original
    notes = {d.business_unit: d for d in issues[1].documents}
    assert set(notes) == changed
    for unit, note in notes.items():
        difference = new_totals[unit] - old_totals[unit]
        assert Decimal(note.total) == difference
        assert note.kind == ("credit_note" if difference < 0 else "debit_note")
        assert note.reference == f"RP-2026-10-{unit}" and note.number == f"RP-2026-10-{unit}-C1"
    assert issues[1].billing_period == CURRENT_MONTH

    note_pdfs = {name: content for name, content in issues[1].files.items() if isinstance(content, bytes)}
    assert set(note_pdfs) == {f"corrections/C1/{unit}.pdf" for unit in changed}
    for name, content in note_pdfs.items():
        assert content.startswith(b"%PDF-") and (out / name).read_bytes() == content, name
    restored = tmp_path / "restored"
    export_args = ["ledger", "export", "--ledger", ledger, "--from", CURRENT_MONTH, "--format", "files"]
    result = runner.invoke(app, [*export_args, "--out", str(restored)])
    assert result.exit_code == 0, result.output
    assert {name: (restored / PERIOD / name).read_bytes() for name in note_pdfs} == note_pdfs

    note_file = json.loads((out / "corrections" / "C1" / "data-insight.json").read_text(encoding="utf-8"))
    assert [d["number"] for d in note_file["chain"]] == ["RP-2026-10-data-insight", "RP-2026-10-data-insight-C1"]
    assert Decimal(note_file["after"]) == new_totals["data-insight"]
    html = (out / "corrections" / "C1" / "data-insight.html").read_text(encoding="utf-8")
    assert "Debit note RP-2026-10-data-insight-C1" in html and "RP-2026-10-data-insight" in html

    focus = list(csv.DictReader(io.StringIO((out / "corrections" / "C1" / "focus.csv").read_text(encoding="utf-8"))))
    assert {row["ChargeClass"] for row in focus} == {"Correction"}
    assert {row["BillingPeriodStart"][:7] for row in focus} == {CURRENT_MONTH}
    assert {row["ChargePeriodStart"][:7] for row in focus} == {PERIOD}
    for note in notes.values():
        billed = sum(Decimal(r["BilledCost"]) for r in focus if r["InvoiceId"] == note.number)
        assert billed == Decimal(note.total)

    again = runner.invoke(app, close_args(prometheus.url, out, ledger, catalog, "--correct"))
    assert again.exit_code == 0 and "nothing issued" in again.output
    invoice_args = ["invoice", "--period", PERIOD, "--prometheus", prometheus.url, "--out", str(out)]
    chained = runner.invoke(app, [*invoice_args, "--ledger", ledger, "--catalog", str(catalog)])
    assert chained.exit_code == 0 and "recomputed figures: identical" in chained.output
    total = format_money(new_totals["data-insight"], "CNY")  # thousands separated, as in every table and report
    debit = format_money(notes["data-insight"].total, "CNY")
    assert f"RP-2026-10-data-insight-C1 (debit note {debit}) → in force {total}" in chained.output
    exported = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--from", CURRENT_MONTH])
    assert exported.output == (out / "corrections" / "C1" / "focus.csv").read_text(encoding="utf-8")
    both = runner.invoke(app, ["ledger", "export", "--ledger", ledger])
    assert len(both.output.splitlines()) == len(focus) + len(list(csv.DictReader((out / "focus.csv").open()))) + 1
    # Month and correction rows, as exported, pass every check of the FOCUS 1.4 model; 1.3 on request.
    assert violations(both.output) == []
    old = runner.invoke(app, ["ledger", "export", "--ledger", ledger, "--focus-version", "1.3"])
    assert old.exit_code == 0 and old.output == relayout(both.output, "1.3")
    check_1_3_columns(list(csv.DictReader(io.StringIO(old.output))))

    raise_cpu_price(catalog, "0.24")  # back to the original: a second correction restores the issued figures
    back = runner.invoke(app, close_args(prometheus.url, out, ledger, catalog, "--correct"))
    assert back.exit_code == 0, back.output
    with Ledger(ledger) as book:
        second = book.issues()[2]
    for document in second.documents:
        assert Decimal(document.total) == old_totals[document.business_unit] - new_totals[document.business_unit]
        assert document.number.endswith("-C2")
    shown = runner.invoke(app, ["ledger", "show", "--ledger", ledger, "--period", PERIOD], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "RP-2026-10-data-insight-C2" in shown.output and "in force" in shown.output


# ------------------------------------------------------------------ two closes at once


def chargeback_process(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from chargeback.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_a_close_while_another_holds_the_ledger_fails_cleanly(
    prometheus: ScenarioServer, ledger: str, tmp_path: Path
) -> None:
    out = tmp_path / PERIOD
    with Ledger(ledger) as book, book.closing(PERIOD):
        process = chargeback_process(close_args(prometheus.url, out, ledger))
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stdout + stderr
    assert "being written by another chargeback close" in stderr and "nothing was written" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    with Ledger(ledger) as book:
        assert book.issues() == []


def test_two_closes_at_once_one_wins(prometheus: ScenarioServer, ledger: str, tmp_path: Path) -> None:
    Ledger(ledger).dispose()  # schema in place, so both processes race for the close lock only
    outs = [tmp_path / "a" / PERIOD, tmp_path / "b" / PERIOD]
    processes = [chargeback_process(close_args(prometheus.url, out, ledger)) for out in outs]
    began = time.monotonic()
    results = [(p.wait(timeout=180), *p.communicate()) for p in processes]
    assert time.monotonic() - began < 180
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], results
    loser = next(stderr for code, _, stderr in results if code == 2)
    assert "being written by another chargeback close" in loser
    winner = outs[[code for code, _, _ in results].index(0)]
    assert (winner / "focus.csv").is_file()
    assert not outs[[code for code, _, _ in results].index(2)].exists()
    with Ledger(ledger) as book:
        [issue] = book.issues()
    assert issue.files["focus.csv"] == (winner / "focus.csv").read_text(encoding="utf-8")


# ------------------------------------------------------------------ other reports read closed months


def sample_correction(amount: str) -> Issue:
    original = sample_issue()
    line = {**original.documents[0].lines[0], "amount": amount, "unit_price": "0.34", "billed_quantity": "10"}
    reversal = {**original.documents[0].lines[0], "entry": "reversal", "amount": "-2.40"}
    reversal |= {"usage_quantity": "-10.000000000", "billed_quantity": "-10.000000000"}
    total = text(Decimal(amount) - Decimal("2.40"))
    number = "RP-2026-09-data-insight-C1"
    content = json.dumps({"number": number, "currency": "CNY", "total": total})
    note = Document(
        number, "debit_note", "data-insight", "RP-2026-09-data-insight", "CNY", total, content, (reversal, line)
    )
    focus = f"BilledCost\n{total}\n"
    files = {"corrections/C1/focus.csv": focus, "corrections/C1/data-insight.json": content}
    return Issue(
        **{
            **original.__dict__,
            "sequence": 1,
            "kind": "correction",
            "content_hash": content_hash([note], focus),
            "documents": (note,),
            "files": files,
        }
    )


def test_finance_summary_compares_with_the_previous_month_as_closed(
    prometheus: ScenarioServer, ledger: str, tmp_path: Path
) -> None:
    with Ledger(ledger) as book, book.closing("2026-09") as connection:
        book.append(connection, sample_issue())
        book.append(connection, sample_correction("3.40"))
    out = tmp_path / PERIOD
    assert runner.invoke(app, close_args(prometheus.url, out, ledger)).exit_code == 0
    summary = (out / "finance-summary.html").read_text(encoding="utf-8")
    assert "Totals of 2026-09 against 2026-10" in summary
    invoice = (out / "invoices" / "data-insight.html").read_text(encoding="utf-8")
    assert "2026-09: CNY 3.40" in invoice  # the invoice of 2.40 plus its debit note of 1.00


def test_exporter_serves_closed_months_in_force(ledger: str) -> None:
    with Ledger(ledger) as book:
        with book.closing("2026-09") as connection:
            book.append(connection, sample_issue())
            book.append(connection, sample_correction("3.40"))
        families = {
            sample.name: sample
            for family in text_string_to_metric_families(generate_latest(ClosedMonthsCollector(book)).decode())
            for sample in family.samples
        }
    cost = families["resource_pool_closed_month_cost"]
    assert cost.labels == {"business_unit": "data-insight", "period": "2026-09", "currency": "CNY"}
    assert cost.value == 3.4
    assert families["resource_pool_closed_month_documents"].value == 2
    assert families["resource_pool_ledger_last_read_success"].value == 1
