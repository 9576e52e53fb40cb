"""Adding a billable resource is one ResourceSpec plus its price in rates.yaml.

A toy resource, GPU memory in GiB-hours, is registered through `pool_catalog.resources.registered`; its
price goes into a copy of the example rate card and an allocation into one namespace's quota. Nothing else
is edited, and it reaches the ResourceQuota, the full-quota cost, the queries, the priced lines, the invoice,
the idle allocations and the FOCUS export.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.collect.usage import collect_usage, usage_queries
from chargeback.outputs.csv_tables import csv_records
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.result import charge
from infra.components.business_unit import quota_hard
from pool_catalog import Catalog, CatalogError, load_catalog
from pool_catalog.pricing import MissingPriceError, quota_monthly_cost, rate_version_for
from pool_catalog.quantities import format_bytes
from pool_catalog.quota_map import decode_quota
from pool_catalog.resources import (
    GIB,
    KUBE_STATE,
    FocusService,
    Quota,
    ResourceSpec,
    quota_resource,
    registered,
    request_resource,
    spec_of,
)
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import OpenMetricsWriter
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.prometheus import require_prometheus
from tests.support.usage_frames import steady, usage_frame

OCT = Period.parse("2026-10")
HOURS_BEFORE_NEW_PRICE = 14 * 24  # the example card's second version starts on 2026-10-15

GPU_MEMORY = ResourceSpec(
    name="gpu_memory",
    usage_unit="GiB-hour",
    price_units={"GiB-hour": Decimal(1), "GiB-month": Decimal(730)},
    per_tier=False,
    quota=Quota("gpu_memory", "requests.example.com/gpu-memory", GIB, format_bytes),
    # kube-state-metrics exports an extended resource `example.com/gpu-memory` with its name sanitised.
    request_label="example_com_gpu_memory",
    used_source=KUBE_STATE,
    measured=None,  # its use is the running pods' requests
    used_from_requests=True,
    has_request=True,
    pod_driven=True,
    idle_steps=((16, Decimal(1)),),
    idle_step_above=Decimal(8),
    level_unit="GiB",
    focus=FocusService("Compute", "Containers", "Pool Compute (GPU memory)"),
    node_capacity=None,
)


def price_gpu_memory(document: dict) -> None:
    """0.01 per GiB-hour until 2026-10-15, then 0.02: the price is keyed by the resource in each version."""
    for version, price in zip(document["versions"], ("0.01", "0.02"), strict=True):
        version["gpu_memory"] = {"price": price, "unit": "GiB-hour"}


def grant_gpu_memory(document: dict) -> None:
    document["namespaces"][0]["quota"]["gpu_memory"] = "16Gi"  # di-api


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    root = copy_example(tmp_path)
    edit_yaml(root / "rates.yaml", price_gpu_memory)
    edit_yaml(root / "business-units" / "data-insight.yaml", grant_gpu_memory)
    return root


@pytest.fixture
def catalog(catalog_dir: Path) -> Iterator[Catalog]:
    with registered(GPU_MEMORY):
        yield load_catalog(catalog_dir)


def month(catalog: Catalog) -> dict[str, str]:
    """The report set of October: di-api holds 16 GiB of GPU memory and uses (requests) 2 GiB all month."""
    rows = steady("di-api", "gpu_memory", 2.0, OCT.start, OCT.hours, requested=2.0, allocated=16.0)
    rows += steady("di-api", "cpu", 4.0, OCT.start, OCT.hours, requested=4.0, allocated=24.0)
    rows += steady("di-api", "pods", 3.0, OCT.start, OCT.hours)
    return report_files(charge(usage_frame(rows), catalog, OCT))


def read_csv(content: str) -> list[dict[str, str]]:
    return csv_records(content)


def test_the_toy_resource_reaches_the_resource_quota_and_its_cost(catalog: Catalog) -> None:
    unit = catalog.unit("data-insight")
    assert unit is not None
    namespace = unit.namespaces[0]
    hard = quota_hard(namespace, catalog.cluster_of(namespace))
    assert hard["requests.example.com/gpu-memory"] == "16Gi"
    # after the built-ins, before the object counts
    assert list(hard)[-3:] == ["requests.example.com/gpu-memory", "pods", "services.nodeports"]
    tiers = {t.class_name: t.name for t in catalog.cluster_of(namespace).storage_tiers}
    assert decode_quota(hard, tiers).amount(GPU_MEMORY) == 16 * GIB  # the policy pack reads it back
    version = rate_version_for(catalog.rates, OCT.start)
    cost = quota_monthly_cost(namespace.quota, version)
    assert cost.lines[("gpu_memory", "")] == Decimal("116.80")  # 16 GiB × 730 h × 0.01


def test_the_toy_resource_is_queried_and_decoded(catalog: Catalog) -> None:
    queries = usage_queries("1h")
    assert 'resource=~"cpu|memory|nvidia_com_gpu|example_com_gpu_memory"' in queries["container_requests"]
    assert r"services\\.loadbalancers|requests\\.example\\.com/gpu\\-memory|pods|" in queries["quota_hard"]
    assert request_resource("example_com_gpu_memory") == ("gpu_memory", 1 / GIB)
    assert quota_resource("requests.example.com/gpu-memory") == ("gpu_memory", 1 / GIB)


def test_the_toy_resource_is_collected_from_prometheus(catalog: Catalog, tmp_path: Path) -> None:
    """kube-state-metrics series of the toy resource, with the label sets kube-state-metrics writes
    (kubernetes/kube-state-metrics internal/store/pod.go: namespace, pod, uid, container, node, resource, unit;
    internal/store/resourcequota.go: namespace, resourcequota, resource, type), become its usage rows."""
    require_prometheus()
    start = OCT.start
    times = start.timestamp() + np.arange(0, 3 * 3600, 30.0)  # three hours scraped every 30 s
    pod = {"namespace": "di-api", "pod": "train-0", "uid": "8d1c"}
    with OpenMetricsWriter(tmp_path / "toy.om") as writer:
        writer.write_series(
            "kube_pod_container_resource_requests",
            "gauge",
            "The number of requested request resource by a container.",
            {**pod, "container": "train", "node": "node-1", "resource": "example_com_gpu_memory", "unit": "byte"},
            (times, np.full(len(times), 2.0 * GIB)),
        )
        writer.write_series(
            "kube_pod_status_phase",
            "gauge",
            "The pods current phase.",
            {**pod, "phase": "Running"},
            (times, np.ones(len(times))),
        )
        writer.write_series(
            "kube_resourcequota",
            "gauge",
            "Information about resource quota.",
            {
                "namespace": "di-api",
                "resourcequota": "pool-quota",
                "resource": "requests.example.com/gpu-memory",
                "type": "hard",
            },
            (times, np.full(len(times), 16.0 * GIB)),
        )
        writer.write_series(
            "kube_node_info",
            "gauge",
            "Information about a cluster node.",
            {"node": "node-1"},
            (times, np.ones(len(times))),
        )
    backfill(tmp_path / "toy.om", tmp_path / "tsdb")
    with LocalPrometheus(tmp_path / "tsdb") as server, PrometheusClient(PrometheusSettings(url=server.url)) as client:
        result = collect_usage(client, catalog, start, start + dt.timedelta(hours=3), "dc1")
    rows = result.frame[result.frame["resource"] == "gpu_memory"]
    assert len(rows) == 3
    assert rows["used"].tolist() == [2.0, 2.0, 2.0]  # GiB-hours: the running pod's request
    assert rows["requested"].tolist() == [2.0, 2.0, 2.0]
    assert rows["allocated"].tolist() == [16.0, 16.0, 16.0]


def test_the_toy_resource_is_priced_invoiced_flagged_idle_and_exported(catalog: Catalog) -> None:
    files = month(catalog)

    lines = [row for row in read_csv(files["line_items.csv"]) if row["resource"] == "gpu_memory"]
    assert [(row["namespace"], row["billed_quantity"], row["unit_price"], row["amount"]) for row in lines] == [
        ("di-api", "672.000000000", "0.01", "6.72"),  # 2 GiB × 336 h before the new price
        ("di-api", "816.000000000", "0.02", "16.32"),  # 2 GiB × 408 h after it
    ]

    invoice = json.loads(files["invoices/data-insight.json"])
    assert {"resource": "gpu_memory", "tier": "", "amount": "23.04"} in invoice["by_resource"]
    assert "gpu_memory" in files["invoices/data-insight.html"]

    idle = [row for row in read_csv(files["idle.csv"]) if row["resource"] == "gpu_memory"]
    assert len(idle) == 1
    flagged = idle[0]
    assert (flagged["namespace"], flagged["reason"]) == ("di-api", "quota-underused")
    assert flagged["capacity_held"] == "161.28"  # 14 GiB × (336 h × 0.01 + 408 h × 0.02)
    assert flagged["unit_pays"] == "0.00"  # usage billing
    assert flagged["recommended_allocation"] == "3"  # peak 2 GiB × 1.2 = 2.4 → whole GiB below 16

    focus = [row for row in read_csv(files["focus.csv"]) if row["x_Resource"] == "gpu_memory"]
    assert len(focus) == 2
    assert {(r["ServiceName"], r["ServiceCategory"], r["ServiceSubcategory"]) for r in focus} == {
        ("Pool Compute (GPU memory)", "Compute", "Containers")
    }
    assert sum(Decimal(r["BilledCost"]) for r in focus) == Decimal("23.04")


def test_without_the_spec_the_catalog_names_the_unknown_field(catalog_dir: Path) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(catalog_dir)
    found = {(f.field, f.message) for f in caught.value.findings}
    assert ("versions[0].gpu_memory", "unknown field") in found
    assert ("namespaces[0].quota.gpu_memory", "unknown field") in found


def test_a_missing_price_is_an_error_not_a_zero(catalog_dir: Path) -> None:
    def drop_price(document: dict) -> None:
        for version in document["versions"]:
            del version["gpu_memory"]

    edit_yaml(catalog_dir / "rates.yaml", drop_price)
    with registered(GPU_MEMORY):
        catalog = load_catalog(catalog_dir, check=False)
        unit = catalog.unit("data-insight")
        assert unit is not None
        with pytest.raises(MissingPriceError, match="has no price for gpu_memory"):
            quota_monthly_cost(unit.namespaces[0].quota, rate_version_for(catalog.rates, OCT.start))


def test_a_spec_is_complete_by_construction() -> None:
    with pytest.raises(TypeError, match="focus"):
        ResourceSpec(**{k: v for k, v in vars(GPU_MEMORY).items() if k != "focus"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="usage unit 'GiB-hour' must be a price unit"):
        replace(GPU_MEMORY, price_units={"GiB-month": Decimal(730)})
    with pytest.raises(ValueError, match="already declared"), registered(replace(GPU_MEMORY, name="gpu")):
        pass
    with pytest.raises(KeyError, match="declare a new one with a ResourceSpec"):
        spec_of("gpu_memory")  # registered only inside the fixtures' blocks


def test_a_registered_resource_is_checked_like_a_built_in_one(catalog_dir: Path) -> None:
    def wrong_unit(document: dict) -> None:
        document["versions"][0]["gpu_memory"]["unit"] = "GB-hour"

    def no_quantity(document: dict) -> None:
        document["namespaces"][0]["quota"]["gpu_memory"] = "16 gigs"

    edit_yaml(catalog_dir / "rates.yaml", wrong_unit)
    edit_yaml(catalog_dir / "business-units" / "data-insight.yaml", no_quantity)
    with registered(GPU_MEMORY), pytest.raises(CatalogError) as caught:
        load_catalog(catalog_dir)
    messages = {(Path(f.file).relative_to(catalog_dir).as_posix(), f.field, f.message) for f in caught.value.findings}
    assert (
        "rates.yaml",
        "versions[0]",
        "unit 'GB-hour' is not a gpu_memory unit; use one of GiB-hour, GiB-month",
    ) in messages
    assert (
        "business-units/data-insight.yaml",
        "namespaces[0].quota",
        "gpu_memory: '16 gigs' is not a Kubernetes quantity (examples: 4, 500m, 128Gi, 2Ti)",
    ) in messages
