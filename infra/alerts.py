"""Alerting generated from the catalog: Alertmanager's routing and the Prometheus alert rules.

`pool alerts render --out DIR` writes both. Routing: one route per business unit matched on the
`business_unit` label of `chargeback serve`'s series, to the contacts of the unit's file; everything
else (unallocated namespaces, coverage gaps, the exporter's health, units without contacts) goes to
pool.yaml's platform contacts. Groups are per unit and alert, and a group is notified again no sooner
than `resend_after` (group_interval, at least 30 minutes) and a still-firing alert no sooner than
`repeat_interval`, so the same push never arrives twice within 30 minutes. A unit's "budget exceeded"
inhibits its "forecast over budget". The rules take their thresholds from the catalog (idle days from
rates.yaml, the cost-anomaly factor and coverage floor from pool.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pool_catalog import Catalog, CatalogError, Finding
from pool_catalog.files import POOL_FILE
from pool_catalog.models import Alerting, Contact, ContactKind

from .errors import PoolError

ALERTMANAGER_FILE = "alertmanager.yml"
RULES_FILE = "resource-pool.rules.yaml"
PLATFORM_RECEIVER = "platform"
UNIT_LABEL = "business_unit"
GROUP_BY = [UNIT_LABEL, "alertname"]
BUDGET_EXCEEDED = "BudgetExceeded"
FORECAST_OVER_BUDGET = "BudgetForecastOverBudget"


class AlertsError(PoolError):
    """Alerting cannot be generated (pool.yaml has no alerting section, unwritable output)."""


def receiver_name(unit_id: str) -> str:
    return f"unit-{unit_id}"


@dataclass(frozen=True)
class Timing:
    """Alertmanager's timers as written in its configuration."""

    group_wait: str
    group_interval: str
    repeat_interval: str

    @classmethod
    def of(cls, alerting: Alerting) -> Timing:
        return cls(alerting.group_wait, alerting.resend_after, alerting.repeat_interval)


def alerting_of(catalog: Catalog) -> Alerting:
    """pool.yaml's alerting section, or a CatalogError saying what to add."""
    alerting = catalog.pool.alerting
    if alerting is None:
        pool_file = str(Path(catalog.root) / POOL_FILE)
        raise CatalogError(
            [
                Finding(
                    pool_file,
                    "alerting",
                    "is missing, so no alert has anywhere to go",
                    "add `alerting: {platform_contacts: [{kind: email, to: platform-oncall@example.com}]}`",
                )
            ]
        )
    return alerting


def _webhook(contact: Contact) -> dict[str, Any]:
    """A webhook_config; a secret the receiver needs is named by file (http_config.authorization
    credentials_file, read by Alertmanager on each send), never written here."""
    hook: dict[str, Any] = {"url": contact.url, "send_resolved": contact.send_resolved}
    if contact.credentials_file is not None:
        hook["http_config"] = {"authorization": {"credentials_file": contact.credentials_file}}
    return hook


def _receiver(name: str, contacts: list[Contact]) -> dict[str, Any]:
    receiver: dict[str, Any] = {"name": name}
    emails = [{"to": c.to, "send_resolved": c.send_resolved} for c in contacts if c.kind is ContactKind.EMAIL]
    # WeCom, DingTalk and Feishu robots are reached through their webhook bridges: Alertmanager posts
    # its webhook JSON there like to any webhook.
    hooks = [_webhook(c) for c in contacts if c.kind is not ContactKind.EMAIL]
    if emails:
        receiver["email_configs"] = emails
    if hooks:
        receiver["webhook_configs"] = hooks
    return receiver


def alertmanager_config(catalog: Catalog, timing: Timing | None = None) -> dict[str, Any]:
    """alertmanager.yml as a document. `timing` overrides pool.yaml's timers (the delivery test scales
    them down to seconds); the catalog itself never allows a resend sooner than 30 minutes."""
    alerting = alerting_of(catalog)
    timing = timing or Timing.of(alerting)
    uses_email = any(
        c.kind is ContactKind.EMAIL
        for contacts in [alerting.platform_contacts, *(u.alerts.contacts for u in catalog.units if u.alerts)]
        for c in contacts
    )
    if uses_email and alerting.email is None:
        raise CatalogError(
            [
                Finding(
                    str(Path(catalog.root) / POOL_FILE),
                    "alerting.email",
                    "is missing, but some contacts are e-mail addresses",
                    'add `email: {smarthost: "smtp.example.com:587", sender: resource-pool@example.com}`',
                )
            ]
        )
    config: dict[str, Any] = {"global": {"resolve_timeout": "5m"}}
    if alerting.email is not None:
        config["global"].update(
            {
                "smtp_smarthost": alerting.email.smarthost,
                "smtp_from": alerting.email.sender,
                "smtp_require_tls": alerting.email.require_tls,
            }
        )
        if alerting.email.auth_username is not None:
            config["global"]["smtp_auth_username"] = alerting.email.auth_username
            config["global"]["smtp_auth_password_file"] = alerting.email.auth_password_file
    units = [u for u in catalog.units if u.alerts is not None]
    config["route"] = {
        "receiver": PLATFORM_RECEIVER,
        "group_by": list(GROUP_BY),
        "group_wait": timing.group_wait,
        "group_interval": timing.group_interval,
        "repeat_interval": timing.repeat_interval,
        "routes": [
            {"receiver": receiver_name(u.id), "matchers": [f'{UNIT_LABEL}="{u.id}"'], "continue": False} for u in units
        ],
    }
    config["inhibit_rules"] = [
        {
            # Once a unit is over budget, its forecast of going over says nothing new.
            "source_matchers": [f'alertname="{BUDGET_EXCEEDED}"'],
            "target_matchers": [f'alertname="{FORECAST_OVER_BUDGET}"'],
            "equal": [UNIT_LABEL],
        }
    ]
    config["receivers"] = [
        _receiver(PLATFORM_RECEIVER, alerting.platform_contacts),
        *(_receiver(receiver_name(u.id), u.alerts.contacts) for u in units if u.alerts is not None),
    ]
    return config


# ------------------------------------------------------------------------------------------- rules


def _rule(alert: str, expr: str, duration: str, severity: str, **annotations: str) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": duration,
        "labels": {"severity": severity},
        "annotations": annotations,
    }


def _number(value: object) -> str:
    """A threshold as PromQL reads it: 2.0 → 2, 0.95 → 0.95, 0.29 * 100 → 29, Decimal('50') → 50."""
    text = format(value, "f") if not isinstance(value, float) else f"{value:.12g}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def alert_rules(catalog: Catalog) -> dict[str, Any]:
    """The Prometheus rules file ({"groups": [...]}) with the catalog's thresholds."""
    alerting = alerting_of(catalog)
    anomaly = alerting.cost_anomaly
    idle_days = catalog.rates.idle.alert_after_days
    threshold = catalog.rates.idle.utilization_threshold
    factor, days, floor = _number(anomaly.factor), anomaly.baseline_days, _number(anomaly.min_daily_cost)
    coverage = _number(alerting.coverage_below)
    day_cost = "resource_pool_namespace_last_day_cost"
    rules = [
        _rule(
            FORECAST_OVER_BUDGET,
            # Both series come from the exporter with the same labels (business_unit, currency): one to one.
            "resource_pool_forecast_month_cost > resource_pool_budget_monthly",
            "1h",
            "warning",
            summary="{{ $labels.business_unit }} is heading over its monthly budget",
            description="Business unit {{ $labels.business_unit }} is forecast to spend "
            '{{ printf "%.2f" $value }} {{ $labels.currency }} this month, more than its monthly budget '
            "(linear forecast from the month-to-date cost; resource_pool_budget_burn_ratio shows the share "
            "already spent).",
            runbook="Run `chargeback idle --period <this month>`: its `You pay` column is what the unit is billed "
            "for unused requests (nothing under usage billing, where only lower use lowers the bill); ask the "
            "unit's owners to lower those requests or raise the budget in "
            "catalog/business-units/{{ $labels.business_unit }}.yaml.",
        ),
        _rule(
            BUDGET_EXCEEDED,
            "resource_pool_business_unit_month_to_date_cost > resource_pool_budget_monthly",
            "15m",
            "critical",
            summary="{{ $labels.business_unit }} has spent more than its monthly budget",
            description="Business unit {{ $labels.business_unit }} has spent "
            '{{ printf "%.2f" $value }} {{ $labels.currency }} so far this month, more than its monthly budget.',
            runbook="`chargeback invoice --period <this month>` shows the lines; stop or shrink what is not "
            "needed, or raise the budget in catalog/business-units/{{ $labels.business_unit }}.yaml.",
        ),
        _rule(
            "IdleAllocation",
            # Exported only for allocations rates.yaml's idle policy flags (average use below
            # utilization_threshold); alert when one stays flagged for idle.alert_after_days.
            "resource_pool_idle_allocation_ratio",
            f"{idle_days}d",
            "info",
            summary="{{ $labels.namespace }} leaves most of its {{ $labels.resource }} allocation unused",
            description="Namespace {{ $labels.namespace }} (business unit {{ $labels.business_unit }}, cluster "
            "{{ $labels.cluster }}) has left {{ humanizePercentage $value }} of its {{ $labels.resource }} "
            f"{{{{ $labels.basis }}}} allocation unused, below {_number(threshold * 100)}% use for "
            f"{idle_days} days.",
            runbook="`chargeback idle` shows the recommended allocation (never below the pods' peak requests) "
            "and the pool capacity the allocation holds; lower the quota with `pool request` or in the unit's "
            "catalog file.",
        ),
        _rule(
            "CostAnomaly",
            # The namespace's cost of the last 24 h against its own average of the days before, sampled
            # hourly (a subquery: an average of raw scrapes would read ten thousand samples per series).
            f"{day_cost} > {factor} * avg_over_time({day_cost}[{days}d:1h] offset 1d) and {day_cost} > {floor}",
            "30m",
            "warning",
            summary="{{ $labels.namespace }} cost more than " + factor + "× its usual day",
            description="Namespace {{ $labels.namespace }} (business unit {{ $labels.business_unit }}, cluster "
            '{{ $labels.cluster }}) cost {{ printf "%.2f" $value }} {{ $labels.currency }} in the last 24 hours, '
            f"more than {factor} times its average day over the {days} days before (e.g. an egress spike).",
            runbook="Open the namespace in the Resource Pool dashboard (cost by resource) to see which resource "
            "jumped; `chargeback invoice` lists the lines.",
        ),
        _rule(
            "ScrapeCoverageGap",
            f"resource_pool_scrape_coverage_ratio < {coverage}",
            "1h",
            "warning",
            summary="{{ $labels.cluster }}: {{ $labels.source }} scrapes are missing",
            description="Scrapes of {{ $labels.source }} in cluster {{ $labels.cluster }} covered only "
            "{{ humanizePercentage $value }} of the last 24 hours (floor "
            f"{_number(alerting.coverage_below * 100)}%): usage in the gaps is unknown and reported as "
            "incomplete coverage on the invoices, not billed.",
            runbook="Check that Prometheus scrapes every kubelet (cAdvisor, volume stats) and kube-state-metrics "
            "of the cluster: `up == 0` and the targets page name the missing ones.",
        ),
        _rule(
            "CapabilityUndeclaredCaller",
            # Exported from the doctor's undeclared-caller findings: month to date, so it stays up all month
            # once seen; 15m rides out one failed refresh. Routed by business_unit to the calling unit.
            "resource_pool_capability_undeclared_calls > 0",
            "15m",
            "warning",
            summary="{{ $labels.namespace }} calls {{ $labels.capability }} without declaring it",
            description="Namespace {{ $labels.namespace }} (business unit {{ $labels.business_unit }}, cluster "
            '{{ $labels.cluster }}) made {{ printf "%.0f" $value }} calls of capability {{ $labels.capability }} '
            "({{ $labels.provider_namespace }}) this month without `consumes: [{{ $labels.capability }}]` in its "
            "catalog file: the NetworkPolicy allow-capability-{{ $labels.capability }} should have stopped them, "
            "or traffic bypasses it.",
            runbook="`chargeback doctor --period <this month>` lists the calls. If they are meant, declare "
            "`consumes: [{{ $labels.capability }}]` on the namespace in "
            "catalog/business-units/{{ $labels.business_unit }}.yaml (its calls are billed either way); if not, "
            "check the NetworkPolicy allow-capability-{{ $labels.capability }} in "
            "{{ $labels.provider_namespace }} and how the caller reaches it.",
        ),
        _rule(
            "ResourcePoolExporterDown",
            "absent(resource_pool_exporter_last_refresh_success)",
            "15m",
            "warning",
            summary="The resource pool cost exporter is not scraped",
            description="No resource_pool_exporter_last_refresh_success series for 15 minutes: `chargeback serve` "
            "is down or Prometheus does not scrape it, so budget and idle alerts cannot fire.",
            runbook="Check the exporter's pod and logs, and the scrape configuration (port 9464 by default).",
        ),
        _rule(
            "ResourcePoolExporterRefreshFailing",
            "resource_pool_exporter_last_refresh_success == 0",
            "1h",
            "warning",
            summary="The resource pool cost exporter cannot refresh month-to-date costs",
            description="The last refresh of {{ $labels.instance }} failed and refreshes have failed for an hour; "
            "the cost series show the last good snapshot.",
            runbook="Read the exporter's log (each failed refresh logs the error: Prometheus unreachable, invalid "
            "catalog, missing price) and fix the cause; resource_pool_exporter_refresh_errors_total counts them.",
        ),
    ]
    return {"groups": [{"name": "resource-pool-chargeback", "rules": rules}]}


RULES_HEADER = (
    "# Alerts on the series of `chargeback serve`, made by `pool alerts render` from the catalog\n"
    "# (thresholds: rates.yaml idle.alert_after_days, pool.yaml alerting.cost_anomaly and coverage_below).\n"
)
ALERTMANAGER_HEADER = (
    "# Alertmanager routing made by `pool alerts render` from the catalog: a route per business unit\n"
    "# (business-units/<id>.yaml `alerts.contacts`), the platform route from pool.yaml `alerting`.\n"
    "# Edit the catalog and render again; do not edit this file.\n"
)


class _Dumper(yaml.SafeDumper):
    """Long texts (PromQL, annotations) as folded blocks, so reviewers read them like the hand-written file."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = ">" if len(value) > 80 and "\n" not in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def dump(document: dict[str, Any]) -> str:
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=110, allow_unicode=True)


def render_rules(catalog: Catalog) -> str:
    return RULES_HEADER + dump(alert_rules(catalog))


def render_alertmanager(catalog: Catalog, timing: Timing | None = None) -> str:
    return ALERTMANAGER_HEADER + dump(alertmanager_config(catalog, timing))


def write_alerting(catalog: Catalog, out: Path, timing: Timing | None = None) -> list[Path]:
    """Write alertmanager.yml and the rules file under `out`; returns their paths."""
    files = {ALERTMANAGER_FILE: render_alertmanager(catalog, timing), RULES_FILE: render_rules(catalog)}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
    except OSError as e:
        raise AlertsError(f"cannot write to {out}: {e}; pick a writable --out directory") from e
    return [out / name for name in files]
