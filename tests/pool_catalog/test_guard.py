"""The one error guard of `pool`, `chargeback` (ledger commands included) and the demo: a user error is a
message and exit 2, Ctrl-C one line and exit 130, and a bug keeps its traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import chargeback.ledger_cli
import infra.cli
import pool_demo.demo
from chargeback.cli import app as chargeback_app
from chargeback.errors import LedgerError
from infra.cli import app as pool_app
from infra.errors import PoolError
from pool_catalog import CatalogError, Finding
from pool_catalog.guard import EXIT_ERROR, EXIT_INTERRUPTED
from pool_demo.demo import app as demo_app
from tests.support.catalog_edit import EXAMPLE_CATALOG

runner = CliRunner()

# Each command line, a command of it and the function inside that command the test makes fail.
COMMANDS = [
    ("pool", pool_app, ["validate", "--catalog", str(EXAMPLE_CATALOG)], infra.cli, "load_catalog"),
    ("chargeback", chargeback_app, ["ledger", "list", "--ledger", "x.db"], chargeback.ledger_cli, "open_existing"),
    ("demo", demo_app, ["--out", "out"], pool_demo.demo, "run_demo"),
]


@pytest.fixture(autouse=True)
def in_scratch_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a command would write lands in a scratch folder."""
    monkeypatch.chdir(tmp_path)


def raising(error: BaseException) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise error

    return fail


@pytest.mark.parametrize(("program", "app", "args", "module", "name"), COMMANDS)
def test_ctrl_c_is_one_line_and_exit_130(
    monkeypatch: pytest.MonkeyPatch, program: str, app: typer.Typer, args: list[str], module: Any, name: str
) -> None:
    monkeypatch.setattr(module, name, raising(KeyboardInterrupt()))
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_INTERRUPTED, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in result.output


@pytest.mark.parametrize(
    "error",
    [PoolError("--cluster 'dc9' is not in pool.yaml"), LedgerError("no ledger at x.db"), CatalogError([])],
)
@pytest.mark.parametrize(("program", "app", "args", "module", "name"), COMMANDS)
def test_every_project_error_is_a_message_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    program: str,
    app: typer.Typer,
    args: list[str],
    module: Any,
    name: str,
    error: Exception,
) -> None:
    monkeypatch.setattr(module, name, raising(error))
    result = runner.invoke(app, args, env={"COLUMNS": "250"})
    assert result.exit_code == EXIT_ERROR, result.output
    assert result.output.startswith("error ") and str(error).splitlines()[0] in result.output
    assert "Traceback" not in result.output


def test_a_catalog_error_prints_each_finding_on_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    findings = [Finding("catalog/pool.yaml", "clusters.0.name", "is empty", "name the cluster"),
                Finding("catalog/rates.yaml", "currency", "is not ISO 4217", "write e.g. EUR")]  # fmt: skip
    monkeypatch.setattr(chargeback.ledger_cli, "open_existing", raising(CatalogError(findings)))
    result = runner.invoke(chargeback_app, ["ledger", "list", "--ledger", "x.db"], env={"COLUMNS": "250"})
    assert result.exit_code == EXIT_ERROR
    assert result.output.splitlines() == [
        "error catalog/pool.yaml: clusters.0.name: is empty — name the cluster",
        "error catalog/rates.yaml: currency: is not ISO 4217 — write e.g. EUR",
    ]


@pytest.mark.parametrize(("program", "app", "args", "module", "name"), COMMANDS)
def test_a_bug_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch, program: str, app: typer.Typer, args: list[str], module: Any, name: str
) -> None:
    monkeypatch.setattr(module, name, raising(ZeroDivisionError("a bug")))
    result = runner.invoke(app, args)
    assert isinstance(result.exception, ZeroDivisionError), result.output
    assert result.exit_code == 1
