"""`chargeback doctor` and the refusal in `chargeback invoice`: each planted defect of real-shaped data
(tests/support/doctor_data.py, served by a real Prometheus) is named with its code, severity and fix; an empty
Prometheus, a --match typo, a month not over or in the future and a partial answer refuse billing;
--allow-incomplete bills and prints the findings on the invoices they touch."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.doctor import census_query, default_period, diagnose, diagnose_cluster, lookback_for
from chargeback.collect.findings import ERROR, INFO, WARNING, Finding
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.collect.promql import LabelMatcher
from chargeback.errors import DataContractError
from chargeback.exporter import ExporterSource, MonthToDateCollector
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.result import charge
from chargeback.run import run_period
from pool_catalog import load_catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.doctor_data import Variant, write_variants
from tests.support.prometheus import ScenarioServer, require_prometheus
from tests.support.usage_frames import steady, usage_frame

pytestmark = pytest.mark.prometheus

OCTOBER = Period.parse("2026-10")
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
runner = CliRunner()

VARIANTS = [
    Variant("clean"),
    Variant("no-phase", drop=("kube_pod_status_phase",)),
    Variant("crio", runtime="cri-o://1.28.1", sandbox_pod=True),
    Variant("dup-jobs", second_cadvisor_job=60.0),
    Variant("dup-ksm", ksm_replicas=2),
    Variant("silent", silent=("srv-gen-02", 2, 4)),
    Variant("unmounted", unmounted_claim=True),
    Variant("nan", nan_hour=3),
    Variant("no-node", node_label=False),
    Variant("hostnet", host_network=True),
    Variant("no-volume-stats", drop=("kubelet_volume_stats_used_bytes",)),
    Variant("late", first_hour=2),
    # For the billing tests: without the root cgroup's network series, which collection before its
    # rework for real shapes rejects (namespace "") — the doctor's findings are what those tests check.
    Variant("bill-no-phase", drop=("kube_pod_status_phase",), root_cgroup=False),
    Variant("bill-hostnet", host_network=True, root_cgroup=False),
]


@dataclass(frozen=True)
class DoctorServer:
    url: str


@pytest.fixture(scope="module")
def doctor_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoctorServer]:
    require_prometheus()
    workdir = tmp_path_factory.mktemp("doctor")
    write_variants(workdir / "variants.om", VARIANTS)
    backfill(workdir / "variants.om", workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as server:
        yield DoctorServer(server.url)


def findings_of(server: DoctorServer, variant: str, period: Period = OCTOBER) -> list[Finding]:
    with PrometheusClient(PrometheusSettings(url=server.url)) as client:
        matchers = [LabelMatcher("variant", variant), LabelMatcher("cluster", "dc1")]
        return diagnose_cluster(client, period, "dc1", matchers, now=NOW)


def only(findings: list[Finding], code: str) -> Finding:
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, f"expected one {code} finding, got {[f.line() for f in findings]}"
    return found[0]


def test_clean_cluster_has_no_errors_or_warnings(doctor_prometheus: DoctorServer) -> None:
    findings = findings_of(doctor_prometheus, "clean")
    assert [f.line() for f in findings if f.severity != INFO] == []
    interval = only(findings, "scrape-interval")
    assert "job kubelet 30 s" in interval.message and "job kube-state-metrics 60 s" in interval.message
    # The root cgroup's network series of both kubelets: counted, told, never billed.
    root = only(findings, "no-namespace-series")
    assert root.severity == INFO and "up to 2 container_network_transmit_bytes_total series" in root.message
    assert 'id="/"' in root.message


@pytest.mark.parametrize(
    ("variant", "severity", "code", "message", "fix"),
    [
        (
            "no-phase",
            ERROR,
            "missing-series:kube_pod_status_phase",
            "kube_pod_status_phase (kube-state-metrics) has no series",
            "kube_pod_status_phase is missing: add kube_pod_status_phase to kube-state-metrics --metric-allowlist",
        ),
        ("crio", INFO, "sandbox-container-pod", "runtime cri-o://1.28.1", "egress is read from the POD sandbox"),
        ("dup-jobs", WARNING, "duplicate-targets", "by 2 jobs (cadvisor, kubelet)", "remove the extra scrape config"),
        (
            "dup-ksm",
            WARNING,
            "duplicate-targets",
            "by 2 instances of job kube-state-metrics (10.244.1.5:8443, 10.244.1.6:8443)",
            "--shard",
        ),
        (
            "silent",
            WARNING,
            "silent-target",
            "node srv-gen-02 was not scraped (no cAdvisor series) in 2 hour(s) (2026-10-01 02:00, 2026-10-01 03:00)"
            " while pods ran on it in namespace(s) cs-miniapp",
            "check the kubelet target of node srv-gen-02",
        ),
        ("unmounted", WARNING, "unmounted-claims", "cs-miniapp/archive (6 h)", "scaled-down StatefulSet"),
        (
            "nan",
            WARNING,
            "nan-samples",
            "container_memory_working_set_bytes has NaN or infinite samples on 2 series (job kubelet; "
            "namespace(s) di-api) in 1 hour(s) (2026-10-01 03:00)",
            "exports NaN",
        ),
        ("no-node", WARNING, "missing-label:node", "have no node label", "__meta_kubernetes_node_name"),
        ("hostnet", WARNING, "host-network-pods", "kube-system (1 pod)", "without hostNetwork: true"),
        (
            "no-volume-stats",
            WARNING,
            "missing-series:kubelet_volume_stats_used_bytes",
            "PVCs exist but their use cannot be measured",
            "scrape the kubelets' /metrics endpoint",
        ),
        ("late", ERROR, "retention-short", "in the hour 2026-10-01 02:00, 2 hour(s) after", "retention.time"),
    ],
)
def test_each_planted_defect_is_named(
    doctor_prometheus: DoctorServer, variant: str, severity: str, code: str, message: str, fix: str
) -> None:
    findings = findings_of(doctor_prometheus, variant)
    finding = only([f for f in findings if f.severity == severity], code)
    assert finding.cluster == "dc1"
    assert message in finding.message, finding.message
    assert fix in finding.fix, finding.fix
    # Nothing else is wrong with these clusters: no other error, and warnings only where planted.
    others = [f.line() for f in findings if f.severity == ERROR and f is not finding]
    assert others == []


def test_findings_name_only_the_touched_namespaces(doctor_prometheus: DoctorServer) -> None:
    assert only(findings_of(doctor_prometheus, "hostnet"), "host-network-pods").namespaces == ("kube-system",)
    assert only(findings_of(doctor_prometheus, "silent"), "silent-target").namespaces == ("cs-miniapp",)
    # Cluster-wide findings name none: they touch every invoice of the cluster.
    assert only(findings_of(doctor_prometheus, "no-phase"), "missing-series:kube_pod_status_phase").namespaces == ()


def test_two_jobs_of_one_source_with_different_intervals_warn(doctor_prometheus: DoctorServer) -> None:
    findings = findings_of(doctor_prometheus, "dup-jobs")
    warning = only([f for f in findings if f.severity == WARNING], "scrape-interval")
    assert "cadvisor 60 s, kubelet 30 s" in warning.message


def test_a_typo_in_match_is_no_data_with_the_values_that_exist(doctor_prometheus: DoctorServer) -> None:
    with PrometheusClient(PrometheusSettings(url=doctor_prometheus.url)) as client:
        findings = diagnose_cluster(client, OCTOBER, "dc1", [LabelMatcher("variant", "claen")], now=NOW)
    finding = only(findings, "no-data")
    assert finding.severity == ERROR
    assert '{variant="claen"}' in finding.message
    assert "variant has the values bill-hostnet, bill-no-phase, clean, crio" in finding.fix


def test_months_without_data_not_over_or_in_the_future(doctor_prometheus: DoctorServer) -> None:
    september = findings_of(doctor_prometheus, "clean", Period.parse("2026-09"))
    assert [f.code for f in september] == ["no-data"]
    assert "still holds 2026-09" not in september[0].fix  # matchers were given: the fix is about them
    december = findings_of(doctor_prometheus, "clean", Period.parse("2026-12"))
    assert [f.code for f in december] == ["no-data", "period-not-over"]
    assert "bill 2026-12 after 2027-01-01T00:00:00Z" in only(december, "period-not-over").fix
    future = findings_of(doctor_prometheus, "clean", Period.parse("2027-02"))
    assert [(f.severity, f.code) for f in future] == [(ERROR, "period-in-future")]
    assert "--period 2026-11" in future[0].fix


def test_closed_form_scenario_has_no_error_findings(scenario_prometheus: ScenarioServer) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    with PrometheusClient(PrometheusSettings(url=scenario_prometheus.url)) as client:
        findings = diagnose(client, catalog, OCTOBER, ["dc1"], "cluster", now=NOW)
    assert [f.line() for f in findings if f.severity == ERROR] == []
    # The synthetic cluster has what real ones have (node labels, kube_pod_info): only the intervals are told,
    # and that it has no mesh counter for the capabilities the catalog exposes (no calls counted).
    assert {f.code for f in findings} == {"scrape-interval", "no-call-series"}


def test_empty_prometheus_is_no_data(tmp_path: Path) -> None:
    require_prometheus()
    (tmp_path / "tsdb").mkdir()
    with LocalPrometheus(tmp_path / "tsdb") as server, PrometheusClient(PrometheusSettings(url=server.url)) as client:
        findings = diagnose_cluster(client, OCTOBER, "dc1", now=NOW)
    assert [(f.severity, f.code) for f in findings] == [(ERROR, "no-data")]
    assert "check --prometheus" in findings[0].fix and "still holds 2026-10" in findings[0].fix


def test_a_partial_answer_is_an_error() -> None:
    """Thanos/Mimir answer with `warnings` when a store is down: every figure may lack series."""
    first_hour = OCTOBER.start.timestamp() + 1800

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/status/buildinfo":
            return httpx.Response(404, json={"status": "error", "error": "not found"})
        result = []
        if request.url.path == "/api/v1/query_range" and "series:" in request.url.params["query"]:
            metric = {"doctor_probe": "series:kube_pod_status_phase", "job": "kube-state-metrics"}
            result = [{"metric": metric, "values": [[first_hour, "3"]]}]
        body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        body["warnings"] = ["No StoreAPIs matched for this query: store 10.0.0.9:10901 is down"]
        return httpx.Response(200, json=body)

    settings = PrometheusSettings(url="http://thanos.example", retries=0)
    with PrometheusClient(settings, transport=httpx.MockTransport(answer)) as client:
        findings = diagnose_cluster(client, OCTOBER, "dc1", now=NOW)
    partial = only(findings, "partial-response")
    assert partial.severity == ERROR
    assert "store 10.0.0.9:10901 is down" in partial.message
    assert "partial_response=false" in partial.fix


def test_census_is_one_aggregated_query_per_hour() -> None:
    query = census_query([LabelMatcher("cluster", 'dc"1')])
    assert 'count by (job) (kube_pod_status_phase{cluster="dc\\"1"})' in query
    assert query.count(" or ") == query.count('"doctor_probe"') - 1


def test_default_period_is_the_last_complete_month() -> None:
    assert default_period(dt.datetime(2026, 1, 15, tzinfo=dt.UTC)).label == "2025-12"
    assert default_period(dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.UTC)).label == "2026-11"


# ---------------------------------------------------------------- the command line and the refusal


def args(command: str, url: str, variant: str, *extra: str) -> list[str]:
    return [command, "--period", "2026-10", "--prometheus", url, "--catalog", str(EXAMPLE_CATALOG),
            "--cluster", "dc1", "--cluster-label", "cluster", "--match", f'variant="{variant}"', *extra]  # fmt: skip


def test_doctor_command_exit_status_and_json(doctor_prometheus: DoctorServer) -> None:
    clean = runner.invoke(app, args("doctor", doctor_prometheus.url, "clean"), terminal_width=200)
    assert clean.exit_code == 0, clean.output
    assert "cluster dc1" in clean.output and "chargeback invoice can bill this period" in clean.output

    broken = runner.invoke(app, args("doctor", doctor_prometheus.url, "no-phase"), terminal_width=200)
    assert broken.exit_code == 1, broken.output
    assert "missing-series:kube_pod_status_phase" in broken.output
    assert "fix: kube_pod_status_phase is missing: add kube_pod_status_phase to kube-state-metrics" in broken.output

    as_json = runner.invoke(app, [*args("doctor", doctor_prometheus.url, "hostnet"), "--json"])
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.stdout)
    assert document["period"] == "2026-10" and document["errors"] == 0
    codes = {(f["severity"], f["code"]) for f in document["findings"]}
    assert (WARNING, "host-network-pods") in codes


def test_doctor_command_bad_flags_and_unreachable_exit_2(tmp_path: Path) -> None:
    bad = runner.invoke(app, ["doctor", "--prometheus", "http://127.0.0.1:9", "--period", "2026-13"])
    assert bad.exit_code == 2 and "months run from 01 to 12" in bad.output
    typo = runner.invoke(app, ["doctor", "--prometheus", "http://127.0.0.1:9", "--match", "not a matcher"])
    assert typo.exit_code == 2 and "is not a label matcher" in typo.output
    gone = runner.invoke(
        app,
        ["doctor", "--prometheus", "http://127.0.0.1:9", "--catalog", str(EXAMPLE_CATALOG), "--timeout", "2"],
        terminal_width=200,
    )
    assert gone.exit_code == 2 and "cannot reach http://127.0.0.1:9" in gone.output
    assert "Traceback" not in gone.output


def test_invoice_refuses_a_missing_required_series_and_writes_nothing(
    doctor_prometheus: DoctorServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, args("invoice", doctor_prometheus.url, "no-phase", "--out", str(out)), terminal_width=250
    )
    assert result.exit_code == 2, result.output
    assert "refusing to bill 2026-10: 1 data finding(s) would make figures silently wrong" in result.output
    assert "missing-series:kube_pod_status_phase" in result.output
    assert "fix: kube_pod_status_phase is missing" in result.output and "--allow-incomplete" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        (["--period", "2026-09"], "no-data"),
        (["--period", "2027-03"], "period-in-future"),
        (["--match", 'variant="claen"'], "no-data"),
    ],
)
def test_invoice_refuses_no_data_and_months_in_the_future(
    doctor_prometheus: DoctorServer, tmp_path: Path, extra: list[str], code: str
) -> None:
    command = args("invoice", doctor_prometheus.url, "clean", "--out", str(tmp_path / "out"))
    if extra[0] == "--period":
        command[command.index("--period") + 1] = extra[1]
    else:
        command[command.index("--match") + 1] = extra[1]
    result = runner.invoke(app, command, terminal_width=250)
    assert result.exit_code == 2, result.output
    assert code in result.output and "refusing to bill" in result.output
    assert not (tmp_path / "out").exists()


def test_run_period_refuses_a_month_not_over(doctor_prometheus: DoctorServer) -> None:
    with pytest.raises(DataContractError) as refused:
        run_period(
            "2026-10",
            EXAMPLE_CATALOG,
            doctor_prometheus.url,
            cluster="dc1",
            cluster_label="cluster",
            matchers=['variant="clean"'],
            now=dt.datetime(2026, 10, 20, tzinfo=dt.UTC),
        )
    errors = [f.code for f in refused.value.findings if f.severity == ERROR]  # type: ignore[attr-defined]
    assert errors == ["period-not-over"]
    assert "chargeback serve" in str(refused.value)


def test_allow_incomplete_bills_and_prints_findings_on_affected_invoices(
    doctor_prometheus: DoctorServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    command = args("invoice", doctor_prometheus.url, "bill-no-phase", "--out", str(out), "--allow-incomplete")
    result = runner.invoke(app, command, terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "error missing-series:kube_pod_status_phase [dc1]" in result.output  # on stderr too
    for unit in ("data-insight", "community-services", "unallocated"):
        invoice = json.loads((out / "invoices" / f"{unit}.json").read_text(encoding="utf-8"))
        codes = [f["code"] for f in invoice["data_findings"]]
        assert "missing-series:kube_pod_status_phase" in codes, unit
        html = (out / "invoices" / f"{unit}.html").read_text(encoding="utf-8")
        assert "Data findings" in html and "kube_pod_status_phase is missing" in html
    summary = (out / "finance-summary.html").read_text(encoding="utf-8")
    assert "Data findings" in summary


def test_warnings_are_billed_and_shown_only_where_they_touch(doctor_prometheus: DoctorServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app, args("invoice", doctor_prometheus.url, "bill-hostnet", "--out", str(out)), terminal_width=250
    )
    assert result.exit_code == 0, result.output
    assert "warning host-network-pods [dc1]" in result.output
    unallocated = json.loads((out / "invoices" / "unallocated.json").read_text(encoding="utf-8"))
    assert [f["code"] for f in unallocated["data_findings"]] == ["host-network-pods"]
    # data-insight's namespaces are not touched: its invoice has no findings block at all.
    data_insight = json.loads((out / "invoices" / "data-insight.json").read_text(encoding="utf-8"))
    assert "data_findings" not in data_insight
    assert "Data findings" not in (out / "invoices" / "data-insight.html").read_text(encoding="utf-8")


def test_serve_is_never_refused_as_not_over_but_is_refused_without_data(
    doctor_prometheus: DoctorServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A month-to-date period ends at the last whole hour: billed, warnings logged. A month without data
    is refused like an invoice: the previous snapshot stays and the failure is counted."""
    settings = PrometheusSettings(url=doctor_prometheus.url, retries=0)
    matchers = (LabelMatcher("variant", "bill-hostnet"),)
    source = ExporterSource(EXAMPLE_CATALOG, settings, "dc1", "cluster", matchers)
    collector = MonthToDateCollector(source, clock=lambda: dt.datetime(2026, 10, 1, 5, 30, tzinfo=dt.UTC))
    with caplog.at_level(logging.INFO, logger="chargeback.exporter"):
        assert collector.refresh()
    assert "data finding [dc1] warning host-network-pods" in caplog.text
    snapshot = collector.snapshot
    collector.clock = lambda: dt.datetime(2026, 11, 5, 12, tzinfo=dt.UTC)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chargeback.exporter"):
        assert not collector.refresh()
    assert "refusing to bill 2026-11" in caplog.text and "no-data" in caplog.text
    assert collector.snapshot is snapshot


def test_sparse_scrapes_widen_the_census_window() -> None:
    """Scrapes further apart than the 5-minute staleness lookback would look like missing series."""
    assert lookback_for({"kube-state-metrics": {"kube-state-metrics": 60.0}}) is None
    assert lookback_for({"cadvisor": {"kubelet": 30.0, "cadvisor": 300.0}}) == "600s"
    assert lookback_for({"cadvisor": {"kubelet": 1800.0}}) == "3600s"
    assert lookback_for({}) is None
    assert "last_over_time(kube_pod_info{" in census_query([], "600s")


def test_reports_render_findings_escaped_and_only_when_there_are_some() -> None:
    """Pure rendering: a finding's text comes from label values, so it is escaped like them."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    rows = steady("di-api", "cpu", 1.0, OCTOBER.start, 24) + steady("cs-miniapp", "cpu", 1.0, OCTOBER.start, 24)
    hostile = '<script>alert("x")</script>'
    finding = Finding(WARNING, "silent-target", "dc1", f"node {hostile} was not scraped", "check it", ("di-api",))
    info = Finding(INFO, "scrape-interval", "dc1", "detected scrape intervals", "nothing to do")
    files = report_files(charge(usage_frame(rows), catalog, OCTOBER, findings=(finding, info)))
    invoice = json.loads(files["invoices/data-insight.json"])
    assert invoice["data_findings"] == [finding.as_dict()]  # the info finding is not printed on invoices
    html = files["invoices/data-insight.html"]
    assert "Data findings" in html and hostile not in html and "&lt;script&gt;" in html
    assert "data_findings" not in json.loads(files["invoices/community-services.json"])
    assert "Data findings" in files["finance-summary.html"]
    plain = report_files(charge(usage_frame(rows), catalog, OCTOBER))
    assert "Data findings" not in plain["invoices/data-insight.html"]
    assert "data_findings" not in plain["invoices/data-insight.json"]
