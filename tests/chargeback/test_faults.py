"""No wrong money under faults: the real Prometheus of the tests behind a fault-injecting proxy
(`tests/support/fault_proxy.py`): a series it does not hold, a series sent twice, a server failing now and
then, a hung one. The doctor and billing give the same verdict on every fault, and what billing does bill
says on the invoice what it lacks."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from chargeback.collect.doctor import diagnose
from chargeback.collect.findings import ERROR
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.errors import ChargebackError, LedgerError, PrometheusUnreachableError
from chargeback.ledger.close import close_month
from chargeback.ledger.store import Ledger
from chargeback.period import Period
from chargeback.rate.invoices import build_invoices
from chargeback.run import run_period
from pool_catalog import load_catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example
from tests.support.fault_proxy import Faults, fault_proxy, rewrite
from tests.support.prometheus import ScenarioServer, require_prometheus

pytestmark = pytest.mark.prometheus

NOW = dt.datetime(2026, 10, 1, 8, 40, tzinfo=dt.UTC)
PERIOD = Period.month_to_date(NOW)  # 2026-10-01 00:00 – 08:00, the closed-form scenario
FAST = {"backoff": 0.01}


@dataclass(frozen=True)
class Verdict:
    doctor: str
    """"bill" (no error finding) or what stopped it."""
    billing: str


def judge(url: str, settings: dict | None = None) -> Verdict:
    """The doctor's verdict and billing's on the same server: "bill", or the error finding codes / message."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    prometheus = PrometheusSettings(url=url, **(settings or FAST))
    try:
        with PrometheusClient(prometheus) as client:
            findings = diagnose(client, catalog, PERIOD, ["dc1"], "cluster", now=NOW)
        errors = sorted({f.code for f in findings if f.severity == ERROR})
        doctor = "bill" if not errors else " ".join(errors)
    except ChargebackError as e:
        doctor = type(e).__name__
    try:
        run_period(PERIOD, catalog, prometheus, cluster="dc1", cluster_label="cluster", now=NOW)
        billing = "bill"
    except ChargebackError as e:
        findings = getattr(e, "findings", ())
        errors = sorted({f.code for f in findings if f.severity == ERROR})
        billing = " ".join(errors) if errors else type(e).__name__
    return Verdict(doctor, billing)


@pytest.fixture
def proxied(priced_prometheus: ScenarioServer) -> Iterator[tuple[str, Faults]]:
    faults = Faults()
    with fault_proxy(priced_prometheus.url, faults) as url:
        yield url, faults


ROOT_CGROUP = ("container_cpu_usage_seconds_total", "id", "/")


def test_the_proxy_drops_a_series_from_every_selector_but_not_from_names_in_a_regex() -> None:
    query = 'count(container_cpu_usage_seconds_total{id="/"}) or up{__name__=~"container_cpu_usage_seconds_total"}'
    assert rewrite(query, (ROOT_CGROUP,)) == (
        'count(container_cpu_usage_seconds_total{id!="/",id="/"}) or up{__name__=~"container_cpu_usage_seconds_total"}'
    )
    assert rewrite("sum(container_cpu_usage_seconds_total)", (ROOT_CGROUP,)) == (
        'sum(container_cpu_usage_seconds_total{id!="/"})'
    )


@pytest.mark.parametrize(
    ("faults", "verdict"),
    [
        (Faults(), "bill"),
        (Faults(drop=(ROOT_CGROUP,)), "missing-root-cgroup"),
        (Faults(duplicate="container_cpu_usage_seconds_total"), "PrometheusResponseError"),
        # The demo's month sends 545 requests, 15 of them answered 503; these 8 hours in 1-hour pieces send
        # ~170, of which every 10th fails: more than a fixed budget of 12, within 12 + a tenth of the requests.
        (Faults(fail_every=10), "bill"),
    ],
    ids=["clean", "no-root-cgroup", "duplicated-series", "flaky"],
)
def test_the_doctor_and_billing_give_one_verdict(
    priced_prometheus: ScenarioServer, faults: Faults, verdict: str
) -> None:
    """Before: without the root cgroup the doctor said "can bill" and billing refused; a duplicated series was
    billed twice by both; 2 % of 503s failed the month."""
    with fault_proxy(priced_prometheus.url, faults) as url:
        found = judge(url, {**FAST, "chunk": dt.timedelta(hours=1)})
    assert found == Verdict(verdict, verdict)
    if faults.fail_every:
        assert faults.failed > 2 * 12, faults.requests  # each of the two runs met more 503s than 12
    if faults.duplicate:
        assert faults.duplicated


def test_allow_incomplete_without_the_root_cgroup_is_never_complete(proxied: tuple[str, Faults]) -> None:
    """Before: every invoice said coverage "complete" with no data finding while CPU and memory went unbilled."""
    url, faults = proxied
    faults.drop = (ROOT_CGROUP,)
    catalog = load_catalog(EXAMPLE_CATALOG)
    run = run_period(
        PERIOD, catalog, PrometheusSettings(url=url, **FAST), cluster="dc1", cluster_label="cluster", now=NOW,
        allow_incomplete=True,
    )  # fmt: skip
    invoices = [i for i in build_invoices(run.chargeback) if i.namespaces]
    assert invoices
    for invoice in invoices:
        assert not invoice.coverage.complete, invoice.business_unit.id
        assert "missing-root-cgroup" in {f.code for f in invoice.data_findings or []}, invoice.business_unit.id


def test_a_duplicated_series_names_the_series_and_the_fix(proxied: tuple[str, Faults]) -> None:
    url, faults = proxied
    faults.duplicate = "container_cpu_usage_seconds_total"
    with pytest.raises(ChargebackError) as raised:
        run_period(PERIOD, EXAMPLE_CATALOG, PrometheusSettings(url=url), cluster="dc1", cluster_label="cluster",
                   now=NOW, allow_incomplete=True)  # fmt: skip
    message = str(raised.value)
    assert "more than once: summing it would count it twice" in message
    assert "namespace=" in message or "job=" in message
    assert "--query.replica-label" in message


def test_the_retry_budget_grows_with_the_requests(proxied: tuple[str, Faults]) -> None:
    """Before: a fixed 12 retries a run; now 12 plus a tenth of the requests, and the message says the budget
    (not the server on every attempt) ended the run."""
    url, faults = proxied
    faults.fail_every = 10
    settings = PrometheusSettings(url=url, retry_share=0.0, retry_budget=1, backoff=0.01, chunk=dt.timedelta(hours=1))
    with pytest.raises(ChargebackError) as raised:
        run_period(PERIOD, EXAMPLE_CATALOG, settings, cluster="dc1", cluster_label="cluster", now=NOW)
    message = str(raised.value)
    assert "no retries left: the run spent all 1 retries it may" in message
    assert "on every attempt" not in message and "--chunk-hours" not in message
    assert "raise --retry-share" in message


def test_a_hung_server_fails_well_under_a_minute_with_progress(
    proxied: tuple[str, Faults], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: with default flags a hung server took 485 s to fail, silently. Default settings here."""
    url, faults = proxied
    faults.hang = True
    caplog.set_level(logging.INFO, logger="chargeback.progress")
    started = time.monotonic()
    with pytest.raises(PrometheusUnreachableError) as raised:
        settings = PrometheusSettings(url=url)  # the defaults
        run_period(PERIOD, EXAMPLE_CATALOG, settings, cluster="dc1", cluster_label="cluster", now=NOW)
    elapsed = time.monotonic() - started
    assert elapsed < 40, elapsed
    assert "has not answered anything for 30 s" in str(raised.value)
    assert "raise --stall" in str(raised.value)
    progress = [r.getMessage() for r in caplog.records if r.name == "chargeback.progress"]
    assert any("no answer for" in line for line in progress), progress


def test_close_correct_refuses_to_turn_lost_data_into_credit_notes(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    """Before: against a Prometheus that had since lost hours, `close --correct` issued credit notes (exit 0);
    the coverage the month was issued with was never compared."""
    catalog = copy_example(tmp_path)
    out, ledger = tmp_path / "reports", str(tmp_path / "ledger.sqlite")
    issued = close_month("2026-10", catalog, priced_prometheus.url, out, ledger, cluster="dc1", cluster_label="cluster")
    assert issued.outcome == "issued"
    faults = Faults(lose_after=dt.datetime(2026, 10, 1, 5, tzinfo=dt.UTC).timestamp())  # the last 3 of 8 hours
    with fault_proxy(priced_prometheus.url, faults) as url:
        again = {"cluster": "dc1", "cluster_label": "cluster"}
        differs = close_month("2026-10", catalog, url, out, ledger, **again)
        assert differs.outcome == "differs"
        assert any("recomputed with" in w for w in differs.warnings), differs.warnings
        with pytest.raises(LedgerError) as refused:
            close_month("2026-10", catalog, url, out, ledger, correct=True, **again)
        message = str(refused.value)
        assert "refusing to correct 2026-10" in message and "--accept-coverage-loss" in message
        with Ledger(ledger) as book:
            assert [i.kind for i in book.issues()] == ["original"]  # nothing issued
        corrected = close_month("2026-10", catalog, url, out, ledger, correct=True, accept_coverage_loss=True, **again)
    assert corrected.outcome == "corrected"
    assert corrected.issue is not None
    assert all(Decimal(d.total) < 0 for d in corrected.issue.documents)  # what the flag lets through: credits


GAP = (dt.datetime(2026, 10, 1, 2, tzinfo=dt.UTC), dt.datetime(2026, 10, 1, 5, tzinfo=dt.UTC))
"""Hours whose cAdvisor samples of di-api's containers are lost (3 of the scenario's 8)."""


@pytest.fixture(scope="module")
def lost_hours_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The priced closed-form scenario with the cAdvisor samples of di-api's containers gone for 3 hours: what a
    metricRelabelings rule, a remote-write gap or a lost block leaves in Prometheus (the series before and after
    stay, so the namespace is not new, only unreported)."""
    require_prometheus()
    work = tmp_path_factory.mktemp("lost-hours")
    source = work / "scenario.om"
    write_openmetrics(source, [closed_form_scenario("dc1", with_unpriced_storage=False), other_cluster_scenario("dc2")])
    start, end = (moment.timestamp() for moment in GAP)
    kept = work / "kept.om"
    with source.open(encoding="utf-8") as lines, kept.open("w", encoding="utf-8") as out:
        for line in lines:
            lost = (
                line.startswith("container_")
                and 'namespace="di-api"' in line
                and 'cluster="dc1"' in line
                and start <= float(line.rsplit(" ", 1)[1]) < end
            )
            if not lost:
                out.write(line)
    backfill(kept, work / "tsdb")
    with LocalPrometheus(work / "tsdb") as server:
        yield server.url


def test_hours_missing_for_one_namespace_are_a_gap_in_the_doctor_and_on_the_invoice(lost_hours_prometheus: str) -> None:
    """Before: di-api's containers missing for hours were billed as zero use, exit 0, coverage "complete", and
    the doctor saw nothing."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    settings = PrometheusSettings(url=lost_hours_prometheus)
    with PrometheusClient(settings) as client:
        findings = diagnose(client, catalog, PERIOD, ["dc1"], "cluster", now=NOW)
    [found] = [f for f in findings if f.code == "unreported-containers"]
    # The doctor looks at the middle of each hour (a census, cheap over a month), when the scenario's 02:00 hour
    # is not scraped at its middle; billing reads whole hours and finds all three.
    assert found.namespaces == ("di-api",)
    assert "di-api in 2 hour(s) (2026-10-01 03:00, 2026-10-01 04:00)" in found.message
    assert not [f for f in findings if f.severity == ERROR]  # billed, as a gap the invoice shows

    run = run_period(PERIOD, catalog, settings, cluster="dc1", cluster_label="cluster", now=NOW)
    assert any("di-api (3 hour(s)" in w for w in run.warnings), run.warnings
    [invoice] = [i for i in build_invoices(run.chargeback) if i.business_unit.id == "data-insight"]
    covered = {s.namespace: s.coverage.hours_covered for s in invoice.namespaces}
    # The scenario's own scrape gaps (02:00 a third scraped, 05:00 not at all) leave 6.33 of 8 hours; di-api
    # loses 02:00, 03:00 and 04:00 on top.
    assert covered == {"di-api": Decimal("4.00"), "di-batch": Decimal("6.33"), "ingress-nginx": Decimal("6.33")}
    [section] = [s for s in invoice.namespaces if s.namespace == "di-api"]
    kinds = {(e.resource, e.kind, e.hours) for e in section.estimates or []}
    assert {("cpu", "containers not reported", 3), ("memory", "containers not reported", 3)} <= kinds
    assert "unreported-containers" in {f.code for f in invoice.data_findings or []}
