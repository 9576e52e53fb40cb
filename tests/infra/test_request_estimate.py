"""`pool request --history`: the budget compared with what a unit really pays, from an issued month's invoice.

History is the demo's October (`make demo`, run here into a temporary folder) and the golden month. Expected
figures are computed here from the invoice JSON in closed form — each line's billed quantity at its own unit
price, scaled to a 730-hour month — never by the code under test.
"""

from __future__ import annotations

import io
import json
import shutil
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from chargeback.period import Period
from infra.cli import app
from pool_catalog import load_catalog
from pool_catalog.estimate import MeasuredSection, UnitHistory, project
from pool_catalog.models import Quota
from pool_catalog.pricing import rate_version_for
from pool_catalog.quantities import GIB
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.prometheus import ScenarioServer

runner = CliRunner()
AT = "2026-11-01T00:00:00Z"
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "chargeback-2026-10"
REPORTS = ("--node-pool", "general", "--cpu", "8", "--memory", "32Gi", "--storage", "hot=500Gi")
REPORTS_COST = Decimal("2599.12")  # 8 × 730 × 0.24 + 32 × 730 × 0.032 + 500 × 0.90
HOURS = Decimal(730)
COLD_PRICE_NOW = Decimal("0.24")  # rates.yaml from 2026-10-15 (0.30 before): GiB-month
CENT = Decimal("0.01")
README = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").split())
"""The figures "For business units" quotes are the demo's: the tests below check them."""


def cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_EVEN)


def run(catalog: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["request", "--catalog", str(catalog), "--at", AT, *args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def october(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's 2026-10 report folder (invoices/<unit>.json), billed from a real Prometheus."""
    from pool_demo.demo import run_demo

    out = tmp_path_factory.mktemp("estimate-demo") / "out"
    result = run_demo(out, Period(2026, 10), EXAMPLE_CATALOG, Console(file=io.StringIO(), width=120))
    assert result is not None
    return out / "2026-10"


def invoice(folder: Path, unit: str) -> dict:
    return json.loads((folder / "invoices" / f"{unit}.json").read_text(encoding="utf-8"))


def line_month(line: dict, hours_seen: int) -> Decimal:
    """A line's billed quantity at the price in force now (cold storage's changed), scaled to 730 h."""
    price = Decimal(line["unit_price"])
    if (line["resource"], line["tier"]) == ("storage", "cold"):
        assert line["unit"] == "GiB-month"
        price = COLD_PRICE_NOW
    return Decimal(line["billed_quantity"]) * price * HOURS / hours_seen


def expected_month(document: dict) -> tuple[Decimal, Decimal]:
    """(expected monthly total, own namespaces' egress) from an invoice whose use stays within its quotas."""
    hours = document["coverage"]["hours_in_period"]
    total = egress = Decimal(0)
    for section in document["namespaces"]:
        seen = section["coverage"]["hours_seen"]
        assert seen == hours  # the demo has every namespace all month: one scale for all
        for line in section["lines"]:
            total += line_month(line, seen)
            if line["resource"] == "egress" and not section["shared_split"]:
                egress += line_month(line, seen)
    calls = Decimal(document.get("capabilities_consumed", {}).get("total", "0"))
    credits = Decimal(document.get("recovered_from_consumers", {}).get("total", "0"))
    return total + (calls + credits) * HOURS / hours, egress


@pytest.mark.prometheus
def test_community_services_egress_counts_and_its_new_namespace_is_refused(october: Path, tmp_path: Path) -> None:
    document = invoice(october, "community-services")
    # October: 21,103.82 of a 20,000 budget, most of it egress, which no quota bounds.
    assert Decimal(document["total"]) > Decimal(document["budget"]["monthly"]) == Decimal(20000)
    before, egress = expected_month(document)
    after = before + REPORTS_COST
    catalog = copy_example(tmp_path)
    code, output = run(
        catalog, "--unit", "community-services", "--namespace", "cs-reports", *REPORTS, "--history", str(october)
    )
    assert code == 1, output
    assert f"expected from 2026-10's use: {cents(before):,} → {cents(after):,} CNY (+2,599.12)" in output, output
    assert "compared: the expected figure" in output
    assert f"egress {cents(egress):,}" in output
    assert f"would cost {cents(after):,} CNY per month expected from 2026-10's use" in output
    assert f"above its budget 20,000.00 CNY by {cents(after - 20000):,} CNY" in output
    assert "counted at full quota (no use in 2026-10): cs-reports" in output
    assert f"Community Services is expected at {cents(before):,} → {cents(after):,} CNY" in README
    assert (
        f"egress alone {cents(egress):,}): the cs-reports request is refused, {cents(after - 20000):,} over" in README
    )
    # Without the history it was accepted at "75.2 %" of the budget: egress left out.
    code, output = run(catalog, "--unit", "community-services", "--namespace", "cs-reports", *REPORTS)
    assert code == 0 and "75.2 % of it; compared: the full-quota figure" in output


@pytest.mark.prometheus
def test_data_insight_is_accepted_on_its_expected_figure_and_refused_at_full_quota(
    october: Path, tmp_path: Path
) -> None:
    document = invoice(october, "data-insight")
    before, egress = expected_month(document)
    after = before + REPORTS_COST
    catalog = copy_example(tmp_path)
    args = ("--unit", "data-insight", "--namespace", "di-reports", *REPORTS, "--history", str(october))
    code, output = run(catalog, *args)
    assert code == 0, output
    assert f"expected from 2026-10's use: {cents(before):,} → {cents(after):,} CNY (+2,599.12)" in output
    assert f"budget 60,000.00 CNY ({after / 60000 * 100:.1f} % of it; compared: the expected figure" in output
    assert "ACCEPTED" in output
    assert f"is expected at {cents(before):,} → {cents(after):,} ({after / 600:.1f} %)" in README
    # The full-quota figure: 61,121.80 of quotas (as without history) plus what no quota bounds, from October.
    hours = document["coverage"]["hours_in_period"]
    shared = sum(
        (line_month(line, hours) for s in document["namespaces"] if s["shared_split"] for line in s["lines"]),
        Decimal(0),
    )
    calls = Decimal(document["capabilities_consumed"]["total"]) * HOURS / hours
    at_quota = Decimal("61121.80") + egress + shared + calls
    code, output = run(catalog, *args, "--budget-basis", "quota")
    assert code == 1, output
    assert f"would cost {cents(at_quota):,} CNY per month at full quota, above its budget 60,000.00 CNY" in output
    assert "compared: the full-quota figure" in output
    assert f"`--budget-basis quota` compares the full-quota figure instead (Data Insight: {cents(at_quota):,}" in README


@pytest.mark.prometheus
def test_json_carries_both_figures_and_the_basis(october: Path, tmp_path: Path) -> None:
    document = invoice(october, "data-insight")
    before, egress = expected_month(document)
    args = ["request", "--catalog", str(copy_example(tmp_path)), "--at", AT, "--json", "--unit", "data-insight"]
    result = runner.invoke(app, [*args, "--namespace", "di-reports", *REPORTS, "--history", str(october)])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    estimate = decision["estimate"]
    assert decision["budget_basis"] == "expected"
    assert estimate["expected_before"] == str(cents(before))
    assert estimate["expected_after"] == decision["budget_compared"] == str(cents(before + REPORTS_COST))
    assert estimate["carried"]["usage_billed"] == {"egress": str(cents(egress))}
    assert estimate["history"] == {"file": str(october / "invoices" / "data-insight.json"), "period": "2026-10"}
    new = next(ns for ns in estimate["namespaces"] if ns["namespace"] == "di-reports")
    assert new == {
        "cluster": "dc1",
        "namespace": "di-reports",
        "expected": "2599.12",
        "at_full_quota": "2599.12",
        "measured": False,
    }


@pytest.mark.prometheus
def test_quota_a_change_adds_counts_at_full_use(october: Path, tmp_path: Path) -> None:
    """di-api used far less than its 24 cores in October: 8 more cores add 8 × 730 × 0.24 = 1,401.60."""
    document = invoice(october, "data-insight")
    before, _ = expected_month(document)
    code, output = run(
        copy_example(tmp_path),
        "--unit",
        "data-insight",
        "--namespace",
        "di-api",
        "--cpu",
        "32",
        "--history",
        str(october),
    )
    assert code == 0, output
    assert f"{cents(before):,} → {cents(before + Decimal('1401.60')):,} CNY (+1,401.60)" in output


# ---------------------------------------------------------------- the pure projection, on the golden month


def golden_history(unit: str) -> UnitHistory:
    from infra.request.history import read_history

    catalog = load_catalog(EXAMPLE_CATALOG)
    return read_history(GOLDEN, catalog, catalog.unit(unit))


def test_a_namespace_not_seen_in_the_month_is_counted_at_full_quota() -> None:
    """Golden October: cs-miniapp-staging has no hours: expected = full quota (8 cores, 32Gi, 200Gi hot)."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    version = rate_version_for(catalog.rates)
    unit = catalog.unit("community-services")
    estimate = project([("dc1", ns) for ns in unit.namespaces], version, golden_history("community-services"))
    staging = next(ns for ns in estimate.namespaces if ns.namespace == "cs-miniapp-staging")
    full = 8 * HOURS * Decimal("0.24") + 32 * HOURS * Decimal("0.032") + 200 * Decimal("0.90")
    assert (staging.measured, staging.expected, staging.at_quota) == (False, full, full)
    miniapp = next(ns for ns in estimate.namespaces if ns.namespace == "cs-miniapp")
    assert miniapp.measured and miniapp.expected < miniapp.at_quota


def test_use_above_the_quota_is_capped_at_what_the_limits_allow() -> None:
    """A namespace's use can't exceed its limits: 50 cores measured under a 16-core limit count as 16."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    version = rate_version_for(catalog.rates)
    namespace = (
        catalog.unit("platform")
        .namespaces[0]
        .model_copy(update={"quota": Quota(cpu=8, memory=GIB, limits_cpu=16, limits_memory=GIB)})
    )
    section = MeasuredSection(
        "dc1", namespace.name, 730, {("cpu", ""): Decimal(50 * 730), ("memory", ""): Decimal(730)}
    )
    history = UnitHistory("h.json", "2026-10", 730, (section,), (), Decimal(0))
    estimate = project([("dc1", namespace)], version, history)
    assert estimate.expected == 16 * HOURS * Decimal("0.24") + HOURS * Decimal("0.032")
    # …and a request that lowers the quota lowers the ceiling: 4 cores, limit 4.
    smaller = namespace.model_copy(update={"quota": Quota(cpu=4, memory=GIB, limits_cpu=4, limits_memory=GIB)})
    lowered = project([("dc1", smaller)], version, history, {("dc1", namespace.name): namespace.quota})
    assert lowered.expected == 4 * HOURS * Decimal("0.24") + HOURS * Decimal("0.032")


# ---------------------------------------------------------------- bad history


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def ask(catalog: Path, history: Path, *extra: str) -> tuple[int, str]:
    return run(
        catalog,
        "--unit",
        "community-services",
        "--namespace",
        "cs-reports",
        *REPORTS,
        "--history",
        str(history),
        *extra,
    )


def golden_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "2026-10"
    (folder / "invoices").mkdir(parents=True)
    for unit in ("community-services", "platform"):
        shutil.copy(GOLDEN / "invoices" / f"{unit}.json", folder / "invoices")
    return folder


def test_the_golden_month_is_a_valid_history(catalog: Path, tmp_path: Path) -> None:
    code, output = ask(catalog, golden_copy(tmp_path))
    assert code == 0 and "expected from 2026-10's use" in output, output


def test_a_missing_history_exits_2_naming_it(catalog: Path, tmp_path: Path) -> None:
    code, output = ask(catalog, tmp_path / "nowhere")
    assert code == 2 and f"--history {tmp_path / 'nowhere'}: no such file or folder" in output
    assert "output folder of a `chargeback invoice` run" in output


def test_a_folder_without_the_units_invoice_exits_2(catalog: Path, tmp_path: Path) -> None:
    folder = golden_copy(tmp_path)
    (folder / "invoices" / "community-services.json").unlink()
    code, output = ask(catalog, folder)
    assert code == 2 and "holds no invoice of unit 'community-services' (invoices/community-services.json)" in output


def test_another_units_invoice_exits_2(catalog: Path, tmp_path: Path) -> None:
    file = golden_copy(tmp_path) / "invoices" / "platform.json"
    code, output = ask(catalog, file)
    assert code == 2 and f"--history {file}: is the invoice of unit 'platform', not 'community-services'" in output


def test_an_invoice_of_another_catalog_exits_2(catalog: Path, tmp_path: Path) -> None:
    edit_yaml(catalog / "rates.yaml", lambda doc: doc.__setitem__("currency", "EUR"))
    code, output = ask(catalog, golden_copy(tmp_path))
    assert code == 2, output
    assert "was issued from another catalog (currency 'CNY' (catalog: 'EUR'))" in output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"invoice_number": ', "is not valid JSON (line 1, column 20"),
        (b"\x80 not text", "is not UTF-8 text"),
        (b'{"period": "2026-10"}', "is not an invoice document (invoice_number: Field required"),
        (b"[]", "is not an invoice document"),
    ],
)
def test_an_unreadable_or_invalid_history_file_exits_2(
    catalog: Path, tmp_path: Path, content: bytes, message: str
) -> None:
    file = tmp_path / "community-services.json"
    file.write_bytes(content)
    code, output = ask(catalog, file)
    assert code == 2 and f"--history {file}: {message}" in output, output
    assert "give --history the output folder" in output


def test_without_history_json_compares_the_full_quota_and_has_no_expected_figure(catalog: Path) -> None:
    args = ["request", "--catalog", str(catalog), "--at", AT, "--json", "--unit", "community-services"]
    result = runner.invoke(app, [*args, "--namespace", "cs-reports", *REPORTS])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert (decision["budget_basis"], decision["budget_compared"]) == ("quota", "15048.16")
    estimate = decision["estimate"]
    assert estimate["history"] is None and estimate["expected_after"] is None
    assert estimate["at_full_quota_after"] == decision["unit_monthly_after"] == "15048.16"


def test_budget_basis_is_checked(catalog: Path, tmp_path: Path) -> None:
    code, output = ask(catalog, golden_copy(tmp_path), "--budget-basis", "mean")
    assert code == 2 and "--budget-basis 'mean': write expected" in output
    code, output = run(
        catalog, "--unit", "community-services", "--namespace", "cs-reports", *REPORTS, "--budget-basis", "expected"
    )
    assert code == 2 and "--budget-basis expected needs --history" in output


# ---------------------------------------------------------------- an issued month from the ledger


@pytest.mark.prometheus
def test_an_issued_month_exported_from_the_ledger_is_a_history(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    """`chargeback close` issues October into a SQLite ledger; `ledger export --format files` gives it back as
    a folder that --history reads, with the same figures as the folder the close wrote."""
    from chargeback.cli import app as chargeback

    out, ledger, restored = tmp_path / "reports" / "2026-10", str(tmp_path / "ledger.db"), tmp_path / "restored"
    closing = ["close", "--period", "2026-10", "--prometheus", priced_prometheus.url, "--out", str(out)]
    result = runner.invoke(chargeback, [*closing, "--ledger", ledger])
    assert result.exit_code == 0, result.output
    export = ["ledger", "export", "--ledger", ledger, "--format", "files", "--out", str(restored)]
    result = runner.invoke(chargeback, export)
    assert result.exit_code == 0, result.output
    catalog = copy_example(tmp_path)
    code, from_ledger = ask(catalog, restored / "2026-10")
    assert code == 0 and "expected from 2026-10's use" in from_ledger, from_ledger
    code, from_close = ask(catalog, out)
    assert from_ledger.replace(str(restored / "2026-10"), str(out)) == from_close
