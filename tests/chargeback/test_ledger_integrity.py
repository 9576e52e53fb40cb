"""A tampered ledger is refused by every read, and no stored path writes outside the export folder.

A month is closed for real (the closed-form scenario in Debian's Prometheus) into SQLite and a real
PostgreSQL; each test then tampers with a copy as someone with database access would — raw SQL, after
dropping the append-only triggers where they are in the way — and runs what finance runs: `ledger list`,
`show`, `export`, the exporter of `serve`, and `close` again.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.errors import LedgerError
from chargeback.ledger.reading import ClosedMonthsCollector
from chargeback.ledger.schema import APPEND_ONLY_TABLES
from chargeback.ledger.store import Issue, Ledger
from tests.support.postgres import LocalPostgres, ledger_target, local_postgres
from tests.support.prometheus import serve_scenario

pytestmark = pytest.mark.prometheus

runner = CliRunner(env={"COLUMNS": "250"})
PERIOD = "2026-10"
INVOICE = "RP-2026-10-data-insight"
TEMPLATE = "closed_template"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for server in serve_scenario(tmp_path_factory.mktemp("integrity-prometheus"), with_unpriced_storage=False):
        yield server.url


def close(url: str, ledger: str, out: Path) -> None:
    args = ["close", "--period", PERIOD, "--prometheus", url, "--out", str(out), "--ledger", ledger]
    result = runner.invoke(app, [*args, "--cluster", "dc1", "--cluster-label", "cluster"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def closed_sqlite(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("integrity-sqlite")
    close(prometheus, str(folder / "ledger.db"), folder / PERIOD)
    return folder / "ledger.db"


@pytest.fixture(scope="module")
def closed_postgres(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """A PostgreSQL whose database `closed_template` holds October 2026 as closed."""
    with local_postgres() as server:
        close(prometheus, server.create_database(TEMPLATE), tmp_path_factory.mktemp("pg") / PERIOD)
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A copy of a ledger holding October 2026 as closed."""
    if request.param == "sqlite":
        shutil.copyfile(request.getfixturevalue("closed_sqlite"), tmp_path / "ledger.db")
    return ledger_target(request.param, tmp_path, lambda: request.getfixturevalue("closed_postgres"), TEMPLATE)


def raw_sql(ledger: str, *statements: str, drop_triggers: bool = True) -> None:
    """Run `statements` on the ledger's database directly, first dropping the append-only triggers."""
    with Ledger(ledger) as book, book.engine.begin() as connection:
        if drop_triggers:
            for table in APPEND_ONLY_TABLES:
                if book.dialect == "sqlite":
                    for action in ("update", "delete"):
                        connection.exec_driver_sql(f"DROP TRIGGER {table}_no_{action}")
                else:
                    connection.exec_driver_sql(f"DROP TRIGGER {table}_append_only ON {table}")
        for statement in statements:
            connection.exec_driver_sql(statement)


def every_read(ledger: str, tmp_path: Path) -> list[str]:
    """What each reading command prints, all of which must refuse (exit 2)."""
    outputs = []
    for args in (
        ["ledger", "list", "--ledger", ledger],
        ["ledger", "show", "--ledger", ledger, "--period", PERIOD],
        ["ledger", "export", "--ledger", ledger, "--format", "focus"],
        ["ledger", "export", "--ledger", ledger, "--format", "files", "--out", str(tmp_path / "export")],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        outputs.append(result.output)
    assert not (tmp_path / "export").exists()
    with Ledger(ledger) as book:
        served = generate_latest(ClosedMonthsCollector(book)).decode()
    assert "resource_pool_ledger_last_read_success 0.0" in served
    assert "resource_pool_closed_month_cost{" not in served
    return outputs


def test_an_untouched_ledger_reads(ledger: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ledger", "show", "--ledger", ledger, "--period", PERIOD])
    assert result.exit_code == 0, result.output
    assert INVOICE in result.output


def test_an_edited_total_is_refused_naming_the_document(ledger: str, tmp_path: Path) -> None:
    raw_sql(ledger, f"UPDATE ledger_documents SET total = '1.00' WHERE number = '{INVOICE}'")
    for output in every_read(ledger, tmp_path):
        assert "2026-10 (sequence 0, original) was altered outside chargeback" in output
        assert f"document {INVOICE}: total 1.00 in the ledger row" in " ".join(output.split())


def test_an_edited_line_is_refused_by_the_content_hash(ledger: str, tmp_path: Path) -> None:
    raw_sql(ledger, "UPDATE ledger_lines SET amount = '0.00' WHERE id = (SELECT min(id) FROM ledger_lines)")
    for output in every_read(ledger, tmp_path):
        assert "no longer match the content hash recorded at issue" in " ".join(output.split())


def test_an_edited_report_and_its_hash_are_refused(ledger: str, tmp_path: Path) -> None:
    """Rewriting the FOCUS file and its sha256 together still breaks the issue's content hash."""
    forged = "BilledCost\n0.00\n"
    digest = hashlib.sha256(forged.encode()).hexdigest()
    raw_sql(ledger, f"UPDATE ledger_files SET content = '{forged}', sha256 = '{digest}' WHERE path = 'focus.csv'")
    for output in every_read(ledger, tmp_path):
        assert "content hash recorded at issue" in " ".join(output.split())


def test_a_close_on_a_tampered_month_stops(ledger: str, prometheus: str, tmp_path: Path) -> None:
    raw_sql(ledger, f"UPDATE ledger_documents SET total = '1.00' WHERE number = '{INVOICE}'")
    args = ["close", "--period", PERIOD, "--prometheus", prometheus, "--out", str(tmp_path / "again"), "--ledger"]
    result = runner.invoke(app, [*args, ledger, "--cluster", "dc1", "--cluster-label", "cluster"])
    assert result.exit_code == 2, result.output
    assert "altered outside chargeback" in result.output


def test_a_stored_path_outside_the_report_folder_is_never_written(ledger: str, tmp_path: Path) -> None:
    """The append-only triggers allow an INSERT: a file row `../…` with a right sha256 is refused on read."""
    content = "escaped\n"
    digest = hashlib.sha256(content.encode()).hexdigest()
    raw_sql(
        ledger,
        "INSERT INTO ledger_files (issue_id, path, sha256, content) "
        f"SELECT min(id), '../../escaped.txt', '{digest}', '{content}' FROM ledger_issues",
        drop_triggers=False,
    )
    for output in every_read(ledger, tmp_path):
        assert "'../../escaped.txt' is not a relative path inside the report folder" in " ".join(output.split())
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()


@pytest.mark.parametrize("path", ["../escaped.txt", "/tmp/escaped.txt", "invoices/../../x", "a\\..\\b", ""])
def test_chargeback_refuses_to_record_a_path_outside_the_report_folder(ledger: str, path: str) -> None:
    with Ledger(ledger) as book:
        [issue] = book.issues()
        forged = Issue(**{**issue.__dict__, "sequence": 9, "files": {**issue.files, path: "x"}})
        refused = pytest.raises(LedgerError, match="not a relative path inside the report folder")
        with refused, book.closing(PERIOD) as connection:
            book.append(connection, forged)
        assert len(book.issues()) == 1


def test_a_second_schema_revision_row_is_a_clear_error(ledger: str) -> None:
    raw_sql(ledger, "INSERT INTO alembic_version (version_num) VALUES ('0000_forged')", drop_triggers=False)
    result = runner.invoke(app, ["ledger", "list", "--ledger", ledger])
    assert result.exit_code == 2, result.output
    assert "alembic_version table holds 2 schema revisions" in result.output
    assert "0000_forged" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["../escaped.txt", "2026-10/../../escaped.txt", "/tmp/escaped-absolute.txt"])
def test_the_writer_never_writes_outside_its_folder(tmp_path: Path, name: str) -> None:
    """The last guard of `export --format files` and of correction notes, whatever path reaches it."""
    from chargeback.errors import OutputError
    from chargeback.outputs.writer import write_new_files

    out = tmp_path / "export"
    with pytest.raises(OutputError, match="would be written outside"):
        write_new_files(out, {"2026-10/focus.csv": "ok\n", name: "escaped\n"})
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped-absolute.txt").exists()
    assert not (out / "2026-10" / "focus.csv").exists()
