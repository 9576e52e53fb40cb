"""Alert contacts in the catalog and the Alertmanager configuration `pool alerts render` makes from them,
checked by Debian's amtool (`check-config`, `config routes test`)."""

from __future__ import annotations

import datetime as dt
import math
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from chargeback.alert_series import last_day_costs, scrape_coverage
from chargeback.period import Period
from chargeback.rate.result import Chargeback, charge
from infra.alerts import (
    ALERTMANAGER_FILE,
    RULES_FILE,
    Timing,
    alert_rules,
    alertmanager_config,
    render_alertmanager,
    render_rules,
)
from infra.cli import app
from pool_catalog import CatalogError, Severity, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.usage_frames import row, steady, usage_frame

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "alerting"
POOL = "pool.yaml"
DI = "business-units/data-insight.yaml"
UNITS = ["community-services", "data-insight", "edge-security", "platform"]


def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool is missing: run `make test` (installs Debian's prometheus-alertmanager)", pytrace=False)
    return path


def route_of(config: Path, **labels: str) -> str:
    """The receiver Alertmanager picks for an alert with these labels (`amtool config routes test`)."""
    result = subprocess.run(
        [amtool(), "config", "routes", "test", f"--config.file={config}", *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def rendered(catalog: Path, out: Path) -> Path:
    result = CliRunner().invoke(app, ["alerts", "render", "--out", str(out), "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    return out / ALERTMANAGER_FILE


@pytest.fixture(scope="module")
def example_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rendered(EXAMPLE_CATALOG, tmp_path_factory.mktemp("alerts"))


def test_amtool_accepts_the_generated_config(example_config: Path) -> None:
    result = subprocess.run([amtool(), "check-config", str(example_config)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and " - 5 receivers" in result.stdout and " - 1 inhibit rules" in result.stdout


@pytest.mark.parametrize("unit", UNITS)
def test_each_units_alerts_reach_its_own_receiver(example_config: Path, unit: str) -> None:
    for alert in ("BudgetExceeded", "BudgetForecastOverBudget", "IdleAllocation", "CostAnomaly"):
        assert route_of(example_config, business_unit=unit, alertname=alert) == f"unit-{unit}"


def test_unallocated_shared_and_cluster_alerts_go_to_the_platform(example_config: Path) -> None:
    assert route_of(example_config, business_unit="unallocated", alertname="CostAnomaly") == "platform"
    assert route_of(example_config, business_unit="shared", alertname="CostAnomaly") == "platform"
    assert route_of(example_config, alertname="ScrapeCoverageGap", cluster="dc1") == "platform"
    assert route_of(example_config, alertname="ResourcePoolExporterDown") == "platform"
    # A unit the catalog does not know (a stale series) cannot reach another unit's owners.
    assert route_of(example_config, business_unit="data-insight-old", alertname="BudgetExceeded") == "platform"


def test_grouping_resend_window_and_inhibition(example_config: Path) -> None:
    config = yaml.safe_load(example_config.read_text(encoding="utf-8"))
    route = config["route"]
    assert route["group_by"] == ["business_unit", "alertname"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "30m", "4h")
    assert config["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="BudgetExceeded"'],
            "target_matchers": ['alertname="BudgetForecastOverBudget"'],
            "equal": ["business_unit"],
        }
    ]
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["unit-data-insight"] == {
        "name": "unit-data-insight",
        "email_configs": [{"to": "data-insight-oncall@group.example.com", "send_resolved": True}],
        "webhook_configs": [
            {
                "url": "http://prometheus-webhook-dingtalk.monitoring.svc:8060/dingtalk/data-insight/send",
                "send_resolved": True,
            }
        ],
    }
    assert config["global"]["smtp_smarthost"] == "smtp.group.example.com:587"


def test_deploy_files_are_the_render_of_the_example_catalog() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    hint = "run `pool alerts render --out deploy/alerting` and `python deploy/prometheus_rule.py`"
    assert (DEPLOY / ALERTMANAGER_FILE).read_text(encoding="utf-8") == render_alertmanager(catalog), hint
    assert (DEPLOY / RULES_FILE).read_text(encoding="utf-8") == render_rules(catalog), hint


def test_a_units_contacts_change_in_its_file_and_the_config_follows(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(
        catalog / DI,
        lambda doc: doc["alerts"].__setitem__(
            "contacts", [{"kind": "feishu", "url": "https://bridge.example.com/feishu/di-night-shift"}]
        ),
    )
    config_file = rendered(catalog, tmp_path / "out")
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["unit-data-insight"] == {
        "name": "unit-data-insight",
        "webhook_configs": [{"url": "https://bridge.example.com/feishu/di-night-shift", "send_resolved": True}],
    }
    # Only that unit's receiver changed.
    example = {r["name"]: r for r in alertmanager_config(load_catalog(EXAMPLE_CATALOG))["receivers"]}
    assert {k: v for k, v in receivers.items() if k != "unit-data-insight"} == {
        k: v for k, v in example.items() if k != "unit-data-insight"
    }
    assert route_of(config_file, business_unit="data-insight", alertname="BudgetExceeded") == "unit-data-insight"


def test_a_unit_without_contacts_is_warned_and_routed_to_the_platform(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "business-units/edge-security.yaml", lambda doc: doc.__delitem__("alerts"))
    loaded = load_catalog(catalog)
    warnings = [str(f) for f in loaded.warnings if f.severity is Severity.WARNING]
    assert any("edge-security.yaml:2: id: declares no alert contacts" in w for w in warnings), warnings
    config_file = rendered(catalog, tmp_path / "out")
    assert route_of(config_file, business_unit="edge-security", alertname="BudgetExceeded") == "platform"


def test_the_resend_window_can_be_longer_but_never_shorter_than_30_minutes(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / POOL, lambda doc: doc["alerting"].update({"resend_after": "1h", "repeat_interval": "12h"}))
    route = alertmanager_config(load_catalog(catalog))["route"]
    assert (route["group_interval"], route["repeat_interval"]) == ("1h", "12h")
    # Tests may scale the timers down; the catalog never can.
    scaled = alertmanager_config(load_catalog(catalog), Timing("1s", "4s", "8s"))["route"]
    assert (scaled["group_wait"], scaled["group_interval"], scaled["repeat_interval"]) == ("1s", "4s", "8s")


def change(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def apply(doc: Any) -> None:
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return apply


# (file, change, field the finding names, text of the line it points at, text of the message)
BAD_CONTACTS = [
    (POOL, change(("alerting", "resend_after"), "10m"), "alerting", "alerting:", "resend_after 10m is below 30m"),
    (POOL, change(("alerting", "repeat_interval"), "20m"), "alerting", "alerting:", "repeat_interval 20m is below"),
    (POOL, change(("alerting", "group_wait"), "half a minute"), "alerting.group_wait", "group_wait", "not a duration"),
    (POOL, change(("alerting", "platform_contacts"), []), "alerting.platform_contacts", "platform_contacts", "1 item"),
    (
        POOL,
        change(("alerting", "cost_anomaly", "factor"), 0.5),
        "alerting.cost_anomaly.factor",
        "cost_anomaly",
        "than 1",
    ),
    (DI, change(("alerts", "contacts", 0, "kind"), "pager"), "alerts.contacts[0].kind", "pager", "'email', 'webhook'"),
    (DI, change(("alerts", "contacts", 0, "to"), "oncall at example"), "alerts.contacts[0]", "oncall at", "one e-mail"),
    (DI, change(("alerts", "contacts", 1, "url"), "ftp://bridge/x"), "alerts.contacts[1].url", "ftp://", "http(s) URL"),
    (DI, change(("alerts", "contacts", 1), {"kind": "dingtalk"}), "alerts.contacts[1]", "dingtalk", "needs `url:`"),
    (DI, change(("alerts", "contacts"), []), "alerts.contacts", "contacts", "at least 1 item"),
    (DI, change(("north_star", "query"), "sum(orders_total)"), "north_star.query", "sum(orders_total)", "$__range"),
]


@pytest.mark.parametrize(("file", "edit", "field", "line_text", "message"), BAD_CONTACTS)
def test_bad_alerting_is_refused_with_file_field_and_line(
    tmp_path: Path, file: str, edit: Callable[[Any], None], field: str, line_text: str, message: str
) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / file, edit)
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    findings = [f for f in caught.value.findings if f.field == field]
    assert findings, [str(f) for f in caught.value.findings]
    finding = findings[0]
    assert finding.file == str(catalog / file) and finding.line is not None
    assert line_text in (catalog / file).read_text(encoding="utf-8").splitlines()[finding.line - 1]
    assert message in finding.message


def test_email_contacts_need_an_smtp_server(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / POOL, lambda doc: doc["alerting"].__delitem__("email"))
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog)
    where = {(Path(f.file).name, f.field) for f in caught.value.findings}
    assert ("pool.yaml", "alerting.platform_contacts[0]") in where
    assert ("data-insight.yaml", "alerts.contacts[0]") in where
    assert "no email server" in str(caught.value)


def test_render_without_an_alerting_section_exits_2_with_the_fix(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / POOL, lambda doc: doc.__delitem__("alerting"))
    result = CliRunner().invoke(app, ["alerts", "render", "--out", str(tmp_path / "out"), "--catalog", str(catalog)])
    assert result.exit_code == 2
    assert "pool.yaml: alerting: is missing, so no alert has anywhere to go" in result.output
    assert "platform_contacts" in result.output
    assert not (tmp_path / "out").exists()


# --- the series the new alerts read ---------------------------------------------------------------


def two_days() -> Chargeback:
    """October 1–2 billed so far: di-api at 2 cores on the first day and 5 on the second, with an egress burst
    of 10 GiB an hour in the last 8 hours; two hours of the second day half or not scraped by cAdvisor."""
    start = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    day2 = start + dt.timedelta(hours=24)
    gap, half = day2 + dt.timedelta(hours=6), day2 + dt.timedelta(hours=7)
    rows = steady("di-api", "cpu", 2.0, start, 24) + steady("di-api", "cpu", 5.0, day2, 24)
    rows += steady("di-api", "egress", 10.0, day2 + dt.timedelta(hours=16), 8)
    rows += steady("sandbox-x", "cpu", 1.0, day2, 24)
    # As collection marks them: every cAdvisor row of an unscraped hour has coverage 0 and unknown use.
    rows = [r for r in rows if r["hour"] not in (gap, half)]
    for namespace, cores in (("di-api", 5.0), ("sandbox-x", 1.0)):
        rows += [
            row(gap, namespace, "cpu", math.nan, coverage=0.0),
            row(half, namespace, "cpu", cores / 2, coverage=0.5),
        ]
    rows += steady("di-api", "pods", 3.0, start, 48)
    period = Period(2026, 10, start + dt.timedelta(hours=48))
    return charge(usage_frame(rows), load_catalog(EXAMPLE_CATALOG), period)


def test_last_day_cost_prices_the_last_24_billed_hours() -> None:
    costs = {row["namespace"]: row for row in last_day_costs(two_days()).to_dict("records")}
    # cpu: 22 hours × 5 cores + 2.5 core-hours (the half-scraped hour) at 0.24; egress 80 GiB at 0.50.
    assert costs["di-api"]["amount"] == (Decimal(22 * 5) + Decimal("2.5")) * Decimal("0.24") + 80 * Decimal("0.50")
    assert costs["di-api"]["business_unit"] == "data-insight"
    assert costs["sandbox-x"]["business_unit"] == "unallocated"
    assert costs["sandbox-x"]["amount"] == Decimal("22.5") * Decimal("0.24")


def test_scrape_coverage_of_the_last_day_per_cluster_and_source() -> None:
    coverage = {(r["cluster"], r["source"]): r["coverage"] for r in scrape_coverage(two_days()).to_dict("records")}
    # cAdvisor: one hour unscraped, one half scraped, of 24.
    assert coverage == {("dc1", "cadvisor"): pytest.approx(22.5 / 24), ("dc1", "kube-state-metrics"): 1.0}


def test_rules_take_their_thresholds_from_the_catalog(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(
        catalog / "rates.yaml",
        lambda doc: doc["idle"].update({"alert_after_days": 5, "utilization_threshold": 0.29}),
    )
    edit_yaml(
        catalog / POOL,
        lambda doc: doc["alerting"].update(
            {"cost_anomaly": {"factor": 3.5, "baseline_days": 14, "min_daily_cost": "12.5"}, "coverage_below": 0.9}
        ),
    )
    rules = {r["alert"]: r for g in alert_rules(load_catalog(catalog))["groups"] for r in g["rules"]}
    assert rules["IdleAllocation"]["for"] == "5d"
    assert "below 29% use for 5 days" in rules["IdleAllocation"]["annotations"]["description"]
    assert rules["CostAnomaly"]["expr"] == (
        "resource_pool_namespace_last_day_cost > 3.5 * avg_over_time(resource_pool_namespace_last_day_cost[14d:1h] "
        "offset 1d) and resource_pool_namespace_last_day_cost > 12.5"
    )
    assert rules["ScrapeCoverageGap"]["expr"] == "resource_pool_scrape_coverage_ratio < 0.9"
