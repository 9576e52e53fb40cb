"""The real-shaped scenario generator (pool_demo.realistic): label sets, timing and closed-form truth.

Label sets are checked against what the real sources produce (cited in pool_demo.realistic);
`test_small_scenario_backfills_with_promtool` proves the OpenMetrics text is accepted by promtool.
"""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pool_demo import realistic
from pool_demo.local_prometheus import find_binary
from pool_demo.realistic import (
    CADVISOR,
    DOCTOR_FINDINGS,
    GIB,
    KUBE_STATE,
    KUBELET,
    PAUSE_IMAGE,
    Container,
    Pod,
    Scenario,
    at,
)
from tests.support.prometheus import require_prometheus

TIERS = {"pool-hot": "hot", "pool-cold": "cold", "pool-archive": "archive"}


def series(scenario: Scenario, metric: str) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    for name, _, _, build in scenario.families():
        if name == metric:
            return [(labels, times, values) for labels, (times, values) in build()]
    raise AssertionError(f"no family {metric}")


def of_pod(found: list, pod: str) -> list:
    return [s for s in found if s[0].get("pod") == pod]


API = "api-7d9f8c6b5-x2lqp"


def test_containerd_sandbox_has_no_container_label_and_carries_the_network() -> None:
    scenario = realistic.root_cgroups()
    cpu = of_pod(series(scenario, "container_cpu_usage_seconds_total"), API)
    by_container = {labels.get("container"): labels for labels, _, _ in cpu}
    assert set(by_container) == {"app", "envoy", None}  # the sandbox and the pod cgroup have no container
    sandbox = next(labels for labels, _, _ in cpu if labels.get("image") == PAUSE_IMAGE)
    assert re.fullmatch(r"[0-9a-f]{64}", sandbox["name"])  # containerd: the first alias is the container id
    assert re.fullmatch(
        r"/kubepods\.slice/kubepods-burstable\.slice/kubepods-burstable-pod[0-9a-f_]{36}\.slice"
        r"/cri-containerd-[0-9a-f]{64}\.scope",
        sandbox["id"],
    )
    pod_cgroup = next(labels for labels, _, _ in cpu if "image" not in labels and "container" not in labels)
    assert pod_cgroup["id"].endswith(".slice") and "name" not in pod_cgroup
    network = of_pod(series(scenario, "container_network_transmit_bytes_total"), API)
    assert [labels["id"] for labels, _, _ in network] == [sandbox["id"]]  # needNet: only the sandbox
    assert network[0][0]["interface"] == "eth0"


@pytest.mark.parametrize("build", [realistic.crio_sandbox, realistic.dockerd_sandbox])
def test_crio_and_dockerd_label_the_sandbox_pod(build) -> None:
    scenario = build()
    network = of_pod(series(scenario, "container_network_transmit_bytes_total"), API)
    assert len(network) == 1
    labels = network[0][0]
    assert labels["container"] == "POD" and labels["image"] == PAUSE_IMAGE
    pod = next(p for p in scenario.pods if p.name == API)
    assert labels["name"] == f"k8s_POD_{API}_di-api_{pod.uid}_0"
    if scenario.runtime == "crio":
        assert re.search(r"/crio-[0-9a-f]{64}\.scope$", labels["id"])
    else:  # cri-dockerd with the cgroupfs driver
        assert re.fullmatch(rf"/kubepods/burstable/pod{pod.uid}/[0-9a-f]{{64}}", labels["id"])
    containers = {s[0].get("container") for s in of_pod(series(scenario, "container_cpu_usage_seconds_total"), API)}
    assert containers == {"app", "envoy", "POD", None}


def test_root_and_system_slices_have_no_namespace() -> None:
    scenario = realistic.root_cgroups()
    cpu = series(scenario, "container_cpu_usage_seconds_total")
    bare = sorted({labels["id"] for labels, _, _ in cpu if "namespace" not in labels})
    assert bare == ["/", "/system.slice/containerd.service", "/system.slice/kubelet.service"]
    root_network = [s for s in series(scenario, "container_network_transmit_bytes_total") if s[0]["id"] == "/"]
    assert {labels["interface"] for labels, _, _ in root_network} == {"eth0", "eth1"}
    assert all("namespace" not in labels and "pod" not in labels for labels, _, _ in root_network)


def test_kubelet_targets_are_labelled_like_kube_prometheus() -> None:
    scenario = realistic.duplicate_scrapes()
    cpu = series(scenario, "container_cpu_usage_seconds_total")
    jobs = {labels["job"] for labels, _, _ in cpu}
    assert jobs == {"kubelet", "kubernetes-nodes-cadvisor"}
    operator = next(labels for labels, _, _ in cpu if labels["job"] == "kubelet")
    assert {k: operator[k] for k in ("endpoint", "service", "metrics_path")} == {
        "endpoint": "https-metrics",
        "service": "kubelet",
        "metrics_path": "/metrics/cadvisor",
    }
    assert operator["instance"] == f"{scenario.node(operator['node']).ip}:10250"
    chart = next(labels for labels, _, _ in cpu if labels["job"] == "kubernetes-nodes-cadvisor")
    assert chart["instance"] == chart["kubernetes_io_hostname"] and "node" not in chart
    volume = series(scenario, "kubelet_volume_stats_used_bytes")
    assert {labels["job"] for labels, _, _ in volume} == {"kubelet", "kubernetes-nodes"}
    assert {labels["metrics_path"] for labels, _, _ in volume if labels["job"] == "kubelet"} == {"/metrics"}


def test_kube_state_metrics_labels_and_the_unscheduled_request() -> None:
    scenario = realistic.unscheduled_requests()
    requests = [s for s in series(scenario, "kube_pod_container_resource_requests") if s[0]["namespace"] == "di-batch"]
    gpu = [s for s in requests if s[0]["resource"] == "nvidia_com_gpu"]
    assert [labels.get("node") for labels, _, _ in gpu] == [None, "srv-bat-01"]  # node="" is no label
    assert gpu[0][0]["unit"] == "integer" and gpu[0][0]["container"] == "worker"
    assert gpu[0][1].max() < at("02:10").timestamp() <= gpu[1][1].min()
    assert {labels["job"] for labels, _, _ in requests} == {"kube-state-metrics"}
    info = [s for s in series(scenario, "kube_pod_info") if s[0]["namespace"] == "di-batch"]
    assert [labels.get("node") for labels, _, _ in info] == [None, "srv-bat-01", "srv-bat-01"]
    assert "pod_ip" in info[2][0] and "pod_ip" not in info[1][0]
    # kube-prometheus: the target's container label lands on series without one of their own.
    assert info[0][0]["container"] == "kube-rbac-proxy-main" and info[0][0]["host_network"] == "false"
    phases = {s[0]["phase"] for s in series(scenario, "kube_pod_status_phase")}
    assert phases == {"Pending", "Running", "Succeeded", "Failed", "Unknown"}


def test_host_network_sandbox_reports_the_host_interfaces() -> None:
    scenario = realistic.host_network()
    proxy = next(p for p in scenario.pods if p.name == "kube-proxy-7xk2p")
    network = of_pod(series(scenario, "container_network_transmit_bytes_total"), proxy.name)
    root = {
        labels["interface"]: values
        for labels, _, values in series(scenario, "container_network_transmit_bytes_total")
        if labels["id"] == "/" and labels["node"] == proxy.node
    }
    assert {labels["interface"] for labels, _, _ in network} == {"eth0", "eth1"}
    for labels, _, values in network:
        np.testing.assert_array_equal(values, root[labels["interface"]])  # the host's counters, not the pod's
    info = next(s for s in series(scenario, "kube_pod_info") if s[0]["pod"] == proxy.name and "pod_ip" in s[0])
    assert info[0]["host_network"] == "true" and info[0]["pod_ip"] == scenario.node(proxy.node).ip


def test_restarts_and_reboots_make_new_series_and_reset_the_pod_cgroup() -> None:
    scenario = realistic.containerd_cluster()
    cpu = series(scenario, "container_cpu_usage_seconds_total")
    app = [s for s in of_pod(cpu, API) if s[0].get("container") == "app"]
    assert len(app) == 3  # started, restarted twice: three container ids
    assert len({labels["name"] for labels, _, _ in app}) == 3
    rebooted = next(p for p in scenario.pods if p.node == "srv-gen-02" and p.namespace == "di-api")
    pod_cgroup = next(s for s in of_pod(cpu, rebooted.name) if "image" not in s[0] and "container" not in s[0])
    _, times, values = pod_cgroup
    assert (np.diff(values) < 0).sum() == 1  # one in-series counter reset, at the reboot
    reset_at = times[1:][np.diff(values) < 0][0]
    assert at("14:00", realistic.CLUSTER_DAY).timestamp() < reset_at < at("14:01", realistic.CLUSTER_DAY).timestamp()


def test_scrape_phases_and_silent_node() -> None:
    scenario = realistic.silent_node()
    cpu = series(scenario, "container_cpu_usage_seconds_total")
    times = np.concatenate([t for labels, t, _ in cpu if labels["node"] == "srv-gen-02"])
    assert set((times % 60).tolist()) == {15.0, 45.0}
    silent = (times >= at("02:00").timestamp()) & (times < at("04:30").timestamp())
    assert not silent.any()
    ksm = np.concatenate([t for _, t, _ in series(scenario, "kube_pod_status_phase")])
    assert set((ksm % 60).tolist()) == {41.0}


def test_missing_family_and_nan_samples() -> None:
    assert realistic.no_phase_metric().families()  # the family exists but has no series
    assert series(realistic.no_phase_metric(), "kube_pod_status_phase") == []
    scenario = realistic.nan_samples()
    memory = [s for s in of_pod(series(scenario, "container_memory_working_set_bytes"), API) if s[0].get("container")]
    for _, times, values in memory:
        window = (times >= at("02:10").timestamp()) & (times < at("02:20").timestamp())
        assert np.isnan(values[window]).all() and window.sum() == 20 and not np.isnan(values[~window]).any()


def test_times_off_the_minute_are_refused() -> None:
    pod = Pod(
        "ns", "p", "srv-gen-01", (Container("c", 1, GIB),), start=dt.datetime(2026, 10, 5, 1, 0, 30, tzinfo=dt.UTC)
    )
    with pytest.raises(ValueError, match="not on a whole minute"):
        Scenario("x", at("00:00"), at("02:00"), nodes=realistic._nodes("srv-gen-01"), pods=[pod])
    with pytest.raises(ValueError, match="unknown node"):
        Scenario("x", at("00:00"), at("02:00"), nodes=[], pods=[Pod("ns", "p", "nowhere", ())])


def test_every_scenario_documents_its_phenomenon_and_plants_known_findings() -> None:
    for name, build in realistic.SCENARIOS.items():
        scenario = build()
        assert scenario.name == name and len(scenario.doc) > 60
        for code in scenario.planted_defects:
            assert code in DOCTOR_FINDINGS or code.startswith("missing-series:"), (name, code)
    assert "duplicate-targets" in realistic.duplicated_jobs_cluster().planted_defects
    assert "sandbox-container-pod" in realistic.crio_cluster().planted_defects


def hour(text: str) -> dt.datetime:
    return at(text)


def test_truth_counts_rwx_once_and_carries_unmounted_claims() -> None:
    rwx = realistic.expected_usage(realistic.rwx_claim(), TIERS)
    assert rwx[(hour("03:00"), "cs-miniapp", "storage", "archive")]["used"] == 300  # not 600: two nodes report it
    scenario = realistic.unmounted_claim()
    truth = realistic.expected_usage(scenario, TIERS)
    assert truth[(hour("03:00"), "di-api", "storage", "hot")]["used"] == 40  # carried forward
    assert truth[(hour("03:00"), "di-api", "storage", "cold")]["used"] == 0  # never observed
    assert realistic.expected_unmeasured_claims(scenario) == {("di-api", "spare")}
    assert realistic.expected_carried(scenario) == {
        (hour("02:00"), "di-api", "reports"),
        (hour("03:00"), "di-api", "reports"),
    }


def test_truth_counts_requests_only_while_running() -> None:
    truth = realistic.expected_usage(realistic.unscheduled_requests(), TIERS)
    assert (hour("01:00"), "di-batch", "gpu", "") not in truth  # pending: no request counted
    assert truth[(hour("02:00"), "di-batch", "gpu", "")]["requested"] == pytest.approx(40 / 60)
    assert truth[(hour("02:00"), "di-batch", "cpu", "")]["requested"] == pytest.approx(4 * 40 / 60)
    assert truth[(hour("05:00"), "di-batch", "gpu", "")]["used"] == pytest.approx(40 / 60)


def test_truth_egress_leaves_host_network_out() -> None:
    scenario = realistic.host_network()
    truth = realistic.expected_usage(scenario, TIERS)
    assert realistic.expected_not_measured(scenario) == {"kube-system", "ingress-nginx"}
    assert truth[(hour("03:00"), "ingress-nginx", "egress", "")]["used"] == pytest.approx(32 * 1024 * 3600 / GIB)
    assert truth[(hour("03:00"), "kube-system", "egress", "")]["used"] == pytest.approx(64 * 1024 * 3600 / GIB)


def test_truth_follows_quota_changes_and_the_smallest_quota() -> None:
    scenario = realistic.containerd_cluster()
    truth = realistic.expected_usage(scenario, TIERS)
    day = realistic.CLUSTER_DAY
    assert truth[(at("11:00", day), "di-api", "cpu", "")]["allocated"] == 24
    assert truth[(at("12:00", day), "di-api", "cpu", "")]["allocated"] == 32
    assert truth[(at("12:00", day), "di-batch", "cpu", "")]["allocated"] == 80  # min(96, 80) of two objects
    assert truth[(at("09:00", day), "cs-miniapp", "storage", "hot")]["requested"] == 20
    assert truth[(at("10:00", day), "cs-miniapp", "storage", "hot")]["requested"] == 50  # expanded


def test_gaps_name_the_sources_and_namespaces_hidden() -> None:
    gaps = realistic.expected_gaps(realistic.silent_node())
    assert (hour("02:00"), "kube-system", CADVISOR) in gaps
    assert (hour("04:00"), "cs-miniapp", KUBELET) in gaps
    assert not any(ns == "di-api" for _, ns, _ in gaps)  # its node kept being scraped
    assert (hour("05:00"), "cs-miniapp", CADVISOR) not in gaps
    cluster_gaps = realistic.expected_gaps(realistic.containerd_cluster())
    assert (at("20:00", realistic.CLUSTER_DAY), "di-api", KUBE_STATE) in cluster_gaps


def test_small_scenario_backfills_with_promtool(tmp_path: Path) -> None:
    path = tmp_path / "x.om"
    writer = realistic.write_openmetrics(path, [realistic.crio_sandbox(), realistic.no_phase_metric()])
    assert writer.samples_written > 10_000
    require_prometheus()
    promtool = find_binary("promtool")
    result = subprocess.run(
        [
            promtool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=744h",
            str(path),
            str(tmp_path / "db"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(writer.samples_written) in result.stdout  # every sample became part of a block


def test_writing_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a.om", tmp_path / "b.om"
    realistic.write_openmetrics(first, [realistic.unscheduled_requests()])
    realistic.write_openmetrics(second, [realistic.unscheduled_requests()])
    assert first.read_bytes() == second.read_bytes()
