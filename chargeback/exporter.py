"""The live view: month-to-date cost, budget burn and idle allocations as Prometheus metrics.

A refresh bills the month so far (`Period.month_to_date`) with the same code as the invoices
(`run_period`: collect + charge, then the chargeback's invoices for unit totals and budgets) and swaps the
finished snapshot in at once. Scrapes only read the latest snapshot, so they never wait for
Prometheus; a failed refresh keeps the previous snapshot, counts the error and logs its message.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import pandas as pd
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pool_catalog import CatalogError, load_catalog
from pool_catalog.models import BillingMode, Catalog

from .alert_series import last_day_costs, scrape_coverage
from .collect.findings import Finding, refusal_text
from .collect.prometheus import PrometheusSettings
from .collect.promql import LabelMatcher
from .errors import ChargebackError, DataContractError, PeriodError
from .period import Period
from .rate.result import Chargeback
from .run import run_period

log = logging.getLogger(__name__)

PREFIX = "resource_pool_"
COST_LABELS = ["business_unit", "cost_center", "cluster", "namespace", "resource", "tier", "currency"]
IDLE_LABELS = ["business_unit", "cluster", "namespace", "resource", "tier", "pvc", "basis"]
UNDECLARED_LABELS = ["business_unit", "cluster", "namespace", "capability", "provider_namespace"]

METRICS: dict[str, str] = {
    "month_to_date_cost": "Cost of the month so far per line as the invoice bills it, in the currency label; "
    "resources only: capability charges and credits are in business_unit_month_to_date_cost.",
    "business_unit_month_to_date_cost": "Invoice total of the month so far per business unit, in the currency label.",
    "budget_monthly": "Monthly budget of the business unit from the catalog, in the currency label.",
    "budget_burn_ratio": "Month-to-date cost divided by the monthly budget (1 = budget spent).",
    "forecast_month_cost": "Linear forecast of the whole month: month-to-date cost x hours in month / hours elapsed.",
    "forecast_budget_ratio": "Forecast month cost divided by the monthly budget (above 1: heading over budget).",
    "idle_allocation_ratio": "Unused share of an idle allocation (1 - average utilization) this month so far; "
    "only allocations flagged by rates.yaml's idle policy.",
    "idle_capacity_held": "Pool capacity an idle allocation holds unused this month so far, at the rate card, in "
    "the currency label; counted once per allocation (its quota, else its requests: the other row is 0), so a "
    "sum over any labels adds up to the invoices' figure.",
    "idle_unit_pays": "What the unit is billed for the unused part of an idle allocation this month so far (its "
    "requests under request or max billing; 0 under usage billing), in the currency label.",
    "namespace_last_day_cost": "Cost of the namespace's own use in the last 24 billed hours (fewer early in the "
    "month), in the currency label; the CostAnomaly rule compares it with its trailing average.",
    "scrape_coverage_ratio": "Share of the last 24 billed hours that a cluster's scrapes of a source "
    "(cadvisor, kube-state-metrics, kubelet-volume-stats) covered (1 = no gap).",
    "north_star_volume": "Month-to-date volume of the unit's north-star metric (orders, sign-ins …) from its "
    "catalog query; the `metric` and `unit` labels say what is counted.",
    "cost_per_north_star_unit": "Month-to-date cost of the unit divided by its north-star volume, in the currency "
    "label (not exported while the volume is 0 or unknown).",
    "capability_undeclared_calls": "Calls so far this month from a namespace to a capability its catalog entry "
    "does not declare in `consumes` (the doctor's undeclared-caller finding): the NetworkPolicy should have "
    "stopped them, or traffic bypasses it. business_unit owns the calling namespace (empty: no unit does).",
    "month_to_date_hours": "Whole hours of the month billed so far (the snapshot covers month start to that hour).",
    "month_hours": "Hours in the whole calendar month being billed.",
    "exporter_last_refresh_success": "1 if the last refresh succeeded, 0 if it failed (the previous snapshot stays).",
    "exporter_last_success_timestamp_seconds": "Unix time of the last successful refresh (0: none yet).",
    "exporter_refresh_duration_seconds": "Wall time of the last refresh attempt, in seconds.",
    "exporter_refresh_errors_total": "Refreshes that failed since the exporter started.",
}
"""Every series the exporter can expose (without the prefix) and its HELP text, units included."""


def metric_names() -> set[str]:
    """Full names of every series the exporter exposes (counters with their `_total`)."""
    return {PREFIX + name for name in METRICS}


def _gauge(name: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, METRICS[name], labels=list(labels))


SERVE_REFUSES = (
    "serve publishes no figures from such data: the previous snapshot stays up and the next refresh tries again"
)
"""What a refused refresh does instead of billing anyway (serve has no --allow-incomplete)."""


class ExporterError(ChargebackError):
    """The exporter cannot start (bad --listen or --interval, port taken)."""


@dataclass(frozen=True)
class ExporterSource:
    """What a refresh bills: the catalog and the Prometheus holding the usage."""

    catalog: Path
    prometheus: PrometheusSettings
    cluster: str | None = None
    cluster_label: str | None = None
    matchers: Sequence[LabelMatcher | str] = ()
    billing_mode: BillingMode | None = None


@dataclass(frozen=True)
class Snapshot:
    """The metric families of one successful refresh."""

    period: Period
    families: tuple[Metric, ...]
    warnings: list[str] = field(default_factory=list)


def cost_lines(chargeback: Chargeback) -> pd.DataFrame:
    """Line amounts (Decimal) summed per exported label set: the month_to_date_cost series."""
    lines = chargeback.lines.assign(currency=chargeback.currency)
    if lines.empty:
        return pd.DataFrame(columns=[*COST_LABELS, "amount"])
    return lines.groupby(COST_LABELS, sort=True)["amount"].agg(lambda s: sum(s, Decimal(0))).reset_index()


def _cost_families(chargeback: Chargeback) -> list[Metric]:
    cost = _gauge("month_to_date_cost", COST_LABELS)
    for row in cost_lines(chargeback).to_dict("records"):
        cost.add_metric([str(row[name]) for name in COST_LABELS], float(row["amount"]))
    return [cost]


def _unit_families(chargeback: Chargeback) -> list[Metric]:
    """Unit totals, budgets, burn and forecast from the invoices themselves, so they agree to the cent."""
    period, currency = chargeback.period, chargeback.currency
    total = _gauge("business_unit_month_to_date_cost", ["business_unit", "currency"])
    forecast = _gauge("forecast_month_cost", ["business_unit", "currency"])
    budget = _gauge("budget_monthly", ["business_unit", "currency"])
    burn = _gauge("budget_burn_ratio", ["business_unit"])
    forecast_ratio = _gauge("forecast_budget_ratio", ["business_unit"])
    for invoice in chargeback.invoices:
        unit = invoice.business_unit.id
        spent = invoice.total
        projected = spent * period.month_hours / period.hours
        total.add_metric([unit, currency], float(spent))
        forecast.add_metric([unit, currency], float(projected))
        if invoice.budget is not None:
            monthly = invoice.budget.monthly
            budget.add_metric([unit, currency], float(monthly))
            if monthly:
                burn.add_metric([unit], float(spent / monthly))
                forecast_ratio.add_metric([unit], float(projected / monthly))
    return [total, forecast, budget, burn, forecast_ratio]


def _idle_families(chargeback: Chargeback) -> list[Metric]:
    ratio = _gauge("idle_allocation_ratio", IDLE_LABELS)
    held = _gauge("idle_capacity_held", [*IDLE_LABELS, "currency"])
    pays = _gauge("idle_unit_pays", [*IDLE_LABELS, "currency"])
    for row in chargeback.idle.to_dict("records"):
        labels = [str(row[name]) for name in IDLE_LABELS]
        ratio.add_metric(labels, float(1 - row["utilization"]))
        held.add_metric([*labels, chargeback.currency], float(row["capacity_held"]))
        pays.add_metric([*labels, chargeback.currency], float(row["unit_pays"]))
    return [ratio, held, pays]


def _alert_families(chargeback: Chargeback) -> list[Metric]:
    """The series the cost-anomaly and coverage-gap alerts read."""
    day = _gauge("namespace_last_day_cost", ["business_unit", "cluster", "namespace", "currency"])
    for row in last_day_costs(chargeback).to_dict("records"):
        labels = [row["business_unit"], row["cluster"], row["namespace"], chargeback.currency]
        day.add_metric(labels, float(row["amount"]))
    coverage = _gauge("scrape_coverage_ratio", ["cluster", "source"])
    for row in scrape_coverage(chargeback).to_dict("records"):
        coverage.add_metric([row["cluster"], row["source"]], row["coverage"])
    return [day, coverage, _undeclared_family(chargeback)]


def _undeclared_family(chargeback: Chargeback) -> Metric:
    """The undeclared-caller findings of the run, one series per calling namespace and capability, labelled
    with the caller's unit so Alertmanager routes the alert to its owners."""
    undeclared = _gauge("capability_undeclared_calls", UNDECLARED_LABELS)
    for finding in chargeback.findings:
        if finding.code != "undeclared-caller":
            continue
        (namespace,) = finding.namespaces
        owner = chargeback.catalog.owner_of(namespace, finding.cluster)
        labels = [owner.id if owner else "", finding.cluster, namespace, finding.capability, finding.provider]
        undeclared.add_metric(labels, float(finding.calls))
    return undeclared


def _north_star_families(chargeback: Chargeback) -> list[Metric]:
    """Cost per unit of business so far this month, from the invoices' north-star figures."""
    volume = _gauge("north_star_volume", ["business_unit", "metric", "unit"])
    per_unit = _gauge("cost_per_north_star_unit", ["business_unit", "unit", "currency"])
    for invoice in chargeback.invoices:
        star = invoice.north_star
        if star is None or star.volume is None:
            continue
        unit = invoice.business_unit.id
        volume.add_metric([unit, star.name, star.unit], float(star.volume))
        if star.cost_per_unit is not None:
            # Unrounded, so a cheap unit (a fraction of a cent) still moves on the dashboard.
            per_unit.add_metric([unit, star.unit, chargeback.currency], float(invoice.total) / float(star.volume))
    return [volume, per_unit]


def snapshot_of(chargeback: Chargeback, warnings: Sequence[str] = ()) -> Snapshot:
    """Every business series of one month-to-date chargeback."""
    hours = _gauge("month_to_date_hours")
    hours.add_metric([], chargeback.period.hours)
    month = _gauge("month_hours")
    month.add_metric([], chargeback.period.month_hours)
    families = [
        *_cost_families(chargeback),
        *_unit_families(chargeback),
        *_idle_families(chargeback),
        *_alert_families(chargeback),
        *_north_star_families(chargeback),
        hours,
        month,
    ]
    return Snapshot(period=chargeback.period, families=tuple(families), warnings=list(warnings))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _Health:
    ok: bool = False
    last_success: float = 0.0
    duration: float = 0.0
    errors: int = 0


class MonthToDateCollector(Collector):
    """A prometheus_client collector serving the latest snapshot; `refresh()` computes a new one."""

    def __init__(
        self,
        source: ExporterSource,
        clock: Callable[[], dt.datetime] = utc_now,
        interval: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        month: Period | None = None,
    ) -> None:
        """`interval`: seconds between refreshes; a refresh still running after it counts as failing.
        `month`: bill that calendar month (see `billed_period`) instead of the clock's."""
        self.source = source
        self.clock = clock
        self.month = month
        self.interval = interval
        self.monotonic = monotonic
        self.snapshot: Snapshot | None = None
        self._health = _Health()
        self._refreshing = threading.Lock()
        self._running_since: float | None = None

    def compute(self, period: Period, catalog: Catalog | None = None) -> Snapshot:
        """Bill the month so far (`catalog`: the source's, already loaded); raises ChargebackError or
        CatalogError.

        The doctor's checks run first, as for an invoice: a month-to-date period ends at the last whole
        hour, so it is never refused as not over; but no data, a required series missing or a partial
        answer refuse the refresh (DataContractError), so the previous snapshot stays up, the error is
        counted and exporter_last_refresh_success drops to 0 instead of publishing wrong figures.
        Warning findings are logged with each refresh."""
        run = run_period(
            period,
            catalog or self.source.catalog,
            self.source.prometheus,
            cluster=self.source.cluster,
            cluster_label=self.source.cluster_label,
            matchers=self.source.matchers,
            billing_mode=self.source.billing_mode,
            now=self.clock(),
        )
        notes = [f"data finding {f.line()}; fix: {f.fix}" for f in run.findings if f.on_invoice]
        return snapshot_of(run.chargeback, [*run.warnings, *notes])

    def refresh(self) -> bool:
        """Compute and swap in a new snapshot; on failure keep the old one, count and log the error.
        Returns False when the refresh failed."""
        with self._refreshing:
            started = self.monotonic()
            self._running_since = started
            try:
                return self._refresh(started)
            finally:
                self._running_since = None

    def _refresh(self, started: float) -> bool:
        health = self._health
        try:
            try:
                # The month of the catalog's billing zone: its months may begin at another UTC hour than 00:00.
                catalog = load_catalog(self.source.catalog)
                period = billed_period(self.clock(), self.month, catalog.pool.billing.time_zone)
            except PeriodError as e:
                # The first hour of a month: nothing to bill yet, the last month's final figures stay up.
                log.info("%s; keeping the previous snapshot", e)
                return True
            snapshot = self.compute(period, catalog)
        except Exception as e:  # a long-running server survives any failed refresh
            duration = self.monotonic() - started
            self._health = _Health(False, health.last_success, duration, health.errors + 1)
            if isinstance(e, DataContractError):  # serve has no --allow-incomplete: say what it does instead
                findings = [f for f in e.findings if isinstance(f, Finding)]
                text = refusal_text(findings, period.label, SERVE_REFUSES)
                log.error("refresh failed, still serving the previous snapshot: %s", text)
            elif isinstance(e, ChargebackError | CatalogError):
                log.error("refresh failed, still serving the previous snapshot: %s", e)
            else:  # not a user-facing error: keep the trace for the bug report
                log.exception("refresh failed unexpectedly, still serving the previous snapshot")
            return False
        # One assignment each: a scrape sees the old snapshot or the new one, never a mix.
        self.snapshot = snapshot
        duration = self.monotonic() - started
        for warning in snapshot.warnings:
            log.warning("%s", warning)
        if self.interval is not None and duration > self.interval:
            # The figures are right but late: alert as for a failure, the next refresh is already due.
            self._health = _Health(False, time.time(), duration, health.errors + 1)
            log.error(
                "refresh of %s took %.1f s, longer than the interval of %g s: counted as failed",
                snapshot.period,
                duration,
                self.interval,
            )
            return False
        self._health = _Health(True, time.time(), duration, health.errors)
        log.info("refreshed %s up to %s in %.2f s", snapshot.period, snapshot.period.end, duration)
        return True

    def overrunning(self) -> bool:
        """True while a refresh has been running for longer than the interval."""
        since = self._running_since
        return self.interval is not None and since is not None and self.monotonic() - since > self.interval

    def collect(self) -> Iterator[Metric]:
        snapshot, health = self.snapshot, self._health
        if self.overrunning():  # a hung Prometheus: fail now, not when the request finally gives up
            health = _Health(
                False, health.last_success, self.monotonic() - (self._running_since or 0), health.errors + 1
            )
        if snapshot is not None:
            yield from snapshot.families
        success = _gauge("exporter_last_refresh_success")
        success.add_metric([], 1.0 if health.ok else 0.0)
        last = _gauge("exporter_last_success_timestamp_seconds")
        last.add_metric([], health.last_success)
        duration = _gauge("exporter_refresh_duration_seconds")
        duration.add_metric([], health.duration)
        # CounterMetricFamily appends _total to the name it is given.
        errors = CounterMetricFamily(
            PREFIX + "exporter_refresh_errors", METRICS["exporter_refresh_errors_total"], value=health.errors
        )
        yield from (success, last, duration, errors)


def billed_period(now: dt.datetime, month: Period | None = None, time_zone: str = "UTC") -> Period:
    """What a refresh at `now` bills: the month so far of the billing `time_zone`, or with `month`
    (`serve --period`, e.g. the demo's October) that month — whole once it has ended, so every figure is its
    invoice's, else up to `now`. A month that has not begun at `now` raises PeriodError."""
    month = None if month is None else month.in_zone(time_zone)
    if month is None or month.start <= now < month.end:
        return Period.month_to_date(now, time_zone)
    if now >= month.end:
        return month.in_zone(time_zone)
    raise PeriodError(f"--period {month.label} has not begun at {now:%Y-%m-%d %H:%M} UTC: choose a month that has")


def parse_utc_time(text: str, flag: str) -> dt.datetime:
    """'2026-10-16T00:00:00Z' → an aware UTC datetime (a time without offset is read as UTC)."""
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ExporterError(f"{flag} {text!r} is not a time: write an ISO time such as 2026-10-16T00:00:00Z") from None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


_INTERVAL = re.compile(r"^(\d+)([smh])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_interval(text: str) -> float:
    """'15m' → 900.0; seconds, minutes or hours, at least 10 s (a refresh queries a month of data)."""
    match = _INTERVAL.match(text.strip())
    if not match:
        raise ExporterError(f"--interval {text!r} is not a duration: write e.g. 30s, 15m or 1h")
    seconds = float(int(match.group(1)) * _SECONDS[match.group(2)])
    if seconds < 10:
        raise ExporterError(f"--interval {text!r} is shorter than 10s: each refresh bills the month so far")
    return seconds


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:9464' → ('127.0.0.1', 9464)."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ExporterError(f"--listen {text!r} is not HOST:PORT: write e.g. 127.0.0.1:9464")
    return host.strip("[]"), int(port)


def registry_of(collector: MonthToDateCollector, *extra: Collector) -> CollectorRegistry:
    """A registry holding only the collector and `extra` ones, e.g. the ledger's closed months (no
    process/platform metrics of the default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    for other in extra:
        registry.register(other)
    return registry


def _refresh_every(collector: MonthToDateCollector, interval: float, stop: threading.Event) -> None:
    while not stop.is_set():
        collector.refresh()
        stop.wait(interval)


def serve(
    collector: MonthToDateCollector,
    listen: str,
    interval: float,
    stop: threading.Event,
    extra: Sequence[Collector] = (),
) -> None:
    """Serve /metrics on `listen` and refresh every `interval` seconds until `stop` is set (`extra`: further
    collectors served beside it)."""
    host, port = parse_listen(listen)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry_of(collector, *extra))
    except OSError as e:
        raise ExporterError(f"cannot listen on {listen}: {e}; pick a free port with --listen") from e
    log.info("serving metrics on http://%s:%d/metrics, refreshing every %g s", host, port, interval)
    # Refreshes run beside the waiting caller, so a stop request ends the process at once, even mid-refresh.
    refresher = threading.Thread(target=_refresh_every, args=(collector, interval, stop), name="refresh", daemon=True)
    refresher.start()
    try:
        while not stop.wait(1):
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
