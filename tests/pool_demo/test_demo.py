"""`make demo` end to end: the example catalog, two generated months, a real Prometheus, the reports.

The demo runs twice into the same directory (once through the command line, once in-process); the
tests read what both runs wrote. Expected values come from the catalog, the rate card and the
demo's load model in closed form, never from the run under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from chargeback.errors import LocalPrometheusError
from chargeback.ledger.store import Ledger
from chargeback.period import Period
from infra import check
from infra.check import Violation
from pool_catalog import load_catalog
from pool_demo import local_prometheus
from pool_demo.demo import POLICY_FAILED, DemoResult, app, run_demo
from pool_demo.demo_business import DEMO_BUSINESS, counter_samples
from pool_demo.demo_calls import expected_calls
from pool_demo.demo_usage import BUSINESS_DAY, DEFAULT_SEED, LOCAL_OFFSET_HOURS, demo_scenarios
from tests.support.focus_model import violations

pytestmark = pytest.mark.prometheus

CATALOG = Path(__file__).resolve().parents[2] / "catalog"
PERIOD = Period(2026, 10)
SEPTEMBER = Period(2026, 9)
CPU_PRICE = Decimal("0.24")  # rates.yaml, core-hour, unchanged all year


@dataclass(frozen=True)
class DemoRuns:
    out: Path
    cli_exit_code: int
    cli_output: str
    cli_seconds: float
    first: dict[str, str]
    """Relative path → sha256 after the first run."""
    second: dict[str, str]
    result: DemoResult
    """What the second (in-process) run returned."""


def digest(directory: Path) -> dict[str, str]:
    """Relative path → sha256 of every file a reader sees (the published reports through their links, and
    each period's manifest; the hidden run folders are named per run)."""
    paths = [p for p in directory.rglob("*") if p.is_file() and ".reports" not in p.parts]
    paths += [state / "current" / "manifest.json" for state in directory.rglob(".reports")]
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(paths)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    out = tmp_path_factory.mktemp("demo") / "out"
    began = time.perf_counter()
    cli = CliRunner().invoke(app, ["--out", str(out), "--catalog", str(CATALOG), "--period", PERIOD.label])
    seconds = time.perf_counter() - began
    assert cli.exit_code == 0, cli.output
    first = digest(out)
    result = run_demo(out, PERIOD, CATALOG, Console(file=io.StringIO(), width=120))
    assert result is not None
    return DemoRuns(out, cli.exit_code, cli.output, seconds, first, digest(out), result)


def invoice(runs: DemoRuns, period: Period, unit: str) -> dict:
    return json.loads((runs.out / period.label / "invoices" / f"{unit}.json").read_text(encoding="utf-8"))


def test_rerun_gives_byte_identical_files_and_leaves_no_work_files(runs: DemoRuns) -> None:
    assert runs.first == runs.second
    names = set(runs.first)
    for period in (SEPTEMBER, PERIOD):
        for name in ("finance-summary.html", "usage.csv", "line_items.csv", "idle.csv", "focus.csv"):
            assert f"{period.label}/{name}" in names
        # The demo's FOCUS file (capability rows included) passes every check of the FOCUS 1.4 model.
        assert violations((runs.out / period.label / "focus.csv").read_text(encoding="utf-8")) == []
        for unit in ("community-services", "data-insight", "edge-security", "platform"):
            assert f"{period.label}/invoices/{unit}.json" in names
            assert f"{period.label}/invoices/{unit}.html" in names
    assert any(name.startswith("manifests/dc1/") for name in names)
    # The OpenMetrics files, the TSDB and Prometheus' log live in a work directory that is removed.
    assert sorted(p.name for p in runs.out.iterdir()) == ["2026-09", "2026-10", "issued", "ledger.db", "manifests"]


def test_the_command_closes_both_months_into_the_ledger_with_the_invoices_figures(runs: DemoRuns) -> None:
    """The portal reads issued months: `make demo` closes both into out/demo/ledger.db, same figures."""
    with Ledger(runs.out / "ledger.db") as book:
        issues = book.issues()
    assert [(i.period, i.kind) for i in issues] == [(SEPTEMBER.label, "original"), (PERIOD.label, "original")]
    for issue in issues:
        for document in issue.documents:
            billed = json.loads(
                (runs.out / issue.period / "invoices" / f"{document.business_unit}.json").read_text(encoding="utf-8")
            )
            assert document.total == billed["total"], (issue.period, document.business_unit)


def test_summary_table_shows_the_invoice_figures(runs: DemoRuns) -> None:
    assert len(runs.result.summary) == 4
    for row in runs.result.summary:
        document = invoice(runs, PERIOD, row.unit_id)
        assert row.cost == Decimal(document["total"])
        assert row.budget == Decimal(document["budget"]["monthly"])
        assert row.budget_used == Decimal(document["budget"]["used"])
        assert row.idle_unit_pays == Decimal(document["idle"]["unit_pays"])
        assert row.idle_capacity_held == Decimal(document["idle"]["capacity_held"])
        # The printed table (80 columns) carries the same figures.
        line = next(line for line in runs.cli_output.splitlines() if line.startswith(row.unit_id))
        assert f"{row.cost:,.2f}" in line
        assert f"{row.budget:,.2f}" in line
        assert f"{row.budget_used * 100:.1f} %" in line
        assert f"{row.idle_capacity_held:,.2f}" in line
        assert row.idle_unit_pays == 0  # usage billing: the "idle paid" column is left out, the caption says why
    assert "No idle paid column: 0.00 for every unit, as usage billing bills use" in " ".join(runs.cli_output.split())
    assert "finance-summary.html" in runs.cli_output
    assert "Traceback" not in runs.cli_output


def test_only_community_services_goes_over_budget_and_only_in_october(runs: DemoRuns) -> None:
    for row in runs.result.summary:
        over = row.budget_used is not None and row.budget_used > 1
        assert over == (row.unit_id == "community-services"), row
    september = invoice(runs, SEPTEMBER, "community-services")
    assert Decimal(september["budget"]["used"]) < 1
    line = next(line for line in runs.cli_output.splitlines() if line.startswith("community-services"))
    assert "%!" in line  # marked over budget


def test_utilization_is_price_weighted_use_over_quota(runs: DemoRuns) -> None:
    usage = runs.result.runs[PERIOD.label].chargeback.usage
    testbed = usage[usage["namespace"] == "es-testbed"]
    cpu = testbed[testbed["resource"] == "cpu"]
    memory = testbed[testbed["resource"] == "memory"]
    used = cpu["used"].sum() * 0.24 + memory["used"].sum() * 0.032
    quota = 48 * 744 * 0.24 + 192 * 744 * 0.032  # catalog quota × hours of October × prices
    row = next(r for r in runs.result.summary if r.unit_id == "edge-security")
    assert float(row.utilization) == pytest.approx(used / quota, abs=1e-4)


def test_edge_security_test_bench_is_flagged_idle(runs: DemoRuns) -> None:
    idle = pd.read_csv(runs.out / PERIOD.label / "idle.csv", keep_default_na=False, encoding="utf-8-sig")
    rows = idle[
        (idle["namespace"] == "es-testbed") & (idle["resource"] == "cpu") & (idle["reason"] == "quota-underused")
    ]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["allocated"] == 48
    assert row["utilization"] < 0.01
    # Nearly all of 48 cores × 744 h × 0.24 CNY is capacity held from the pool; usage billing bills none of it.
    assert Decimal(str(row["capacity_held"])) > Decimal("0.98") * 48 * 744 * CPU_PRICE
    assert Decimal(str(row["unit_pays"])) == 0
    document = invoice(runs, PERIOD, "edge-security")
    assert Decimal(document["idle"]["capacity_held"]) > 10 * Decimal(document["total"])
    assert Decimal(document["idle"]["unit_pays"]) == 0


def test_right_size_advice_never_goes_below_the_peak_of_the_pods_requests(runs: DemoRuns) -> None:
    idle = pd.read_csv(runs.out / PERIOD.label / "idle.csv", keep_default_na=False, dtype=str)
    usage = runs.result.runs[PERIOD.label].chargeback.usage

    def quota_row(namespace: str, resource: str) -> pd.Series:
        rows = idle[(idle["namespace"] == namespace) & (idle["resource"] == resource) & (idle["basis"] == "quota")]
        assert len(rows) == 1, (namespace, resource)
        return rows.iloc[0]

    # es-testbed's weekly bench run requests 25 cores (demo_usage: 0.02 × 48 cores steady, the bench pods on
    # top) and uses about 20: hourly averages told 0.2 cores, a quota that would refuse the bench.
    testbed = quota_row("es-testbed", "cpu")
    assert Decimal(testbed["recommended_allocation"]) >= 25
    assert "floor = peak requests" in testbed["advice_basis"]
    # di-api: 6 replicas × 2 cores requested (0.5 of its 24-core quota), one more pod during a rollout.
    api = quota_row("di-api", "cpu")
    assert Decimal(api["recommended_allocation"]) >= Decimal(api["requests_peak"]) >= 12
    # Every quota row: advice ≥ the peak of the requests the usage frame measured, and ≥ the peak use.
    peaks = (
        usage[usage["resource"].isin(["cpu", "memory", "gpu", "storage"])]
        .assign(floor=lambda f: np.fmax(f["requested"], f["requested_peak"]))
        .groupby(["namespace", "resource", "tier"], observed=True)["floor"]
        .max()
    )
    advised = idle[idle["recommended_allocation"] != ""]
    assert len(advised) == len(idle)  # a month of history everywhere: advice on every row
    for row in advised.to_dict("records"):
        recommended = Decimal(row["recommended_allocation"])
        assert recommended >= Decimal(row["used_peak"]), row
        if row["basis"] == "quota":
            floor = Decimal(repr(float(peaks[(row["namespace"], row["resource"], row["tier"])])))
            assert Decimal(row["requests_peak"]) == floor.quantize(Decimal("0.0001")), row
            assert recommended >= floor, row


def test_idle_csv_sums_to_the_invoices_and_the_finance_summary_to_the_cent(runs: DemoRuns) -> None:
    for period in (SEPTEMBER, PERIOD):
        idle = pd.read_csv(runs.out / period.label / "idle.csv", keep_default_na=False, dtype=str)
        summary = runs.result.runs[period.label].chargeback.finance_summary.model_dump(mode="json")
        html = (runs.out / period.label / "finance-summary.html").read_text(encoding="utf-8")
        for unit in summary["units"]:
            rows = idle[idle["business_unit"] == unit["id"]]
            document = invoice(runs, period, unit["id"])
            for column in ("capacity_held", "unit_pays"):
                csv_sum = sum((Decimal(v) for v in rows[column]), Decimal("0.00"))
                assert csv_sum == Decimal(document["idle"][column]) == Decimal(unit[f"idle_{column}"]), (unit, column)
        for column in ("capacity_held", "unit_pays"):
            total = sum((Decimal(v) for v in idle[column]), Decimal("0.00"))
            assert total == Decimal(summary["total"][f"idle_{column}"]), column
            assert f"{total:,.2f}" in html, column
    # The quota row and the requests row of one allocation are never added: the requests row holds 0.
    october = pd.read_csv(runs.out / PERIOD.label / "idle.csv", keep_default_na=False, dtype=str)
    quotas = october[october["basis"] == "quota"]
    quota_keys = set(zip(quotas["namespace"], quotas["resource"], quotas["tier"], strict=True))
    for row in october[october["basis"] == "requests"].to_dict("records"):
        if (row["namespace"], row["resource"], row["tier"]) in quota_keys:
            assert Decimal(row["capacity_held"]) == 0 and Decimal(row["idle_value"]) > 0, row


def hourly(runs: DemoRuns, namespace: str, resource: str) -> pd.Series:
    usage = runs.result.runs[PERIOD.label].chargeback.usage
    rows = usage[(usage["namespace"] == namespace) & (usage["resource"] == resource)]
    return rows.set_index("hour")["used"].sort_index()


def test_di_api_cpu_follows_its_load_hour_by_hour(runs: DemoRuns) -> None:
    """Six replicas of 1.8 cores (quota 24 × 50 % ÷ 6 × 90 %) times the load at each hour's second scrape."""
    cpu = hourly(runs, "di-api", "cpu")
    assert len(cpu) == PERIOD.hours
    catalog = load_catalog(CATALOG)
    scenario = demo_scenarios(catalog, SEPTEMBER.start, PERIOD.end)[0]
    pod = next(p for p in scenario.pods if p.namespace == "di-api")
    assert pod.containers[0].cpu_cores == 1.8
    # Two scrapes an hour (:00:07, :30:07): `increase` extrapolates the second half-hour to the whole hour.
    second_scrape = np.array([hour.timestamp() + 1807 for hour in cpu.index])
    expected = 6 * 1.8 * pod.load(second_scrape)
    np.testing.assert_allclose(cpu.to_numpy(), expected, rtol=1e-3)


def test_di_api_has_a_daily_and_weekly_rhythm(runs: DemoRuns) -> None:
    cpu = hourly(runs, "di-api", "cpu")
    local = cpu.index + pd.Timedelta(hours=LOCAL_OFFSET_HOURS)
    weekday = local.day_of_week < 5
    office = weekday & local.hour.isin(range(10, 17))
    night = weekday & local.hour.isin(range(1, 5))
    # Closed form from the office-hours profile (load at half past each hour), noise averages out.
    curve = np.interp(np.arange(24) + 0.5, np.arange(25), np.append(BUSINESS_DAY, BUSINESS_DAY[0]))
    expected_ratio = curve[10:17].mean() / curve[1:5].mean()
    assert cpu[office].mean() / cpu[night].mean() == pytest.approx(expected_ratio, rel=0.05)
    weekend_days = cpu[local.day_of_week >= 5].mean() / cpu[weekday].mean()
    assert weekend_days == pytest.approx(0.3, rel=0.05)


def test_di_batch_runs_nightly_jobs_with_gpus(runs: DemoRuns) -> None:
    pods = hourly(runs, "di-batch", "pods")
    gpus = hourly(runs, "di-batch", "gpu")
    local_hour = (pods.index + pd.Timedelta(hours=LOCAL_OFFSET_HOURS)).hour
    # Six ETL pods join the long-running one and the two training pods between 01:00 and 06:00 local …
    assert pods[local_hour == 3].min() >= 8
    # … and none runs at 19:00 local, before the night's training starts.
    assert pods[local_hour == 19].max() <= 3
    assert gpus.max() == 2  # the quota, never exceeded
    assert 0 < gpus.sum() < 2 * PERIOD.hours
    line = invoice(runs, PERIOD, "data-insight")["by_resource"]
    gpu_amount = sum(Decimal(r["amount"]) for r in line if r["resource"] == "gpu")
    assert gpu_amount > 0


def test_step_times_are_measured(runs: DemoRuns) -> None:
    steps = runs.result.times.seconds
    assert list(steps) == [
        "validate",
        "policy check",
        "render",
        "generate",
        "backfill",
        "start prometheus",
        "chargeback",
        "check calls",
        "stop prometheus",
    ]
    assert "Step times:" in runs.cli_output
    # A sanity ceiling, not a benchmark: promtool without --max-block-duration would take minutes.
    assert runs.cli_seconds < 120


def test_failed_backfill_keeps_earlier_reports_and_exits_2(
    runs: DemoRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    shutil.copytree(runs.out, out)
    before = digest(out)
    real = local_prometheus.find_binary
    monkeypatch.setattr(
        local_prometheus, "find_binary", lambda name: "/bin/false" if name == "promtool" else real(name)
    )
    result = CliRunner().invoke(app, ["--out", str(out), "--catalog", str(CATALOG)])
    assert result.exit_code == 2
    assert "promtool could not backfill" in result.output
    assert "Traceback" not in result.output
    assert digest(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["2026-09", "2026-10", "issued", "ledger.db", "manifests"]


def test_missing_prometheus_is_reported_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise LocalPrometheusError(f"`{name}` is not installed: {local_prometheus.INSTALL_HINT}")

    monkeypatch.setattr(local_prometheus, "find_binary", not_installed)
    result = CliRunner().invoke(app, ["--out", str(tmp_path / "out"), "--catalog", str(CATALOG)])
    assert result.exit_code == 2
    assert "`promtool` is not installed" in result.output
    assert "make demo" in result.output
    assert "sudo apt-get install prometheus" in result.output
    assert not (tmp_path / "out").exists()


def test_invalid_catalog_exits_2_naming_the_file(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    (catalog / "rates.yaml").write_text("currency: CNY\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--out", str(tmp_path / "out"), "--catalog", str(catalog)])
    assert result.exit_code == 2
    assert "rates.yaml" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_bad_period_exits_2() -> None:
    result = CliRunner().invoke(app, ["--period", "2026-13"])
    assert result.exit_code == 2
    assert "months run from 01 to 12" in result.output


def test_period_before_the_rate_card_exits_2_before_any_work(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--period", "2026-01", "--out", str(tmp_path / "out"), "--catalog", str(CATALOG)])
    assert result.exit_code == 2
    assert "bills 2025-12 and 2026-01" in result.output
    assert "no prices before 2026-01-01 00:00 UTC" in result.output
    assert not (tmp_path / "out").exists()


def test_mandatory_policy_violation_stops_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    breach = Violation("unit-budget", "mandatory", "data-insight", "stack", "quotas cost more than the budget")
    advice = Violation("storage-tiers", "advisory", None, "stack", "a tier is nearly full")
    monkeypatch.setattr(check, "check_catalog", lambda catalog: [breach, advice])
    result = CliRunner().invoke(app, ["--out", str(tmp_path / "out"), "--catalog", str(CATALOG)])
    assert result.exit_code == POLICY_FAILED
    assert "mandatory unit-budget data-insight: stack: quotas cost more than the budget" in result.output
    assert "1 mandatory and 1 advisory violations" in result.output
    assert "mandatory policies are violated" in result.output
    assert not (tmp_path / "out").exists()


def test_demo_months_are_generated_without_the_clock() -> None:
    """Same arguments, same scenario: pod names, lifetimes and loads do not depend on when it runs."""
    catalog = load_catalog(CATALOG)
    day = dt.timedelta(days=2)
    first = demo_scenarios(catalog, PERIOD.start, PERIOD.start + day)[0]
    second = demo_scenarios(catalog, PERIOD.start, PERIOD.start + day)[0]
    assert [(p.name, p.start, p.end) for p in first.pods] == [(p.name, p.start, p.end) for p in second.pods]
    times = np.arange(PERIOD.start.timestamp(), (PERIOD.start + day).timestamp(), 600.0)
    for a, b in zip(first.pods, second.pods, strict=True):
        if a.load is not None:
            np.testing.assert_array_equal(a.load(times), b.load(times))


def expected_volume(unit: str, month: Period) -> Decimal:
    """Closed form from the demo's business model: the counter's last value in the month, extrapolated the
    way Prometheus's increase() does to the end of [start, end − 1 ms] (its first sample, 0, sits on the start)."""
    series = DEMO_BUSINESS[unit]
    times, values = counter_samples(series, SEPTEMBER.start, month.start, month.end, DEFAULT_SEED)
    sampled = times[-1] - times[0]
    window = (month.end - month.start).total_seconds() - 0.001
    return Decimal(repr(float(values[-1]) * window / float(sampled))).quantize(Decimal("0.01"))


def test_demo_prints_cost_per_north_star_unit(runs: DemoRuns) -> None:
    rows = {row.unit_id: row for row in runs.result.north_star}
    assert sorted(rows) == ["community-services", "data-insight", "edge-security", "platform"]
    assert "Cost per unit of business 2026-10 (CNY)" in runs.cli_output
    for unit, row in rows.items():
        document = invoice(runs, PERIOD, unit)
        volume = Decimal(document["north_star"]["volume"])
        assert abs(volume - expected_volume(unit, PERIOD)) <= Decimal("0.02"), unit
        assert row.volume == volume
        assert row.cost_per_unit == (Decimal(document["total"]) / volume).quantize(Decimal("0.0001"))
        september = invoice(runs, SEPTEMBER, unit)
        assert abs(Decimal(september["north_star"]["volume"]) - expected_volume(unit, SEPTEMBER)) <= Decimal("0.02")
        lines = [line for line in runs.cli_output.splitlines() if line.startswith(unit)]
        assert f"{row.cost_per_unit:,.4f}" in lines[1]
    # Community Services' cost (image egress) outgrew its orders; Data Insight's reports outgrew its cost.
    assert rows["community-services"].change["cost_grew_faster"] is True
    assert rows["data-insight"].change["cost_grew_faster"] is False
    summary = (runs.out / PERIOD.label / "finance-summary.html").read_text(encoding="utf-8")
    assert "cost grew faster than mini-program orders" in summary


def test_demo_checks_and_prints_capability_calls_per_unit(runs: DemoRuns) -> None:
    """The calls chargeback collected in both months equal the generated traffic (the demo stops otherwise),
    and the printed table carries them per unit and capability, the undeclared caller marked and named."""
    months = [(p.label, p.start, p.end) for p in (SEPTEMBER, PERIOD)]
    calls = runs.result.calls
    assert calls == expected_calls(load_catalog(CATALOG), SEPTEMBER.start, months, DEFAULT_SEED)
    assert {key[0] for key in calls} == {"2026-09", "2026-10"}
    lines = runs.cli_output.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if "Capability calls 2026-10 (billable)" in line) :]

    def row(unit: str) -> str:
        return next(line for line in table if line.startswith(unit))

    def billable(namespaces: tuple[str, ...], capability: str) -> int:
        return sum(v[0] for k, v in calls.items() if k[0] == "2026-10" and k[1] in namespaces and k[2] == capability)

    assert f"{billable(('cs-miniapp', 'cs-miniapp-staging'), 'identity'):,}" in row("community-services")
    assert f"{billable(('di-batch', 'di-api'), 'credit-scoring'):,}" in row("data-insight")  # interactive + bulk
    assert f"{billable(('es-testbed',), 'credit-scoring'):,}!" in row("edge-security")
    text = " ".join(runs.cli_output.split())
    assert "undeclared-caller): es-testbed → credit-scoring." in text
    assert "billable calls on the invoices, equal to the generated traffic" in text


def test_invoice_files_carry_the_generated_calls(runs: DemoRuns) -> None:
    """The capability lines of the written invoices (what a unit reads) hold the generated calls: every
    consumer's billable and 5xx calls per capability and class, both months, and the provider is credited
    exactly what the consumers were charged."""
    catalog = load_catalog(CATALOG)
    months = [(p.label, p.start, p.end) for p in (SEPTEMBER, PERIOD)]
    expected = expected_calls(catalog, SEPTEMBER.start, months, DEFAULT_SEED)
    found: dict[tuple[str, str, str, str], tuple[int, int]] = {}
    charged = recovered = Decimal(0)
    for period in (SEPTEMBER, PERIOD):
        for unit in catalog.units:
            document = invoice(runs, period, unit.id)
            for line in (document.get("capabilities_consumed") or {"lines": []})["lines"]:
                key = (period.label, line["namespace"], line["capability"], line["call_class"])
                paid, failed = found.get(key, (0, 0))
                found[key] = (paid + line["calls"], failed + line["not_billable_calls"])
                charged += Decimal(line["amount"])
            recovered += Decimal((document.get("recovered_from_consumers") or {"total": "0"})["total"])
    # Calls of unknown callers or of the provider itself appear on no consumer's invoice; the demo has none.
    assert found == expected
    assert charged > 0 and recovered == -charged
