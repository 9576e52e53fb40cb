"""Usage collected from a real Prometheus serving the closed-form scenario (pool_demo.synthetic).

Scenario: 2026-10-01 00:00–08:00 UTC, cluster dc1; cAdvisor scraped at :07/:37, kube-state-metrics
exactly at :00/:30, kubelet volume stats at :19/:49, every 30 s; no scrapes 02:10–02:50 and
05:00–06:00. Expected values are written out as arithmetic on the scenario's definitions.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chargeback.collect import promql
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings, RangeQuery
from chargeback.collect.promql import LabelMatcher
from chargeback.collect.usage import USAGE_COLUMNS, UsageResult, check_usage_frame, collect_usage, usage_queries
from chargeback.errors import PrometheusUnreachableError, UsageDataError
from pool_catalog import Catalog, load_catalog
from pool_demo.local_prometheus import BINARY_ENV, free_port
from pool_demo.synthetic import GIB, closed_form_scenario, expected_usage
from tests.support.prometheus import SCENARIO_END, SCENARIO_START, ScenarioServer, serve_scenario

pytestmark = pytest.mark.prometheus

CATALOG = Path(__file__).resolve().parents[3] / "catalog"
DC1 = (LabelMatcher("cluster", "dc1"),)
TIERS = {"pool-hot": "hot", "pool-cold": "cold", "pool-archive": "archive"}
HOUR = dt.timedelta(hours=1)
GAP_HOUR = dt.datetime(2026, 10, 1, 5, tzinfo=dt.UTC)
PARTIAL_GAP_HOUR = dt.datetime(2026, 10, 1, 2, tzinfo=dt.UTC)
OBSERVED_HOURS = 7  # 8 hours minus the hour without any scrape


def hour(h: int) -> pd.Timestamp:
    return pd.Timestamp(dt.datetime(2026, 10, 1, h, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(CATALOG)


@pytest.fixture(scope="module")
def client(scenario_prometheus: ScenarioServer) -> PrometheusClient:
    with PrometheusClient(PrometheusSettings(url=scenario_prometheus.url)) as prometheus:
        yield prometheus


@pytest.fixture(scope="module")
def collected(client: PrometheusClient, catalog: Catalog) -> UsageResult:
    return collect_usage(client, catalog, SCENARIO_START, SCENARIO_END, "dc1", DC1)


def value(frame: pd.DataFrame, namespace: str, resource: str, column: str = "used", tier: str = "", at=None) -> float:
    rows = frame[(frame["namespace"] == namespace) & (frame["resource"] == resource) & (frame["tier"] == tier)]
    if at is not None:
        rows = rows[rows["hour"] == at]
        assert len(rows) == 1, f"no single row for {namespace}/{resource}/{tier} at {at}"
    return float(rows[column].sum(min_count=1))


def test_frame_obeys_the_schema_and_covers_every_hour(collected: UsageResult) -> None:
    frame = collected.frame
    check_usage_frame(frame)
    assert list(frame.columns) == list(USAGE_COLUMNS)
    assert sorted(frame["hour"].unique()) == [hour(h) for h in range(8)]
    assert set(frame["cluster"]) == {"dc1"}
    assert set(frame["namespace"]) == {"di-api", "di-batch", "cs-miniapp", "ingress-nginx", "sandbox-x"}


@pytest.mark.parametrize("resource", ["cpu", "memory", "storage", "egress", "gpu", "load_balancer", "pods"])
def test_every_resource_matches_the_closed_form_within_a_thousandth(collected: UsageResult, resource: str) -> None:
    expected = expected_usage(closed_form_scenario("dc1"), TIERS)
    totals: dict[tuple[str, str, str], dict[str, float]] = {}
    for (_, namespace, res, tier), row in expected.items():
        if res == resource:
            total = totals.setdefault((namespace, res, tier), {"used": 0.0, "requested": 0.0, "allocated": 0.0})
            for column in total:
                total[column] += row[column]
    assert totals, f"the scenario has no {resource}"
    frame = collected.frame[collected.frame["hour"] != pd.Timestamp(GAP_HOUR)]
    for (namespace, res, tier), want in totals.items():
        for column, amount in want.items():
            got = value(frame, namespace, res, column, tier)
            if amount == 0:
                assert got == 0 or math.isnan(got), (namespace, res, tier, column, got)
            else:
                assert got == pytest.approx(amount, rel=1e-3), (namespace, res, tier, column)


def test_cpu_hand_computed(collected: UsageResult) -> None:
    frame = collected.frame
    # api-0 runs 1.5 + 0.25 cores all along; api-churn-1 runs 0.8 cores 01:20:22–03:40:22.
    assert value(frame, "di-api", "cpu", at=hour(0)) == pytest.approx(1.75, rel=1e-6)
    assert value(frame, "di-api", "cpu", at=hour(1)) == pytest.approx(1.75 + 0.8 * (3600 - 1222) / 3600, rel=1e-6)
    assert value(frame, "di-api", "cpu", at=hour(3)) == pytest.approx(1.75 + 0.8 * (40 * 60 + 22) / 3600, rel=1e-6)
    assert value(frame, "di-api", "cpu") == pytest.approx(1.75 * OBSERVED_HOURS + 0.8 * 140 / 60, rel=1e-6)
    # job-short: 2 cores for the 20 minutes 00:30:22–00:50:22, inside one hour.
    assert value(frame, "di-batch", "cpu", at=hour(0)) == pytest.approx(4 + 2 * 20 / 60, rel=1e-6)


def test_counter_reset_keeps_the_usage_before_and_after_the_restart(collected: UsageResult) -> None:
    # etl-0 restarts at 03:15:22; its last scrape before was 03:15:07, so 15 s × 4 cores are never reported.
    reset_hour = value(collected.frame, "di-batch", "cpu", at=hour(3))
    assert reset_hour == pytest.approx(4 - 4 * 15 / 3600, rel=1e-4)
    # A formulation that ignores resets (last - first) would report only the part after the restart.
    assert reset_hour > 4 * (3600 - 15 * 60) / 3600 + 0.5


def test_kube_state_samples_on_the_hour_are_counted_once(collected: UsageResult, client: PrometheusClient) -> None:
    # kube-state-metrics is scraped exactly at :00:00 and :30; the ingress controller runs all hour.
    for h in (0, 1, 3, 4, 6, 7):
        assert value(collected.frame, "ingress-nginx", "pods", at=hour(h)) == 1.0
        assert value(collected.frame, "ingress-nginx", "load_balancer", at=hour(h)) == 1.0
    # The naive `[1h]` evaluated at the hour's end sees the :00:00 sample of both hours on Prometheus 2,
    # whose ranges are closed; Prometheus 3's left-open ranges see it once.
    naive = client.query(
        'count_over_time(kube_pod_status_phase{cluster="dc1",pod="controller-0",phase="Running"}[1h])',
        at=SCENARIO_START + 2 * HOUR,
    )
    assert naive.series[0].values[0] == (120 if promql.left_open_ranges(client.build_version()) else 121)


def test_scrape_phase_does_not_bias_counters(collected: UsageResult) -> None:
    # cAdvisor scrapes at :07 and :37: each hour's window starts 7 s before its first sample.
    for h in (0, 1, 3, 4, 6, 7):
        assert value(collected.frame, "ingress-nginx", "cpu", at=hour(h)) == pytest.approx(0.5, rel=1e-6)
        assert value(collected.frame, "ingress-nginx", "egress", at=hour(h)) == pytest.approx(
            4 * 2**20 * 3600 / GIB, rel=1e-6
        )


def test_a_scrape_gap_shows_in_coverage_and_never_as_zero(collected: UsageResult) -> None:
    frame = collected.frame
    partial = frame[frame["hour"] == pd.Timestamp(PARTIAL_GAP_HOUR)]
    assert np.allclose(partial["coverage"], 1 / 3)
    # Gauges are averaged over the scrapes that happened; counters span the gap.
    assert value(frame, "di-batch", "memory", at=hour(2)) == pytest.approx(16.0)
    assert value(frame, "di-batch", "cpu", at=hour(2)) == pytest.approx(4.0, rel=1e-6)
    gap = frame[frame["hour"] == pd.Timestamp(GAP_HOUR)]
    assert len(gap) > 0 and (gap["coverage"] == 0).all()
    assert gap["used"].isna().all()
    assert set(gap["namespace"]) == set(frame["namespace"])
    others = frame[~frame["hour"].isin([pd.Timestamp(GAP_HOUR), pd.Timestamp(PARTIAL_GAP_HOUR)])]
    assert (others["coverage"] == 1).all()
    incomplete = collected.incomplete_hours()
    assert set(incomplete["hour"]) == {pd.Timestamp(PARTIAL_GAP_HOUR), pd.Timestamp(GAP_HOUR)}
    assert set(incomplete["source"]) == {"cadvisor", "kube-state-metrics", "kubelet-volume-stats"}
    assert any("not fully scraped in 2 hour(s)" in w and "05:00 0%" in w for w in collected.warnings)


def test_requests_count_only_running_pods(collected: UsageResult) -> None:
    frame = collected.frame
    # web-1 is pending until 04:00:22 and must not count its 1-core request before that.
    for h in range(4):
        assert value(frame, "cs-miniapp", "cpu", "requested", at=hour(h)) == 1.0
    assert value(frame, "cs-miniapp", "cpu", "requested", at=hour(7)) == 2.0
    # GPU use is the GPU request of the running etl-0 pod.
    assert value(frame, "di-batch", "gpu", at=hour(4)) == 1.0
    assert value(frame, "di-batch", "gpu", "requested", at=hour(4)) == 1.0
    # Egress has no request; pods are not requested.
    assert math.isnan(value(frame, "di-api", "egress", "requested", at=hour(0)))
    assert math.isnan(value(frame, "di-api", "pods", "requested", at=hour(0)))


def test_cpu_peak_is_the_highest_5_minute_rate_of_the_hour(collected: UsageResult) -> None:
    frame = collected.frame
    # di-batch: etl-0 runs 4 cores all along; job-short adds 2 cores for 00:30:22–00:50:22 only. The hour's
    # average hides the burst, the 5-minute windows inside it see 6 cores.
    assert value(frame, "di-batch", "cpu", at=hour(0)) == pytest.approx(4 + 2 * 20 / 60, rel=1e-6)
    assert value(frame, "di-batch", "cpu", "used_peak", at=hour(0)) == pytest.approx(6.0, rel=1e-3)
    assert value(frame, "di-batch", "cpu", "used_peak", at=hour(1)) == pytest.approx(4.0, rel=1e-3)
    # di-api: api-0 1.75 cores; api-churn-1 adds 0.8 from 01:20:22.
    assert value(frame, "di-api", "cpu", "used_peak", at=hour(0)) == pytest.approx(1.75, rel=1e-3)
    assert value(frame, "di-api", "cpu", "used_peak", at=hour(1)) == pytest.approx(2.55, rel=1e-3)
    # The hour without any scrape has no peak either: unknown, never 0.
    assert math.isnan(value(frame, "di-api", "cpu", "used_peak", at=GAP_HOUR))


def test_memory_peak_is_every_containers_highest_working_set(collected: UsageResult) -> None:
    frame = collected.frame
    # di-batch hour 0: etl-0 16 GiB + job-short 4 GiB while it runs; averaged, job-short counts a third.
    assert value(frame, "di-batch", "memory", "used_peak", at=hour(0)) == pytest.approx(20.0, rel=1e-6)
    assert value(frame, "di-batch", "memory", at=hour(0)) < 19
    # di-api hour 1: app 2 GiB + sidecar 256 MiB + api-churn-1 1 GiB.
    assert value(frame, "di-api", "memory", "used_peak", at=hour(1)) == pytest.approx(3.25, rel=1e-6)


def test_requests_peak_counts_running_pods_at_their_highest(collected: UsageResult) -> None:
    frame = collected.frame
    # di-api: api-0 requests 2 + 0.5 cores; api-churn-1 (pending from 01:10, running from 01:20:22) 1 more.
    assert value(frame, "di-api", "cpu", "requested_peak", at=hour(0)) == 2.5
    assert value(frame, "di-api", "cpu", "requested_peak", at=hour(1)) == 3.5
    assert value(frame, "di-api", "cpu", "requested", at=hour(1)) < 3.5  # the hour's average of the requests
    # di-batch hour 0: etl-0 4 cores + job-short 2 cores; memory 16 + 4 GiB; the GPU's use peak is its request.
    assert value(frame, "di-batch", "cpu", "requested_peak", at=hour(0)) == 6.0
    assert value(frame, "di-batch", "memory", "requested_peak", at=hour(0)) == 20.0
    assert value(frame, "di-batch", "gpu", "used_peak", at=hour(0)) == 1.0
    # cs-miniapp: web-1 is pending until 04:00:22 and requests nothing before.
    assert value(frame, "cs-miniapp", "cpu", "requested_peak", at=hour(3)) == 1.0
    assert value(frame, "cs-miniapp", "cpu", "requested_peak", at=hour(4)) == 2.0
    # Storage: each claim's highest bytes used, summed per tier; the closed form's claims hold steady.
    assert value(frame, "cs-miniapp", "storage", "used_peak", tier="hot", at=hour(0)) == 10.0
    assert value(frame, "di-batch", "storage", "used_peak", tier="cold", at=hour(1)) == 600.0
    # Egress and load balancers have no peak measured.
    assert math.isnan(value(frame, "di-api", "egress", "used_peak", at=hour(0)))


def test_storage_is_split_by_tier(collected: UsageResult) -> None:
    frame = collected.frame
    assert value(frame, "cs-miniapp", "storage", tier="hot", at=hour(0)) == 10.0
    assert value(frame, "cs-miniapp", "storage", tier="archive", at=hour(0)) == 100.0
    assert value(frame, "cs-miniapp", "storage", "requested", tier="archive", at=hour(0)) == 200.0
    # The cold volume is created at 01:00:00 sharp: nothing before (only the quota), a full hour from 01:00.
    assert value(frame, "di-batch", "storage", tier="cold", at=hour(0)) == 0.0
    assert value(frame, "di-batch", "storage", "requested", tier="cold", at=hour(0)) == 0.0
    assert value(frame, "di-batch", "storage", tier="cold", at=hour(1)) == 600.0
    # A class that is no tier keeps its name; a PVC without kube_persistentvolumeclaim_info gets tier "".
    assert value(frame, "sandbox-x", "storage", tier="local-path", at=hour(0)) == 1.0
    assert value(frame, "sandbox-x", "storage", tier="", at=hour(0)) == 1.0
    assert any("'local-path', which is no storage tier" in w for w in collected.warnings)
    assert any("without kube_persistentvolumeclaim_info" in w for w in collected.warnings)


def test_volumes_name_each_claim_and_add_up_to_the_tier_rows(collected: UsageResult) -> None:
    volumes = collected.volumes.set_index(["namespace", "pvc", "hour"])
    first = pd.Timestamp(hour(0))
    assert volumes.loc[("cs-miniapp", "data", first), ["tier", "used", "requested"]].tolist() == ["hot", 10.0, 20.0]
    assert volumes.loc[("cs-miniapp", "archive", first), "used"] == 100.0
    assert ("di-batch", "scratch", first) not in volumes.index  # created at 01:00
    assert volumes.loc[("di-batch", "scratch", pd.Timestamp(hour(1))), "used"] == 600.0
    # Summed per namespace and tier, the claims are the usage frame's storage rows, hour by hour.
    per_tier = collected.volumes.groupby(["hour", "namespace", "tier"])[["used", "requested"]].sum(min_count=1)
    storage = collected.frame[(collected.frame["resource"] == "storage") & (collected.frame["requested"] > 0)]
    storage = storage.astype({"namespace": object, "tier": object})  # the volume frame's text is plain
    expected = storage.set_index(["hour", "namespace", "tier"])[["used", "requested"]].sort_index()
    pd.testing.assert_frame_equal(per_tier.sort_index(), expected, check_exact=False, rtol=1e-9, check_index_type=False)


def test_quotas_become_allocated_hours(collected: UsageResult) -> None:
    frame = collected.frame
    assert value(frame, "di-batch", "storage", "allocated", tier="cold", at=hour(0)) == 20 * 1024
    assert value(frame, "di-batch", "gpu", "allocated", at=hour(0)) == 2
    assert value(frame, "di-batch", "load_balancer", "allocated", at=hour(0)) == 0
    assert value(frame, "di-api", "memory", "allocated", at=hour(0)) == 96
    assert value(frame, "di-api", "pods", "allocated", at=hour(0)) == 120
    # di-api has a hot-storage quota and no volume: use 0 (scraped), allocation 500 GiB.
    assert value(frame, "di-api", "storage", tier="hot", at=hour(0)) == 0.0
    assert value(frame, "di-api", "storage", "allocated", tier="hot", at=hour(0)) == 500
    # Half the partial-gap hour is still one quota-hour (sums are divided by the scrapes that happened).
    assert value(frame, "di-api", "cpu", "allocated", at=hour(2)) == 24
    assert math.isnan(value(frame, "sandbox-x", "cpu", "allocated", at=hour(0)))


def test_cluster_matcher_keeps_other_clusters_out(client: PrometheusClient, catalog: Catalog) -> None:
    # dc2 runs a 100-core di-api pod of the same name in the same Prometheus: without the matcher its
    # series are taken for duplicates of dc1's (one pod, two scrapes) and the larger one wins.
    everything = collect_usage(client, catalog, SCENARIO_START, SCENARIO_START + HOUR, "dc1")
    assert value(everything.frame, "di-api", "cpu", at=hour(0)) > 100
    only_dc1 = collect_usage(client, catalog, SCENARIO_START, SCENARIO_START + HOUR, "dc1", DC1)
    assert value(only_dc1.frame, "di-api", "cpu", at=hour(0)) == pytest.approx(1.75, rel=1e-6)
    with pytest.raises(UsageDataError, match=r"cluster 'dc2' is not in pool.yaml \(clusters: dc1\)"):
        collect_usage(client, catalog, SCENARIO_START, SCENARIO_END, "dc2", (LabelMatcher("cluster", "dc2"),))


def test_short_pieces_give_the_same_frame(
    scenario_prometheus: ScenarioServer, catalog: Catalog, collected: UsageResult
) -> None:
    settings = PrometheusSettings(url=scenario_prometheus.url, chunk=dt.timedelta(hours=3), concurrency=2)
    with PrometheusClient(settings) as pieces:
        again = collect_usage(pieces, catalog, SCENARIO_START, SCENARIO_END, "dc1", DC1)
    pd.testing.assert_frame_equal(again.frame, collected.frame)


def test_without_node_series_the_quota_clock_gives_the_same_frame(
    tmp_path: Path, catalog: Catalog, collected: UsageResult
) -> None:
    # A kube-state-metrics allow-list without nodes: kube_node_info is gone, the follow-up query counts the
    # scrapes on the hard quotas instead, and every figure stays what it was.
    servers = serve_scenario(tmp_path, without=["kube_node_info"])
    try:
        with PrometheusClient(PrometheusSettings(url=next(servers).url)) as no_nodes:
            again = collect_usage(no_nodes, catalog, SCENARIO_START, SCENARIO_END, "dc1", DC1)
    finally:
        servers.close()  # stops the server
    assert "kube_state_scrapes_by_quota" in again.queries
    assert "namespaces_on_nodes" not in again.queries  # one node, never scraped less than the cluster
    pd.testing.assert_frame_equal(again.frame, collected.frame)


def test_period_must_be_whole_utc_hours(client: PrometheusClient, catalog: Catalog) -> None:
    with pytest.raises(UsageDataError, match="not on the hour"):
        collect_usage(client, catalog, SCENARIO_START + dt.timedelta(minutes=5), SCENARIO_END, "dc1")
    with pytest.raises(UsageDataError, match="end must be after start"):
        collect_usage(client, catalog, SCENARIO_END, SCENARIO_START, "dc1")


def test_queries_are_the_documented_promql(collected: UsageResult, client: PrometheusClient) -> None:
    # One value per container (max over duplicate scrapes), then per namespace; the root cgroup is left out.
    window = promql.hour_window(client.build_version())  # 59m59s999ms on Prometheus 2, 1h on 3
    assert collected.queries["cpu_used"] == (
        "sum by (namespace) (max by (namespace, pod, container, id) (increase(container_cpu_usage_seconds_total"
        f'{{container!="",container!="POD",namespace!="",cluster="dc1"}}[{window}])))'
    )
    assert collected.queries["pods_running"] == (
        "sum by (namespace) (max by (namespace, pod, uid) ("
        f'sum_over_time(kube_pod_status_phase{{phase="Running",cluster="dc1"}}[{window}])))'
    )
    # The scrape clocks read series no other query reads (the quota clock only when there is no node series).
    assert usage_queries("1h")["kube_state_scrapes"] == "max(count_over_time(kube_node_info{}[1h]))"
    assert "kube_state_scrapes_by_quota" not in collected.queries
    assert "cadvisor_scrapes" not in collected.queries


def test_the_hour_window_is_half_open_on_this_server(client: PrometheusClient) -> None:
    # Two adjacent hour windows evaluated at H+1h-1ms share no sample.
    window = promql.hour_window(client.build_version())
    query = f'count_over_time(kube_pod_status_phase{{cluster="dc1",pod="controller-0",phase="Running"}}[{window}])'
    start = SCENARIO_START + HOUR - dt.timedelta(milliseconds=1)
    result = client.query_ranges([RangeQuery(query, start, start + HOUR, HOUR)])[0]
    assert result.series[0].values.tolist() == [120.0, 120.0]
    # Debian's 2.42, or Prometheus 3 when the run serves with it (RESOURCE_POOL_PROMETHEUS, `make test`).
    assert client.build_version().startswith("3." if os.environ.get(BINARY_ENV) else "2.")


def test_unreachable_server_names_the_flag(catalog: Catalog) -> None:
    settings = PrometheusSettings(url=f"http://127.0.0.1:{free_port()}", retries=1, backoff=0)
    with PrometheusClient(settings) as dead, pytest.raises(PrometheusUnreachableError) as raised:
        collect_usage(dead, catalog, SCENARIO_START, SCENARIO_END, "dc1")
    message = str(raised.value)
    assert f"cannot reach {settings.url} after 2 attempt(s)" in message
    assert "check --prometheus" in message
