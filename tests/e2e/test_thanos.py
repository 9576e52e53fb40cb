"""Two clusters billed through a Thanos Querier equal each cluster billed from its own Prometheus, to the cent.

dc1 runs two Prometheus replicas (external labels cluster=dc1, replica=a|b) and dc2 one; each has a
Thanos sidecar, and one Querier fans out to the three. The Querier is asked with dedup=true (the
replicas must count once), partial_response=false (a missing store is an error, not a smaller bill)
and max_source_resolution=0s (raw samples only: a downsampled block would bill averages). Thanos
evaluates PromQL with the Prometheus 3 engine, whose range selectors are left-open, so the client
is told so (`promql_version`), as its build info only names the Thanos release.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd
import pytest

from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.collect.promql import LabelMatcher
from chargeback.collect.usage import collect_usage
from chargeback.period import Period
from chargeback.rate.rating import attribute, billing_mode_of, rate
from pool_catalog import Catalog, load_catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill, free_port
from pool_demo.synthetic import closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.support.catalog_edit import two_cluster_catalog
from tests.support.prometheus import SCENARIO_END, SCENARIO_START, require_prometheus

pytestmark = pytest.mark.e2e

THANOS_PARAMS = {"dedup": "true", "partial_response": "false", "max_source_resolution": "0s"}


def start(argv: list[str], log: Path) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def wait_until(
    what: str,
    ready: object,
    process: subprocess.Popen,
    log: Path,
    timeout: float = 90.0,
    others: dict[str, tuple[subprocess.Popen, Path]] | None = None,
) -> None:
    """Poll `ready` until it holds; fail with the log of `process`, or of any of `others` that died meanwhile
    (a sidecar that panics on its first gRPC answer shows up as a Querier that never sees its stores)."""
    deadline = time.monotonic() + timeout
    watched = {what: (process, log), **(others or {})}
    while time.monotonic() < deadline:
        for name, (proc, out) in watched.items():
            if proc.poll() is not None:
                tail = out.read_text(errors="replace")[-2000:]
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if ready():  # type: ignore[operator]
                return
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout:.0f} s:\n{log.read_text(errors='replace')[-2000:]}")


@pytest.fixture(scope="module")
def fleet(metrics_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """URLs: the Prometheus of each cluster (dc1: replica a) and the Thanos Querier over all three."""
    require_prometheus()  # promtool backfills the blocks
    work = tmp_path_factory.mktemp("thanos")
    # Without the volumes of storage classes the catalog does not price: rating refuses those, by design.
    sources = {"dc1": closed_form_scenario("dc1", with_unpriced_storage=False), "dc2": other_cluster_scenario("dc2")}
    servers: list[LocalPrometheus] = []
    processes: list[subprocess.Popen] = []
    try:
        urls: dict[str, str] = {}
        endpoints = []
        sidecars: dict[str, tuple[subprocess.Popen, Path]] = {}
        for name, cluster, replica in (("dc1-a", "dc1", "a"), ("dc1-b", "dc1", "b"), ("dc2-a", "dc2", "a")):
            om = work / f"{cluster}.om"
            if not om.exists():
                write_openmetrics(om, [sources[cluster]])
            data = work / name / "tsdb"
            backfill(om, data)
            server = LocalPrometheus(data, external_labels={"cluster": cluster, "replica": replica})
            # Prometheus 3 serves, as a cluster's own server would; promtool (Debian's 2.42) only wrote the blocks.
            with _binary(metrics_tools["PROMETHEUS3"]):
                server.start()
            servers.append(server)
            urls.setdefault(cluster, server.url)
            grpc, http = free_port(), free_port()
            log = work / f"sidecar-{name}.log"
            sidecar = start(
                [
                    metrics_tools["THANOS"],
                    "sidecar",
                    f"--prometheus.url={server.url}",
                    f"--grpc-address=127.0.0.1:{grpc}",
                    f"--http-address=127.0.0.1:{http}",
                    f"--tsdb.path={data}",
                ],
                log,
            )
            processes.append(sidecar)
            sidecars[f"sidecar {name}"] = (sidecar, log)
            wait_until(f"sidecar {name}", lambda h=http: httpx.get(f"http://127.0.0.1:{h}/-/ready").status_code == 200,
                       sidecar, log)  # fmt: skip
            endpoints.append(f"--endpoint=127.0.0.1:{grpc}")
        http = free_port()
        log = work / "query.log"
        query = start(
            [
                metrics_tools["THANOS"],
                "query",
                f"--http-address=127.0.0.1:{http}",
                f"--grpc-address=127.0.0.1:{free_port()}",
                "--query.replica-label=replica",
                *endpoints,
            ],
            log,
        )
        processes.append(query)
        url = f"http://127.0.0.1:{http}"

        def all_stores_up() -> bool:
            stores = httpx.get(f"{url}/api/v1/stores").json().get("data") or {}
            return sum(len(group) for group in stores.values()) == 3

        wait_until("thanos query with its three stores", all_stores_up, query, log, others=sidecars)
        yield {**urls, "thanos": url}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        for server in servers:
            server.stop()


@contextlib.contextmanager
def _binary(path: str) -> Iterator[None]:
    """Serve with `path` instead of Debian's prometheus (the env var `find_binary` honours)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RESOURCE_POOL_PROMETHEUS", path)
        yield


def bill(settings: PrometheusSettings, cluster: str, catalog: Catalog) -> tuple[pd.DataFrame, dict[tuple, Decimal]]:
    """Usage frame and the amount of every priced line of `cluster` for the scenario's hours."""
    with PrometheusClient(settings) as client:
        usage = collect_usage(
            client, catalog, SCENARIO_START, SCENARIO_END, cluster, (LabelMatcher("cluster", cluster),)
        ).frame
    period = Period.parse("2026-10")
    lines = rate(attribute(usage, catalog, period), catalog, period, billing_mode_of(catalog.rates))
    keys = [c for c in ("business_unit", "cluster", "namespace", "resource", "tier", "rate_version") if c in lines]
    amounts: dict[tuple, Decimal] = {}
    for _, line in lines.iterrows():
        key = tuple(str(line[k]) for k in keys)
        amounts[key] = amounts.get(key, Decimal(0)) + line["amount"]
    return usage, amounts


def test_thanos_bills_each_cluster_as_its_own_prometheus_does(fleet: dict[str, str], tmp_path: Path) -> None:
    catalog = load_catalog(two_cluster_catalog(tmp_path))
    through = PrometheusSettings(url=fleet["thanos"], query_params=THANOS_PARAMS, promql_version="3.0")
    for cluster in ("dc1", "dc2"):
        direct_usage, direct = bill(PrometheusSettings(url=fleet[cluster]), cluster, catalog)
        thanos_usage, via_thanos = bill(through, cluster, catalog)
        assert direct, f"{cluster}: nothing billed"
        assert via_thanos == direct, cluster  # Decimal amounts: equal to the cent
        columns = ["hour", "namespace", "resource", "tier"]
        left = direct_usage.sort_values(columns).reset_index(drop=True)
        right = thanos_usage.sort_values(columns).reset_index(drop=True)
        pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-9)


def test_without_dedup_the_replicas_would_bill_twice(fleet: dict[str, str]) -> None:
    """The replica pair is real: the same query without dedup sees both copies of every dc1 series."""
    params = {**THANOS_PARAMS, "dedup": "false"}
    query = 'count(kube_pod_status_phase{cluster="dc1"})'
    at = {"time": f"{SCENARIO_START.timestamp() + 3600:.0f}"}
    deduped = httpx.get(f"{fleet['thanos']}/api/v1/query", params={**THANOS_PARAMS, "query": query, **at}).json()
    doubled = httpx.get(f"{fleet['thanos']}/api/v1/query", params={**params, "query": query, **at}).json()
    one = float(deduped["data"]["result"][0]["value"][1])
    assert float(doubled["data"]["result"][0]["value"][1]) == 2 * one
