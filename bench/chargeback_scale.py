"""How long usage collection takes on a month of a large cluster, against what Prometheus alone takes.

  .venv/bin/python bench/chargeback_scale.py [--namespaces 2000] [--pods 20000] [--days 30]
                                              [--scrape-interval 1800] [--workdir DIR] [--keep]

Builds N namespaces × P pods (one container each, requests, a PVC per namespace on hot or cold
storage, a load balancer per tenth namespace, a quota per namespace, egress from one pod per
namespace) for D days with `pool_demo.synthetic`, backfills it with promtool, starts a local
Prometheus and times, end to end:

* collect_usage: every query of the usage frame, parsed, checked and built into the frame;
* end to end: collection, then rating, idle allocations and every report rendered (in memory);
* the floor: the same PromQL, cut into the same pieces with the same concurrency, fetched with raw
  httpx calls that only read the bytes (what Prometheus alone costs);

and prints the ratios to the floor (goal ≤ 1.2×), the peak RSS after collection and after the
whole run (goal ≤ 1 GB), and the samples the queries touch (`stats=all`) against the distinct samples
of the series an invoice needs (goal ≤ 1.1×). The
scrape interval is what keeps the file and the backfill to minutes on two cores (at 300 s the
OpenMetrics text of a month is over 100 GB). The usage queries' output (namespaces × hours) does
not depend on it, only Prometheus' share of the work does: two scrapes an hour (the least `increase`
needs) gives Prometheus the least work, so the ratio measured is the worst case for chargeback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from chargeback.collect import promql
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings, split_range
from chargeback.collect.usage import collect_usage, usage_queries
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import GIB, MIB, Container, Pod, Quota, Scenario, Service, Source, Volume

CATALOG = Path(__file__).resolve().parent.parent / "catalog"
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
STORAGE = ".storageclass.storage.k8s.io/requests.storage"
SELECTORS = (promql.LabelMatcher("cluster", "dc1"),)


def build_scenario(namespaces: int, pods: int, days: int, interval: float) -> Scenario:
    """A deterministic cluster: pods spread round-robin over namespaces, every 7th pod churns daily."""
    end = START + dt.timedelta(days=days)
    names = [f"team-{i:04d}" for i in range(namespaces)]
    pod_list = []
    for i in range(pods):
        namespace = names[i % namespaces]
        cores = 0.05 + (i % 17) * 0.05
        container = Container(
            "app",
            cpu_cores=cores,
            memory_bytes=(128 + (i % 13) * 64) * MIB,
            cpu_request=cores * 1.5,
            memory_request=(256 + (i % 13) * 64) * MIB,
        )
        start = stop = None
        if i % 7 == 0:  # batch-like pods that live for part of the month
            start = START + dt.timedelta(hours=(i * 5) % (24 * days // 2), seconds=22)
            stop = start + dt.timedelta(days=max(1, days // 3))
        egress = 64 * 1024.0 if i < namespaces else 0.0
        pod_list.append(
            Pod(namespace, f"pod-{i:05d}", (container,), start=start, end=stop, egress_bytes_per_second=egress)
        )
    volumes, services, quotas = [], [], []
    for i, namespace in enumerate(names):
        storage_class = "pool-hot" if i % 2 else "pool-cold"
        volumes.append(
            Volume(namespace, "data", storage_class, requested_bytes=50 * GIB, used_bytes=(5 + i % 40) * GIB)
        )
        if i % 10 == 0:
            services.append(Service(namespace, "edge"))
        quotas.append(
            Quota(
                namespace,
                namespace,
                {"requests.cpu": 16, "requests.memory": 64 * GIB, f"{storage_class}{STORAGE}": 100 * GIB, "pods": 100},
            )
        )
    return Scenario(
        start=START,
        end=end,
        cadvisor=Source("kubelet-cadvisor", interval, 7.0),
        kube_state=Source("kube-state-metrics", interval, 0.0),
        kubelet=Source("kubelet", interval, 19.0),
        labels={"cluster": "dc1"},
        decoys=False,
        pods=pod_list,
        volumes=volumes,
        services=services,
        quotas=quotas,
    )


def floor_seconds(
    url: str, queries: list[str], first: float, last: float, settings: PrometheusSettings, stats: bool = False
) -> tuple[float, int]:
    """Prometheus alone: the same requests, bytes read and dropped. With `stats`, also the samples the
    queries touched (`stats=all`: totalQueryableSamples, summed over every request)."""
    pieces = split_range(first, last, 3600.0, settings.max_points, settings.chunk.total_seconds())
    jobs = [(q, a, b) for q in queries for a, b in pieces]
    began = time.perf_counter()
    with httpx.Client(base_url=url, timeout=settings.timeout) as http:

        def fetch(job: tuple[str, float, float]) -> int:
            query, a, b = job
            params = {"query": query, "start": f"{a:.3f}", "end": f"{b:.3f}", "step": "3600"}
            if stats:
                params["stats"] = "all"
            response = http.get("/api/v1/query_range", params=params)
            response.raise_for_status()
            if not stats:
                return 0
            return int(response.json()["data"]["stats"]["samples"]["totalQueryableSamples"])

        with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
            touched = sum(pool.map(fetch, jobs))
    return time.perf_counter() - began, touched


NEEDED_SERIES = (
    'container_cpu_usage_seconds_total{container!="",container!="POD",namespace!="",cluster="dc1"}',
    'container_memory_working_set_bytes{container!="",container!="POD",namespace!="",cluster="dc1"}',
    'container_network_transmit_bytes_total{container=~"|POD",namespace!="",cluster="dc1"}',
    'kube_pod_container_resource_requests{cluster="dc1"}',
    'kube_pod_status_phase{phase="Running",cluster="dc1"}',
    'kube_persistentvolumeclaim_resource_requests_storage_bytes{cluster="dc1"}',
    'kube_persistentvolumeclaim_info{cluster="dc1"}',
    'kubelet_volume_stats_used_bytes{cluster="dc1"}',
    'kube_service_spec_type{type="LoadBalancer",cluster="dc1"}',
    'kube_resourcequota{type="hard",cluster="dc1"}',
    'kube_pod_info{cluster="dc1"}',
    'kube_node_info{cluster="dc1"}',
    'container_cpu_usage_seconds_total{id="/",cluster="dc1"}',
)
"""The series an invoice needs: every sample of these in the period is read at least once."""


def distinct_samples(url: str, start: dt.datetime, end: dt.datetime) -> int:
    """Samples of the needed series in [start, end): the least any collection must read."""
    total = 0
    with httpx.Client(base_url=url, timeout=600) as http:
        for selector in NEEDED_SERIES:
            seconds = int((end - start).total_seconds())
            query = f"sum(count_over_time({selector}[{seconds}s]))"
            params = {"query": query, "time": f"{end.timestamp() - 0.001:.3f}"}
            result = http.get("/api/v1/query", params=params).json()["data"]["result"]
            total += int(float(result[0]["value"][1])) if result else 0
    return total


def _client(url: str) -> PrometheusClient:
    return PrometheusClient(PrometheusSettings(url=url, timeout=600))


def measure_collect(url: str, days: int, out: multiprocessing.Queue) -> None:
    """One collection in a fresh process, so that its peak RSS is the collection's alone."""
    catalog = load_catalog(CATALOG)
    with _client(url) as client:
        began = time.perf_counter()
        result = collect_usage(client, catalog, START, START + dt.timedelta(days=days), "dc1", SELECTORS)
        seconds = time.perf_counter() - began
    out.put({"collect": seconds, "rows": len(result.frame), "collect_peak_rss_mb": peak_rss_mb()})


def measure_end_to_end(url: str, days: int, out: multiprocessing.Queue) -> None:
    """Collection, rating, idle allocations and every report rendered, in a fresh process: what a finance
    run waits for and the most memory it holds."""
    catalog = load_catalog(CATALOG)
    with _client(url) as client:
        began = time.perf_counter()
        result = collect_usage(client, catalog, START, START + dt.timedelta(days=days), "dc1", SELECTORS)
    chargeback = charge(result.frame, catalog, Period(START.year, START.month), volumes=result.volumes)
    del result
    files = report_files(chargeback)
    out.put(
        {
            "end_to_end": time.perf_counter() - began,
            "report_bytes": sum(len(text) for text in files.values()),
            "peak_rss_mb": peak_rss_mb(),
        }
    )


def in_child(target: Callable[..., None], *args: object) -> dict:
    """Run `target(*args, queue)` in a spawned process and return what it put on the queue."""
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    figures = queue.get()
    process.join()
    return figures


def measure(url: str, days: int, repeats: int) -> dict:
    """The floor and the samples touched from this process (Prometheus answers parsed here never count in
    the collection's memory), each collection and the end-to-end run in a process of its own."""
    settings = PrometheusSettings(url=url, timeout=600)
    end = START + dt.timedelta(days=days)
    with _client(url) as client:
        window = promql.hour_window(client.build_version())
    queries = list(usage_queries(window, SELECTORS).values())
    first, last = (START + dt.timedelta(hours=1)).timestamp() - 0.001, end.timestamp() - 0.001
    _, touched = floor_seconds(url, queries, first, last, settings, stats=True)  # also warms the caches
    distinct = distinct_samples(url, START, end)
    floors, collects = [], []
    for _ in range(repeats):
        floors.append(floor_seconds(url, queries, first, last, settings)[0])
        collects.append(in_child(measure_collect, url, days))
    return {
        "floor": statistics.median(floors),
        "collect": statistics.median(c["collect"] for c in collects),
        "rows": collects[-1]["rows"],
        "collect_peak_rss_mb": max(c["collect_peak_rss_mb"] for c in collects),
        "samples_touched": touched,
        "samples_distinct": distinct,
        **in_child(measure_end_to_end, url, days),
    }


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespaces", type=int, default=2000)
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--scrape-interval", type=float, default=1800.0, help="seconds between scrapes")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median is printed")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the OpenMetrics file and TSDB here")
    parser.add_argument("--keep", action="store_true", help="do not delete the work directory")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="chargeback-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"scale: {args.namespaces} namespaces, {args.pods} pods, {args.days} days, "
        f"scrapes every {args.scrape_interval:g} s (work dir {workdir})",
        flush=True,
    )
    try:
        data_dir = workdir / "tsdb"
        if not data_dir.exists():
            began = time.perf_counter()
            scenario = build_scenario(args.namespaces, args.pods, args.days, args.scrape_interval)
            source = workdir / "bench.om"
            writer = scenario.write(source)
            size = source.stat().st_size / 2**30
            print(
                f"generate: {writer.series_written:,} series, {writer.samples_written:,} samples, {size:.1f} GiB "
                f"in {time.perf_counter() - began:.0f} s",
                flush=True,
            )
            began = time.perf_counter()
            backfill(source, data_dir)
            source.unlink()
            print(f"backfill: {time.perf_counter() - began:.0f} s", flush=True)
        # A long query timeout: on a busy machine a month's chunk may take over Prometheus' default 2 minutes,
        # and the benchmark measures time, it must not turn slowness into a 503.
        with LocalPrometheus(data_dir, ready_timeout=300, query_timeout="30m") as server:
            figures = measure(server.url, args.days, args.repeats)
        floor = figures["floor"]
        print(json.dumps(figures))
        print(
            f"Prometheus alone (floor): {floor:.2f} s\n"
            f"collect_usage: {figures['collect']:.2f} s for {figures['rows']:,} rows, "
            f"{figures['collect'] / floor:.2f}× the floor (goal ≤ 1.2×), "
            f"peak RSS {figures['collect_peak_rss_mb']:.0f} MB (goal ≤ 1024 MB)\n"
            f"samples touched: {figures['samples_touched']:,} against {figures['samples_distinct']:,} distinct samples "
            f"of the series the invoice needs, {figures['samples_touched'] / max(figures['samples_distinct'], 1):.2f}× "
            "(goal ≤ 1.1×)\n"
            f"end to end (collect, rate, idle, render {figures['report_bytes'] / 2**20:.0f} MiB of reports): "
            f"{figures['end_to_end']:.2f} s, {figures['end_to_end'] / floor:.2f}× the floor, "
            f"peak RSS {figures['peak_rss_mb']:.0f} MB (goal ≤ 1024 MB)"
        )
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
