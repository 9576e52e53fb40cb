"""`chargeback close` guards: the materiality threshold of corrections, the refusal of a catalog with
uncommitted changes, and the byte-order mark of the ledger's lines export. Against the closed-form scenario
in a real Prometheus (`priced_prometheus`) and a SQLite ledger.

Lowering CPU from 0.24 to 0.221 per core-hour for October moves community-services by -0.21, unallocated by
-0.02 and data-insight by -15.87 (the scenario's core-hours × the price change, rounded per line).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.ledger.store import Ledger
from pool_catalog import load_catalog
from pool_catalog.errors import CatalogError
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.prometheus import ScenarioServer

pytestmark = pytest.mark.prometheus

runner = CliRunner(env={"COLUMNS": "250"})
PERIOD = "2026-10"


def close(url: str, catalog: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    args = ["close", "--period", PERIOD, "--prometheus", url, "--catalog", str(catalog)]
    args += ["--out", str(tmp_path / "reports" / PERIOD), "--ledger", str(tmp_path / "ledger.db"), *extra]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def set_materiality(catalog: Path, amount: str) -> None:
    edit_yaml(catalog / "rates.yaml", lambda doc: doc.__setitem__("corrections", {"materiality": amount}))


def lower_cpu_price(catalog: Path) -> None:
    def change(doc) -> None:
        doc["versions"][0]["cpu"]["price"] = "0.221"

    edit_yaml(catalog / "rates.yaml", change)


def test_changes_below_the_threshold_get_no_note_and_the_decision_is_recorded(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    catalog = copy_example(tmp_path)
    set_materiality(catalog, "1.00")
    assert close(priced_prometheus.url, catalog, tmp_path)[0] == 0
    lower_cpu_price(catalog)

    code, output = close(priced_prometheus.url, catalog, tmp_path)
    assert code == 1, output  # without --correct: the differences, and which units would get no note
    assert "below the materiality threshold of CNY 1.00" in output and "community-services: CNY -0.21" in output

    code, output = close(priced_prometheus.url, catalog, tmp_path, "--correct")
    assert code == 0, output
    assert "RP-2026-10-data-insight-C1" in output and "CNY -15.87" in output
    assert "community-services: CNY -0.21" in output and "unallocated: CNY -0.02" in output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        original, correction = book.issues()
    assert [(d.business_unit, d.kind, d.total) for d in correction.documents] == [
        ("data-insight", "credit_note", "-15.87")
    ]
    decision = correction.fingerprint["corrections"]
    assert decision["materiality"] == "1.00"
    assert [(b["business_unit"], b["change"]) for b in decision["below"]] == [
        ("community-services", "-0.21"),
        ("unallocated", "-0.02"),
    ]
    assert {d.business_unit: d.total for d in original.documents}["community-services"] == "10.64"

    # Again: only the units below the threshold still differ, and that decision is already recorded.
    code, output = close(priced_prometheus.url, catalog, tmp_path, "--correct")
    assert code == 0, output
    assert "no correction note issued; the decision was already recorded" in output and "as #1" in output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        assert len(book.issues()) == 2


def test_every_change_below_the_threshold_issues_nothing_but_records_it(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    catalog = copy_example(tmp_path)
    set_materiality(catalog, "20")  # written as a plain number: shown and recorded as money, 20.00
    assert close(priced_prometheus.url, catalog, tmp_path)[0] == 0
    lower_cpu_price(catalog)
    code, output = close(priced_prometheus.url, catalog, tmp_path, "--correct")
    assert code == 0, output
    assert "data-insight: CNY -15.87" in output and "recorded in ledger" in output and "as #1" in output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        _, record = book.issues()
    assert record.documents == () and len(record.fingerprint["corrections"]["below"]) == 3
    exported = runner.invoke(app, ["ledger", "export", "--ledger", str(tmp_path / "ledger.db"), "--format", "focus"])
    assert exported.exit_code == 0, exported.output
    shown = runner.invoke(app, ["ledger", "show", "--ledger", str(tmp_path / "ledger.db"), "--period", PERIOD])
    assert "below materiality 20.00, no note: data-insight -15.87" in shown.output


def test_without_a_threshold_a_cent_change_gets_its_note(priced_prometheus: ScenarioServer, tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    assert close(priced_prometheus.url, catalog, tmp_path)[0] == 0
    lower_cpu_price(catalog)
    code, output = close(priced_prometheus.url, catalog, tmp_path, "--correct")
    assert code == 0, output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        _, correction = book.issues()
    totals = {d.business_unit: Decimal(d.total) for d in correction.documents}
    assert totals == {
        "community-services": Decimal("-0.21"),
        "data-insight": Decimal("-15.87"),
        "unallocated": -1 * Decimal("0.02"),
    }
    assert correction.fingerprint["corrections"] == {"materiality": "0.00", "below": []}


@pytest.mark.parametrize(
    ("amount", "message"),
    [("-1", "greater than or equal to 0"), ("0.005", "finer than CNY's smallest amount (0.01)")],
)
def test_materiality_must_be_non_negative_money_of_the_currency(tmp_path: Path, amount: str, message: str) -> None:
    catalog = copy_example(tmp_path)
    set_materiality(catalog, amount)
    with pytest.raises(CatalogError, match=r"rates\.yaml:\d+: corrections\.materiality: .*" + re.escape(message)):
        load_catalog(catalog)


def git(repo: Path, *args: str) -> str:
    command = ["git", "-C", str(repo), "-c", "user.name=Finance", "-c", "user.email=finops@example.com", *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def test_a_catalog_with_uncommitted_changes_is_refused_unless_allowed(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE_CATALOG, repo / "catalog")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "catalog")
    catalog = repo / "catalog"
    lower_cpu_price(catalog)

    code, output = close(priced_prometheus.url, catalog, tmp_path)
    assert code == 2, output
    assert "uncommitted changes (catalog/rates.yaml)" in output and "--allow-dirty-catalog" in output
    assert not (tmp_path / "ledger.db").exists()  # refused before the ledger is opened

    code, output = close(priced_prometheus.url, catalog, tmp_path, "--allow-dirty-catalog")
    assert code == 0, output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        [issue] = book.issues()
    state = issue.fingerprint["catalog"]["git"]
    assert state["dirty"] is True and state["changed"] == ["catalog/rates.yaml"]
    assert state["commit"] == git(repo, "rev-parse", "HEAD").strip()

    # Committed (the price back at 0.24), the --correct runs without the flag and records a clean checkout.
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["versions"][0]["cpu"].__setitem__("price", "0.24"))
    git(repo, "commit", "-qam", "cpu back at 0.24")
    code, output = close(priced_prometheus.url, catalog, tmp_path, "--correct")
    assert code == 0, output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        state = book.issues()[-1].fingerprint["catalog"]["git"]
    assert state == {"commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": False}


def test_a_catalog_outside_git_is_closed_and_recorded_as_such(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    catalog = copy_example(tmp_path)  # under /tmp: in no git checkout
    code, output = close(priced_prometheus.url, catalog, tmp_path)
    assert code == 0, output
    with Ledger(str(tmp_path / "ledger.db")) as book:
        [issue] = book.issues()
    assert issue.fingerprint["catalog"]["git"] is None
    shown = runner.invoke(app, ["ledger", "show", "--ledger", str(tmp_path / "ledger.db"), "--period", PERIOD])
    assert "(not under version control)" in shown.output


@pytest.mark.parametrize("bom", [True, False])
def test_ledger_lines_export_follows_the_issued_line_items(
    priced_prometheus: ScenarioServer, tmp_path: Path, bom: bool
) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "rates.yaml", lambda doc: doc.__setitem__("csv_bom", bom))
    assert close(priced_prometheus.url, catalog, tmp_path)[0] == 0
    issued = (tmp_path / "reports" / PERIOD / "line_items.csv").read_bytes()
    exported = runner.invoke(app, ["ledger", "export", "--ledger", str(tmp_path / "ledger.db"), "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    assert issued.startswith(codecs.BOM_UTF8) is bom
    assert exported.stdout_bytes.startswith(codecs.BOM_UTF8) is bom
    rows = list(csv.DictReader(io.StringIO(exported.stdout_bytes.decode("utf-8-sig"))))
    assert rows[0]["period"] == PERIOD  # the first column's name reads clean either way
    focus = runner.invoke(app, ["ledger", "export", "--ledger", str(tmp_path / "ledger.db"), "--format", "focus"])
    assert focus.stdout_bytes == (tmp_path / "reports" / PERIOD / "focus.csv").read_bytes()
    assert not focus.stdout_bytes.startswith(codecs.BOM_UTF8)
