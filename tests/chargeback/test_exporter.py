"""`chargeback serve`: the month-to-date exporter scraped by a real Prometheus, its alert rules run by
promtool, and the Grafana dashboard checked against the series the exporter really exposes."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.prometheus import PrometheusSettings
from chargeback.errors import PeriodError
from chargeback.exporter import (
    IDLE_LABELS,
    ExporterError,
    ExporterSource,
    MonthToDateCollector,
    cost_lines,
    metric_names,
    parse_interval,
    parse_listen,
    registry_of,
    serve,
)
from chargeback.period import Period
from chargeback.run import run_period
from deploy.prometheus_rule import PLAIN_RULES, PROMETHEUS_RULE, render
from pool_demo.demo_calls import CALL_HELP, CALL_METRIC, CallStream, istio_labels
from pool_demo.demo_calls import counter_samples as call_counter_samples
from pool_demo.local_prometheus import LocalPrometheus, find_binary, free_port
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.prometheus import ScenarioServer, serve_scenario

# Most tests here run Debian's prometheus or promtool.
pytestmark = pytest.mark.prometheus

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana-dashboard.json"
RULE_TESTS = sorted((ROOT / "tests" / "rules").glob("*.test.yaml"))
# 08:40 on the first: the month so far is the scenario's eight whole hours, 00:00–08:00.
NOW = dt.datetime(2026, 10, 1, 8, 40, tzinfo=dt.UTC)
UNDECLARED_PER_HOUR = 120
CENT = Decimal("0.01")


def cents(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def collector_for(url: str, catalog: Path = EXAMPLE_CATALOG) -> MonthToDateCollector:
    return MonthToDateCollector(ExporterSource(catalog, PrometheusSettings(url=url, retries=0)), clock=lambda: NOW)


def exposed(collector: MonthToDateCollector) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name → (labels, value) of one scrape of the collector's registry."""
    result: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(generate_latest(registry_of(collector)).decode()):
        for sample in family.samples:
            result.setdefault(sample.name, []).append((sample.labels, sample.value))
    return result


def test_month_to_date_period_ends_at_the_last_whole_hour() -> None:
    period = Period.month_to_date(NOW)
    assert (period.label, period.start, period.end) == (
        "2026-10",
        dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
        NOW.replace(minute=0),
    )
    assert (period.hours, period.month_hours) == (8, 744)
    assert Period.month_to_date(dt.datetime(2026, 2, 28, 23, 59, tzinfo=dt.UTC)).hours == 27 * 24 + 23
    with pytest.raises(PeriodError, match="no whole hour of 2026-11"):
        Period.month_to_date(dt.datetime(2026, 11, 1, 0, 59, tzinfo=dt.UTC))
    with pytest.raises(PeriodError, match="whole UTC hour"):
        Period(2026, 10, dt.datetime(2026, 10, 1, 8, 30, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def priced_scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    """The closed-form scenario without the volumes the example catalog does not price (those fail a run)."""
    # With a business counter: 5 reports a minute from 00:00, the north star of data-insight below.
    times = NOW.replace(hour=0, minute=0).timestamp() + 60.0 * np.arange(9 * 60)
    reports = ("reports_total", "counter", "Reports.", {"namespace": "di-api"}, (times, 5.0 * np.arange(9 * 60)))
    # And es-testbed calling credit-scoring, which it does not declare: 120 calls an hour, all answered 503, so the
    # undeclared caller is found and exported while no call is billed (the cost figures stay the usage's alone).
    stream = CallStream("es-testbed", "hil-run", "pf-credit", "credit-scoring", per_day=0)
    calls = (
        CALL_METRIC, "counter", CALL_HELP, istio_labels(stream, "dc1", "destination", "503"),
        call_counter_samples(np.full(9, UNDECLARED_PER_HOUR), NOW.replace(hour=0, minute=0)),
    )  # fmt: skip
    yield from serve_scenario(
        tmp_path_factory.mktemp("priced-scenario"), with_unpriced_storage=False, extra=[reports, calls]
    )


@pytest.fixture(scope="module")
def idle_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example catalog judging allocations held 4 hours (not 24), so the 8 hours so far have idle ones."""
    catalog = copy_example(tmp_path_factory.mktemp("idle-catalog"))
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_hours", 4))
    edit_yaml(
        catalog / "business-units" / "data-insight.yaml",
        lambda doc: doc["north_star"].__setitem__("query", "sum(increase(reports_total[$__range]))"),
    )
    return catalog


@pytest.fixture(scope="module")
def scraped(
    priced_scenario: ScenarioServer, idle_catalog: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The exporter served on a free loopback port over the scenario, scraped every second by a second
    real Prometheus; yields that Prometheus's answers once the first refreshed snapshot arrived."""
    collector = collector_for(priced_scenario.url, idle_catalog)
    port, stop = free_port(), threading.Event()
    server = threading.Thread(target=serve, args=(collector, f"127.0.0.1:{port}", 3600, stop), daemon=True)
    server.start()
    data_dir = tmp_path_factory.mktemp("scraper") / "tsdb"
    data_dir.mkdir()
    try:
        with LocalPrometheus(data_dir, scrape_targets=[f"127.0.0.1:{port}"]) as scraper:
            answers = wait_for_series(scraper.url, "resource_pool_business_unit_month_to_date_cost")
            yield {"url": scraper.url, "collector": collector, "units": answers, "query": query_for(scraper.url)}
    finally:
        stop.set()
        server.join(timeout=10)


def query_for(url: str):
    def query(expr: str) -> list[dict]:
        answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    return query


def wait_for_series(url: str, name: str, timeout: float = 30) -> list[dict]:
    query = query_for(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(name)
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"Prometheus at {url} never scraped {name} within {timeout:g} s")


@pytest.fixture(scope="module")
def invoices(priced_scenario: ScenarioServer, idle_catalog: Path) -> dict:
    """The invoices of the same month-to-date period, computed the way `chargeback invoice` does."""
    run = run_period(Period.month_to_date(NOW), idle_catalog, priced_scenario.url)
    return {"chargeback": run.chargeback, "documents": run.chargeback.invoices}


def test_scraped_unit_totals_budgets_and_forecast_match_the_invoices(scraped: dict, invoices: dict) -> None:
    query = scraped["query"]
    scraped_totals = {r["metric"]["business_unit"]: cents(float(r["value"][1])) for r in scraped["units"]}
    expected = {doc.business_unit.id: doc.total for doc in invoices["documents"]}
    assert scraped_totals == expected
    assert sum(expected.values()) > 0
    assert {r["metric"]["currency"] for r in scraped["units"]} == {invoices["chargeback"].currency}
    forecast = {r["metric"]["business_unit"]: float(r["value"][1]) for r in query("resource_pool_forecast_month_cost")}
    # Eight hours of a 744-hour month elapsed: the linear forecast is 93 × the month so far.
    assert {unit: cents(value) for unit, value in forecast.items()} == {u: cents(t * 93) for u, t in expected.items()}
    budgets = {doc.business_unit.id: doc.budget for doc in invoices["documents"] if doc.budget}
    burn = {r["metric"]["business_unit"]: float(r["value"][1]) for r in query("resource_pool_budget_burn_ratio")}
    assert burn.keys() == budgets.keys()
    for unit, budget in budgets.items():
        assert burn[unit] == pytest.approx(float(expected[unit] / budget.monthly), rel=1e-9)
        assert budget.used == Decimal(str(burn[unit])).quantize(Decimal("0.0001"))
    ratio = {r["metric"]["business_unit"]: float(r["value"][1]) for r in query("resource_pool_forecast_budget_ratio")}
    for unit, budget in budgets.items():
        assert ratio[unit] == pytest.approx(float(expected[unit] * 93 / budget.monthly), rel=1e-9)
    assert float(query("resource_pool_month_to_date_hours")[0]["value"][1]) == 8


def test_undeclared_caller_is_exported_with_its_unit_for_the_alert(scraped: dict, invoices: dict) -> None:
    """The doctor's undeclared-caller finding becomes a series labelled with the calling namespace's unit (the
    label Alertmanager routes on) and the calls of the eight hours so far."""
    series = scraped["query"]("resource_pool_capability_undeclared_calls")
    assert [
        ({k: v for k, v in r["metric"].items() if k not in ("instance", "job")}, r["value"][1]) for r in series
    ] == [
        (
            {
                "__name__": "resource_pool_capability_undeclared_calls",
                "business_unit": "edge-security",
                "cluster": "dc1",
                "namespace": "es-testbed",
                "capability": "credit-scoring",
                "provider_namespace": "pf-credit",
            },
            str(8 * UNDECLARED_PER_HOUR),
        )
    ]
    (finding,) = [f for f in invoices["chargeback"].findings if f.code == "undeclared-caller"]
    assert (finding.namespaces, finding.capability, finding.provider, finding.calls) == (
        ("es-testbed",),
        "credit-scoring",
        "pf-credit",
        960,
    )


def test_scraped_line_costs_sum_to_each_invoice_to_the_cent(scraped: dict, invoices: dict) -> None:
    query = scraped["query"]
    per_unit = query("sum by (business_unit) (resource_pool_month_to_date_cost)")
    totals = {r["metric"]["business_unit"]: cents(float(r["value"][1])) for r in per_unit}
    invoiced = {doc.business_unit.id: doc.total for doc in invoices["documents"]}
    # A unit without usage this month has no cost series and a zero invoice.
    assert totals == {unit: total for unit, total in invoiced.items() if unit in totals}
    assert all(total == 0 for unit, total in invoiced.items() if unit not in totals)
    assert len(totals) >= 3
    lines = cost_lines(invoices["chargeback"])
    series = query("resource_pool_month_to_date_cost")
    assert len(series) == len(lines)
    by_labels = {
        (
            r["metric"]["namespace"],
            r["metric"]["resource"],
            r["metric"].get("tier", ""),
            r["metric"]["business_unit"],
        ): cents(float(r["value"][1]))
        for r in series
    }
    for row in lines.to_dict("records"):
        assert by_labels[(row["namespace"], row["resource"], row["tier"], row["business_unit"])] == cents(row["amount"])


def test_cost_per_north_star_unit_follows_the_invoice(scraped: dict, invoices: dict) -> None:
    query = scraped["query"]
    total = next(d.total for d in invoices["documents"] if d.business_unit.id == "data-insight")
    volume = query("resource_pool_north_star_volume")
    # 5 reports a minute over the 480 minutes billed so far; units whose metric has no data export nothing.
    assert [(r["metric"]["business_unit"], r["metric"]["unit"], float(r["value"][1])) for r in volume] == [
        ("data-insight", "report", 2400.0)
    ]
    per_unit = query("resource_pool_cost_per_north_star_unit")
    assert len(per_unit) == 1 and per_unit[0]["metric"]["currency"] == "CNY"
    assert float(per_unit[0]["value"][1]) == pytest.approx(float(total) / 2400, rel=1e-9)


def test_idle_series_follow_the_idle_allocations(scraped: dict, invoices: dict) -> None:
    idle = invoices["chargeback"].idle
    series = scraped["query"]("resource_pool_idle_allocation_ratio")
    assert len(series) == len(idle) > 0
    for row in idle.to_dict("records"):
        key = tuple(row[name] for name in IDLE_LABELS)
        match = [s for s in series if tuple(s["metric"].get(name, "") for name in IDLE_LABELS) == key]
        assert len(match) == 1
        assert float(match[0]["value"][1]) == pytest.approx(float(1 - row["utilization"]), abs=1e-12)


def test_idle_money_series_sum_to_the_invoices_as_grafana_sums_them(scraped: dict, invoices: dict) -> None:
    # The dashboard's idle panel sums by (business_unit, namespace): the quota and requests rows of one
    # allocation must not both count, so the sums per unit are the invoices' figures to the cent.
    query = scraped["query"]
    for metric, field in (("idle_capacity_held", "capacity_held"), ("idle_unit_pays", "unit_pays")):
        per_unit = query(f"sum by (business_unit) (resource_pool_{metric})")
        scraped_sums = {r["metric"]["business_unit"]: cents(float(r["value"][1])) for r in per_unit}
        expected = {
            doc.business_unit.id: getattr(doc.idle, field) for doc in invoices["documents"] if doc.idle.allocations
        }
        assert scraped_sums == expected, metric
    assert any(doc.idle.capacity_held > 0 for doc in invoices["documents"])


def test_health_series_after_a_good_refresh(scraped: dict) -> None:
    query = scraped["query"]
    assert float(query("resource_pool_exporter_last_refresh_success")[0]["value"][1]) == 1
    assert float(query("resource_pool_exporter_refresh_errors_total")[0]["value"][1]) == 0
    last = float(query("resource_pool_exporter_last_success_timestamp_seconds")[0]["value"][1])
    assert time.time() - 120 < last <= time.time()
    assert float(query("resource_pool_exporter_refresh_duration_seconds")[0]["value"][1]) > 0


def test_a_failed_refresh_keeps_the_previous_snapshot(priced_scenario: ScenarioServer, tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    collector = collector_for(priced_scenario.url, catalog)
    assert collector.refresh()
    before = exposed(collector)
    rates = (catalog / "rates.yaml").read_text(encoding="utf-8")
    (catalog / "rates.yaml").write_text("currency: [not, a, currency\n", encoding="utf-8")
    assert not collector.refresh()
    after = exposed(collector)
    assert after["resource_pool_exporter_last_refresh_success"][0][1] == 0
    assert after["resource_pool_exporter_refresh_errors_total"][0][1] == 1
    for name in ("resource_pool_month_to_date_cost", "resource_pool_forecast_budget_ratio"):
        assert after[name] == before[name] and before[name]
    # In the first hour of November nothing of it is billable yet: October's final figures stay, no error
    # (the catalog is read first: its billing zone says when November begins).
    (catalog / "rates.yaml").write_text(rates, encoding="utf-8")
    collector.clock = lambda: dt.datetime(2026, 11, 1, 0, 30, tzinfo=dt.UTC)
    assert collector.refresh()
    assert exposed(collector)["resource_pool_exporter_refresh_errors_total"][0][1] == 1
    assert exposed(collector)["resource_pool_month_to_date_cost"] == before["resource_pool_month_to_date_cost"]
    stopped = collector_for(f"http://127.0.0.1:{free_port()}", catalog)
    assert not stopped.refresh()
    assert "resource_pool_month_to_date_cost" not in exposed(stopped)


def test_serve_flags_are_checked_before_anything_runs() -> None:
    runner = CliRunner()
    base = ["serve", "--prometheus", f"http://127.0.0.1:{free_port()}", "--catalog", str(EXAMPLE_CATALOG)]
    result = runner.invoke(app, [*base, "--interval", "15 minutes"])
    assert result.exit_code == 2 and "--interval '15 minutes' is not a duration" in result.output
    result = runner.invoke(app, [*base, "--listen", "9464"])
    assert result.exit_code == 2 and "--listen '9464' is not HOST:PORT" in result.output
    result = runner.invoke(app, [*base, "--match", "env prod"])
    assert result.exit_code == 2 and "'env prod' is not a label matcher" in result.output
    assert parse_interval("15m") == 900 and parse_interval("1h") == 3600
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    with pytest.raises(ExporterError, match="shorter than 10s"):
        parse_interval("5s")


def test_serve_once_prints_the_metrics_and_fails_when_prometheus_is_down() -> None:
    result = CliRunner().invoke(
        app, ["serve", "--once", "--prometheus", f"http://127.0.0.1:{free_port()}", "--catalog", str(EXAMPLE_CATALOG)]
    )
    assert result.exit_code == 2
    assert "resource_pool_exporter_last_refresh_success 0.0" in result.output
    assert "resource_pool_exporter_refresh_errors_total 1.0" in result.output


# --- alert rules and dashboard ------------------------------------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"}


def series_names(expr: str) -> set[str]:
    """Metric names an expression reads: identifiers that are no function, keyword, label or variable."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors and subqueries
    expr = re.sub(r"\boffset\s+-?[0-9smhdwy]+", "", expr)  # offset 1d
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    names = {
        m.group()
        for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr)
        if not expr[m.end() :].lstrip().startswith("(")
    }
    return names - _KEYWORDS


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    variables = [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    # label_values(metric, label): Grafana's function, whose second argument is a label, not a series.
    exprs += [re.sub(r"label_values\(([^,]+),\s*\w+\)", r"\1", query) for query in variables]
    return exprs


def rule_exprs() -> list[str]:
    document = yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def test_dashboard_and_rules_read_only_series_the_exporter_exposes(scraped: dict) -> None:
    served = {sample for sample in exposed(scraped["collector"])}
    assert served == metric_names()
    for expr in dashboard_exprs() + rule_exprs():
        names = series_names(expr)
        assert names, expr
        assert names <= served, f"{expr} reads {sorted(names - served)}, which the exporter does not expose"
    panels = {p["title"] for p in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]}
    assert {"Budget burn", "Forecast vs budget", "Top namespaces (month to date)"} <= panels
    assert {
        "Last-day cost vs its baseline (cost anomalies)",
        "Scrape coverage (last 24 h)",
        "Cost per unit of business (month to date)",
        "North-star volume (month to date)",
        "Undeclared capability callers (month to date)",
    } <= panels


def test_series_name_extraction() -> None:
    expr = 'topk(10, sum by (namespace) (a_b{x=~"$unit"})) > on (y) group_left c:d - time() + rate(e_total[1h]) * 2'
    assert series_names(expr) == {"a_b", "c:d", "e_total"}
    assert series_names("f > 2 * avg_over_time(f[7d:1h] offset 1d)") == {"f"}


def test_prometheus_rule_carries_the_plain_rules_file() -> None:
    assert PROMETHEUS_RULE.read_text(encoding="utf-8") == render(), "run `python deploy/prometheus_rule.py`"
    crd = yaml.safe_load(PROMETHEUS_RULE.read_text(encoding="utf-8"))
    assert (crd["apiVersion"], crd["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert crd["spec"] == yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))
    alerts = {rule["alert"] for group in crd["spec"]["groups"] for rule in group["rules"]}
    assert alerts == {
        "BudgetForecastOverBudget",
        "BudgetExceeded",
        "IdleAllocation",
        "CostAnomaly",
        "ScrapeCoverageGap",
        "CapabilityUndeclaredCaller",
        "ResourcePoolExporterDown",
        "ResourcePoolExporterRefreshFailing",
    }


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = find_binary("promtool")
    check = subprocess.run([promtool, "check", "rules", str(PLAIN_RULES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 8 rules found" in check.stdout
    assert RULE_TESTS
    test = subprocess.run([promtool, "test", "rules", *map(str, RULE_TESTS)], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr
    # Every alert has a case in which it fires and one in which it must not.
    cases: dict[str, list[bool]] = {}
    for path in RULE_TESTS:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(bool(case["exp_alerts"]))
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(PLAIN_RULES.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
    }
    assert {name for name, fired in cases.items() if True in fired and False in fired} == alerts
