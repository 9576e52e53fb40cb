"""Alerts delivered end to end: `chargeback serve` → Debian's prometheus (rules from `pool alerts render`)
→ Debian's prometheus-alertmanager (routing from `pool alerts render`) → a webhook receiver on 127.0.0.1
standing in for each unit's contacts and the platform's.

The month-to-date scenario is the closed-form one of tests/support/prometheus.py; the budgets of a copy of the
example catalog are set around what it costs so that one unit is over budget (its forecast alert is then
inhibited), one is only forecast over budget, and the rest are well within. Timers are scaled down
(`for` to 0s, resend window 30 min → 5 s, repeat 4 h → 40 s); one test runs the real 30-minute window.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.collect.prometheus import PrometheusSettings
from chargeback.exporter import ExporterSource, MonthToDateCollector, serve
from infra.alerts import Timing, alert_rules, render_alertmanager
from pool_catalog import load_catalog
from pool_demo.local_prometheus import LocalPrometheus, free_port
from tests.support.alertmanager import Delivery, LocalAlertmanager, WebhookReceiver
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.prometheus import ScenarioServer, serve_scenario

pytestmark = pytest.mark.prometheus

NOW = dt.datetime(2026, 10, 1, 8, 40, tzinfo=dt.UTC)  # eight whole hours of the scenario billed so far
UNITS = ["community-services", "data-insight", "edge-security", "platform"]
SCALED = Timing(group_wait="1s", group_interval="5s", repeat_interval="40s")
WINDOW = 5.0  # seconds: the scaled resend window (group_interval)


def webhook_catalog(tmp: Path, hook: str) -> Path:
    """The example catalog with every contact replaced by a path of the webhook receiver."""
    catalog = copy_example(tmp)
    for unit in UNITS:
        edit_yaml(
            catalog / "business-units" / f"{unit}.yaml",
            lambda doc, unit=unit: doc["alerts"].__setitem__(
                "contacts", [{"kind": "webhook", "url": f"{hook}/{unit}"}]
            ),
        )

    def platform(doc: Any) -> None:
        doc["alerting"]["platform_contacts"] = [{"kind": "webhook", "url": f"{hook}/platform"}]
        del doc["alerting"]["email"]
        doc["alerting"]["group_wait"] = "1s"

    edit_yaml(catalog / "pool.yaml", platform)
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_hours", 4))
    return catalog


def set_budget(catalog: Path, unit: str, monthly: Decimal) -> None:
    edit_yaml(
        catalog / "business-units" / f"{unit}.yaml", lambda doc: doc["budget"].__setitem__("monthly", str(monthly))
    )


def unit_totals(collector: MonthToDateCollector) -> dict[str, Decimal]:
    assert collector.refresh()
    assert collector.snapshot is not None
    family = next(f for f in collector.snapshot.families if f.name == "resource_pool_business_unit_month_to_date_cost")
    return {s.labels["business_unit"]: Decimal(str(s.value)) for s in family.samples}


def scaled_rules(catalog: Path, target: Path) -> Path:
    """The rendered rules with every `for` at 0s, so a test need not wait an hour."""
    rules = alert_rules(load_catalog(catalog))
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    target.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return target


def is_(path: str, alertname: str, status: str = "firing"):
    def match(delivery: Delivery) -> bool:
        return delivery.path == path and delivery.body["status"] == status and alertname in delivery.alertnames

    return match


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScenarioServer]:
    yield from serve_scenario(tmp_path_factory.mktemp("delivery-scenario"), with_unpriced_storage=False)


@pytest.fixture(scope="module")
def delivered(scenario: ScenarioServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The whole chain running; yields once the budget alerts have been delivered and a window has passed."""
    workdir = tmp_path_factory.mktemp("delivery")
    with WebhookReceiver() as hook:
        catalog = webhook_catalog(workdir, hook.url)
        collector = MonthToDateCollector(
            ExporterSource(catalog, PrometheusSettings(url=scenario.url, retries=0)), clock=lambda: NOW
        )
        totals = unit_totals(collector)
        over, forecast = sorted((u for u in totals if totals[u] > 0), key=lambda u: -totals[u])[:2]
        for unit in UNITS:
            budget = {over: totals[over] / 2, forecast: totals[forecast] * 2}.get(
                unit, totals.get(unit, 0) * 1000 + 1000
            )
            set_budget(catalog, unit, budget.quantize(Decimal("0.01")))
        assert unit_totals(collector) == totals
        config = workdir / "alertmanager.yml"
        config.write_text(render_alertmanager(load_catalog(catalog), SCALED), encoding="utf-8")
        rules = scaled_rules(catalog, workdir / "rules.yaml")
        port, stop = free_port(), threading.Event()
        server = threading.Thread(target=serve, args=(collector, f"127.0.0.1:{port}", 3600, stop), daemon=True)
        server.start()
        data_dir = workdir / "tsdb"
        data_dir.mkdir()
        try:
            with (
                LocalAlertmanager(config, workdir) as alertmanager,
                LocalPrometheus(
                    data_dir,
                    scrape_targets=[f"127.0.0.1:{port}"],
                    rule_files=[rules],
                    alertmanagers=[alertmanager.address],
                ),
            ):
                first = hook.wait_for(is_(f"/{over}", "BudgetExceeded"), 90, f"BudgetExceeded to {over}")
                hook.wait_for(is_(f"/{forecast}", "BudgetForecastOverBudget"), 30, f"forecast alert to {forecast}")
                # Two resend windows more: anything re-sent too early would have arrived by now.
                time.sleep(max(0.0, first[0].at + 2.5 * WINDOW - time.time()))
                firing = hook.received()
                # The forecast unit's spending drops back under its forecast: its alert resolves.
                set_budget(catalog, forecast, totals[forecast] * 1000)
                assert collector.refresh()
                resolved_at = time.time()
                hook.wait_for(is_(f"/{forecast}", "BudgetForecastOverBudget", "resolved"), 60, "the resolved alert")
                time.sleep(2.5 * WINDOW)
                yield {
                    "over": over,
                    "forecast": forecast,
                    "firing": firing,
                    "all": hook.received(),
                    "resolved_at": resolved_at,
                    "alertmanager": alertmanager,
                }
        finally:
            stop.set()
            server.join(timeout=10)


def test_each_delivery_reaches_only_the_unit_it_is_about(delivered: dict) -> None:
    deliveries = delivered["all"]
    assert {d.path for d in deliveries} >= {f"/{delivered['over']}", f"/{delivered['forecast']}"}
    for delivery in deliveries:
        units = {alert["labels"].get("business_unit") for alert in delivery.body["alerts"]}
        if delivery.path == "/platform":
            assert delivery.body["receiver"] == "platform"
            assert not units & set(UNITS), f"a unit's alert went to the platform: {delivery.body}"
        else:
            unit = delivery.path.strip("/")
            assert delivery.body["receiver"] == f"unit-{unit}"
            assert units == {unit}, f"{delivery.path} received another unit's alert: {units}"


def test_the_over_budget_unit_gets_budget_exceeded_once_and_no_forecast(delivered: dict) -> None:
    over = f"/{delivered['over']}"
    exceeded = [d for d in delivered["firing"] if is_(over, "BudgetExceeded")(d)]
    assert len(exceeded) == 1
    alert = exceeded[0].body["alerts"][0]
    assert alert["labels"]["severity"] == "critical"
    assert alert["annotations"]["summary"] == f"{delivered['over']} has spent more than its monthly budget"
    # Inhibited: its forecast alert fires in Prometheus but is never delivered.
    assert not [d for d in delivered["all"] if d.path == over and "BudgetForecastOverBudget" in d.alertnames]
    groups = delivered["alertmanager"].api("alerts", filter=f'business_unit="{delivered["over"]}"')
    states = {a["labels"]["alertname"]: a["status"]["state"] for a in groups}
    assert states["BudgetForecastOverBudget"] == "suppressed" and states["BudgetExceeded"] == "active"


def test_the_forecast_unit_gets_the_forecast_once_then_its_resolution_once(delivered: dict) -> None:
    path = f"/{delivered['forecast']}"
    firing = [d for d in delivered["all"] if is_(path, "BudgetForecastOverBudget")(d)]
    assert len(firing) == 1
    description = firing[0].body["alerts"][0]["annotations"]["description"]
    assert description.startswith(f"Business unit {delivered['forecast']} is forecast to spend ")
    assert " CNY this month, more than its monthly budget" in description
    assert not [d for d in delivered["all"] if d.path == path and "BudgetExceeded" in d.alertnames]
    resolved = [d for d in delivered["all"] if is_(path, "BudgetForecastOverBudget", "resolved")(d)]
    assert len(resolved) == 1 and resolved[0].at > delivered["resolved_at"]
    assert resolved[0].body["alerts"][0]["endsAt"] > resolved[0].body["alerts"][0]["startsAt"]


def test_units_within_budget_get_no_budget_alert(delivered: dict) -> None:
    quiet = set(UNITS) - {delivered["over"], delivered["forecast"]}
    for delivery in delivered["all"]:
        if delivery.path.strip("/") in quiet:
            assert not delivery.alertnames & {"BudgetExceeded", "BudgetForecastOverBudget"}


def _alert(namespace: str) -> dict[str, Any]:
    labels = {"alertname": "IdleAllocation", "business_unit": "data-insight", "namespace": namespace}
    return {"labels": labels, "annotations": {"summary": f"{namespace} idle"}}


@pytest.mark.parametrize(("timing", "expected"), [(None, 1), (SCALED, 2)], ids=["real-30m", "scaled-5s"])
def test_a_group_is_not_notified_again_within_the_resend_window(
    tmp_path: Path, timing: Timing | None, expected: int
) -> None:
    """A second alert joins a group that was just notified. With the catalog's real setting (30 minutes)
    Alertmanager holds it back; with the 5-second test setting it goes out after 5 s, which shows the
    observation would catch an early resend."""
    with WebhookReceiver() as hook:
        catalog = webhook_catalog(tmp_path, hook.url)
        config = tmp_path / "alertmanager.yml"
        config.write_text(render_alertmanager(load_catalog(catalog), timing), encoding="utf-8")
        with LocalAlertmanager(config, tmp_path) as alertmanager:
            route = alertmanager.api("status")["config"]["original"]
            assert ("group_interval: 30m" in route and "repeat_interval: 4h" in route) == (timing is None)
            alertmanager.post_alerts([_alert("di-api")])
            first = hook.wait_for(lambda d: d.path == "/data-insight", 30, "the first notification")[0]
            assert first.body["receiver"] == "unit-data-insight"
            alertmanager.post_alerts([_alert("di-api"), _alert("di-batch")])
            time.sleep(2 * WINDOW)
            alertmanager.post_alerts([_alert("di-api"), _alert("di-batch")])
            time.sleep(WINDOW)
            deliveries = hook.received("/data-insight")
            assert len(deliveries) == expected, [(d.at - first.at, sorted(d.alertnames)) for d in deliveries]
            # Alertmanager's API shows it received both alerts, and updates of them, after the notification.
            alerts = alertmanager.api("alerts", filter='alertname="IdleAllocation"')
            assert {a["labels"]["namespace"] for a in alerts} == {"di-api", "di-batch"}
            for alert in alerts:
                updated = dt.datetime.fromisoformat(alert["updatedAt"].replace("Z", "+00:00")).timestamp()
                assert updated > first.at
            if expected == 2:
                assert deliveries[1].at - first.at >= WINDOW - 0.5
                assert {a["labels"]["namespace"] for a in deliveries[1].body["alerts"]} == {"di-api", "di-batch"}
            assert not hook.received("/platform")
