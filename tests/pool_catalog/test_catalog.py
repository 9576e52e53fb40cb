"""The catalog: the example loads, and every malformed catalog is refused with a message naming
the file, the field and how to fix it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli import app
from pool_catalog import CatalogError, Severity, load_catalog
from pool_catalog.pricing import rate_version_for, round_money, unit_monthly_cost
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

POOL = "pool.yaml"
RATES = "rates.yaml"
DI = "business-units/data-insight.yaml"
CS = "business-units/community-services.yaml"
ES = "business-units/edge-security.yaml"
PF = "business-units/platform.yaml"


def set_path(path: tuple[Any, ...], value: Any) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        node = doc
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def delete_path(path: tuple[Any, ...]) -> Callable[[Any], None]:
    def change(doc: Any) -> None:
        node = doc
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return change


def di_ns(index: int, *rest: Any) -> tuple[Any, ...]:
    return ("namespaces", index, *rest)


def gen_pool(*rest: Any) -> tuple[Any, ...]:
    return ("clusters", 0, "node_pools", 0, *rest)


def first_version(*rest: Any) -> tuple[Any, ...]:
    return ("versions", 0, *rest)


# (id, file to edit, change, file the finding names, field it names, text the message contains)
MALFORMED: list[tuple[str, str, Callable[[Any], Any], str, str, str]] = [
    ("uppercase-namespace", DI, set_path(di_ns(0, "name"), "DI_API"), DI, "namespaces[0].name", "not a DNS-1123 label"),
    ("long-namespace", DI, set_path(di_ns(0, "name"), "n" * 64), DI, "namespaces[0].name", "at most 63"),
    ("id-not-file-name", DI, set_path(("id",), "data-insights"), DI, "id", "but the file is data-insight.yaml"),
    (
        "namespace-taken-by-other-unit",
        ES,
        set_path(di_ns(0, "name"), "di-api"),
        ES,
        "namespaces[0].name",
        "already declared by business-units/data-insight.yaml",
    ),
    (
        "namespace-twice-in-unit",
        DI,
        set_path(di_ns(1, "name"), "di-api"),
        DI,
        "namespaces[1].name",
        "already declared by this file",
    ),
    (
        "unknown-node-pool",
        DI,
        set_path(di_ns(0, "node_pool"), "gpu"),
        DI,
        "namespaces[0].node_pool",
        "unknown node pool 'gpu' in cluster 'dc1'",
    ),
    (
        "unknown-tier",
        DI,
        set_path(di_ns(0, "quota", "storage", "ssd"), "10Gi"),
        DI,
        "namespaces[0].quota.storage.ssd",
        "unknown storage tier 'ssd'",
    ),
    (
        "unknown-capability",
        DI,
        set_path(di_ns(0, "consumes"), ["billing"]),
        DI,
        "namespaces[0].consumes[0]",
        "unknown capability 'billing'",
    ),
    (
        "capability-exposed-twice",
        PF,
        set_path(("namespaces", 1, "exposes", 0, "name"), "identity"),
        PF,
        "namespaces[1].exposes[0].name",
        "capability 'identity' is already exposed by platform/pf-identity",
    ),
    ("negative-cpu", DI, set_path(di_ns(0, "quota", "cpu"), "-4"), DI, "namespaces[0].quota.cpu", "is negative"),
    (
        "unparsable-memory",
        DI,
        set_path(di_ns(0, "quota", "memory"), "lots"),
        DI,
        "namespaces[0].quota.memory",
        "is not a Kubernetes quantity",
    ),
    (
        "boolean-cpu",
        DI,
        set_path(di_ns(0, "quota", "cpu"), True),
        DI,
        "namespaces[0].quota.cpu",
        "expected a Kubernetes quantity",
    ),
    (
        "negative-gpu",
        DI,
        set_path(di_ns(1, "quota", "gpu"), -1),
        DI,
        "namespaces[1].quota.gpu",
        "greater than or equal to 0",
    ),
    ("missing-cost-center", DI, delete_path(("cost_center",)), DI, "cost_center", "is required"),
    ("misspelt-field", DI, set_path(di_ns(0, "quotas"), {"cpu": 1}), DI, "namespaces[0].quotas", "unknown field"),
    (
        "cpu-over-capacity",
        DI,
        set_path(di_ns(1, "quota", "cpu"), 400),
        POOL,
        "clusters[0].node_pools[1]",
        "cpu quotas total 400 cores, above capacity 192 cores × overcommit 1.5 = 288 cores by 112 cores",
    ),
    (
        "memory-over-capacity",
        DI,
        set_path(di_ns(1, "quota", "memory"), "2Ti"),
        POOL,
        "clusters[0].node_pools[1]",
        "memory quotas total 2 TiB, above capacity 1.5 TiB × overcommit 1.0 = 1.5 TiB by 512 GiB",
    ),
    (
        "gpu-over-capacity",
        DI,
        set_path(di_ns(1, "quota", "gpu"), 8),
        POOL,
        "clusters[0].node_pools[1]",
        "gpu quotas total 8 GPUs, above capacity 4 GPUs",
    ),
    (
        "gpu-on-pool-without-gpus",
        DI,
        set_path(di_ns(0, "quota", "gpu"), 1),
        POOL,
        "clusters[0].node_pools[0]",
        "gpu quotas total 1 GPU, above capacity 0 GPUs",
    ),
    (
        "hot-tier-over-capacity",
        DI,
        set_path(di_ns(1, "quota", "storage", "hot"), "100Ti"),
        POOL,
        "clusters[0].storage_tiers[0].capacity",
        "quotas total 104,924 GiB, above capacity 40 TiB by 63,964 GiB",
    ),
    (
        "reserved-namespace",
        DI,
        set_path(di_ns(0, "name"), "kube-system"),
        DI,
        "namespaces[0].name",
        "reserved for the platform",
    ),
    (
        "ingress-namespace-taken",
        DI,
        set_path(di_ns(0, "name"), "ingress-nginx"),
        DI,
        "namespaces[0].name",
        "reserved for the platform",
    ),
    ("unknown-cluster", DI, set_path(di_ns(0, "cluster"), "dc9"), DI, "namespaces[0].cluster", "unknown cluster 'dc9'"),
    (
        "lb-outside-pool",
        DI,
        set_path(("load_balancer_addresses",), ["198.51.100.0/29"]),
        DI,
        "load_balancer_addresses[0]",
        "is not inside the pool's load-balancer ranges",
    ),
    (
        "lb-overlap",
        CS,
        set_path(("load_balancer_addresses",), ["192.0.2.16/28"]),
        DI,
        "load_balancer_addresses[0]",
        "overlaps 192.0.2.16/28 of unit 'community-services'",
    ),
    (
        "lb-quota-above-addresses",
        DI,
        set_path(di_ns(0, "quota", "load_balancers"), 20),
        DI,
        "load_balancer_addresses",
        "may create 20 load balancers but the unit owns 8 addresses",
    ),
    (
        "lb-bad-range",
        DI,
        set_path(("load_balancer_addresses",), ["192.0.2.300/29"]),
        DI,
        "load_balancer_addresses[0]",
        "is not an address range",
    ),
    (
        "pool-ranges-overlap",
        POOL,
        set_path(("clusters", 0, "network", "load_balancer_ranges"), ["192.0.2.0/25", "192.0.2.100-192.0.2.140"]),
        POOL,
        "clusters[0].network.load_balancer_ranges[1]",
        "overlaps 192.0.2.0/25",
    ),
    (
        "missing-tier-price",
        RATES,
        delete_path(first_version("storage", "archive")),
        RATES,
        "versions[0].storage",
        "no price for storage tier 'archive'",
    ),
    (
        "unknown-price-unit",
        RATES,
        set_path(first_version("storage", "hot", "unit"), "GB-month"),
        RATES,
        "versions[0]",
        "unit 'GB-month' is not a storage unit; use one of GiB-hour, GiB-month",
    ),
    ("missing-cpu-price", RATES, delete_path(first_version("cpu")), RATES, "versions[0].cpu", "is required"),
    (
        "negative-price",
        RATES,
        set_path(first_version("cpu", "price"), "-0.1"),
        RATES,
        "versions[0].cpu.price",
        "greater than or equal to 0",
    ),
    (
        "price-change-off-the-hour",
        RATES,
        set_path(("versions", 1, "effective_from"), "2026-10-15T10:30:00Z"),
        RATES,
        "versions[1].effective_from",
        "is not on the hour",
    ),
    (
        "two-versions-same-start",
        RATES,
        set_path(("versions", 1, "effective_from"), "2026-01-01"),
        RATES,
        "versions",
        "share one effective_from",
    ),
    ("bad-currency", RATES, set_path(("currency",), "euro"), RATES, "currency", "should match pattern"),
    (
        "unknown-billing-mode",
        RATES,
        set_path(("billing_mode",), "flat"),
        RATES,
        "billing_mode",
        "'usage', 'request' or 'max'",
    ),
    (
        "shared-among-unknown-unit",
        RATES,
        set_path(("shared_namespaces", 0, "among"), ["finance"]),
        RATES,
        "shared_namespaces[0].among[0]",
        "unknown unit 'finance'",
    ),
    (
        "server-in-two-pools",
        POOL,
        set_path(("clusters", 0, "node_pools", 1, "nodes", 0, "name"), "srv-gen-01"),
        POOL,
        "clusters[0].node_pools",
        "server 'srv-gen-01' is listed in more than one place",
    ),
    (
        "bad-taint-effect",
        POOL,
        set_path(("clusters", 0, "node_pools", 2, "taints", 0, "effect"), "Block"),
        POOL,
        "clusters[0].node_pools[2].taints[0].effect",
        "'NoSchedule', 'PreferNoSchedule' or 'NoExecute'",
    ),
    (
        "overcommit-below-one",
        POOL,
        set_path(("clusters", 0, "overcommit", "cpu"), 0.5),
        POOL,
        "clusters[0].overcommit.cpu",
        "greater than or equal to 1",
    ),
    (
        "bad-kubernetes-version",
        POOL,
        set_path(("clusters", 0, "kubernetes_version"), "v1.31"),
        POOL,
        "clusters[0].kubernetes_version",
        "is not a Kubernetes minor version",
    ),
    (
        "bad-node-label",
        POOL,
        set_path(gen_pool("labels"), {"bad key!": "x"}),
        POOL,
        "clusters[0].node_pools[0].labels",
        "is not a valid Kubernetes label key",
    ),
    (
        "tier-defined-twice",
        POOL,
        set_path(("clusters", 0, "storage_tiers", 1, "name"), "hot"),
        POOL,
        "clusters[0].storage_tiers",
        "storage tier 'hot' is defined twice",
    ),
    (
        "node-pool-without-servers",
        POOL,
        set_path(gen_pool("nodes"), []),
        POOL,
        "clusters[0].node_pools[0].nodes",
        "at least 1 item",
    ),
    (
        "limits-below-requests",
        DI,
        set_path(di_ns(0, "quota", "limits_cpu"), 8),
        DI,
        "namespaces[0].quota",
        "limits_cpu is below cpu",
    ),
    (
        "default-request-above-limit",
        DI,
        set_path(di_ns(0, "container_defaults", "default_request_cpu"), 4),
        DI,
        "namespaces[0].container_defaults",
        "default_request_cpu is above default_cpu",
    ),
    (
        "capability-port-out-of-range",
        PF,
        set_path(("namespaces", 0, "exposes", 0, "ports"), [70000]),
        PF,
        "namespaces[0].exposes[0].ports",
        "port 70000 is outside 1-65535",
    ),
    (
        "cost-center-with-spaces",
        DI,
        set_path(("cost_center",), "CC 4100"),
        DI,
        "cost_center",
        "cannot be a Kubernetes label value",
    ),
    ("no-owners", DI, set_path(("owners",), []), DI, "owners", "at least 1 item"),
    ("top-level-list", DI, lambda doc: [doc], DI, "", "must be a YAML mapping"),
]


@pytest.mark.parametrize(
    ("file", "change", "reported_file", "field", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_catalog_is_refused_with_file_field_and_message(
    tmp_path: Path, file: str, change: Callable[[Any], Any], reported_file: str, field: str, message: str
) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / file, change)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    matching = [f for f in raised.value.findings if f.file == str(root / reported_file) and f.field == field]
    assert matching, f"no finding for {reported_file} {field!r}; got:\n{raised.value}"
    assert any(message in f.message for f in matching), str(raised.value)
    assert all(f.severity is Severity.ERROR for f in raised.value.findings)


def test_there_are_at_least_thirty_malformed_catalogs() -> None:
    assert len(MALFORMED) >= 30


def test_example_catalog_loads_without_findings() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    assert [u.id for u in catalog.units] == ["community-services", "data-insight", "edge-security", "platform"]
    assert catalog.unit("data-insight").display_name.startswith("数据洞察事业部")
    assert len(catalog.namespaces("dc1")) == 8
    assert catalog.warnings == []


def test_findings_point_at_the_line_to_edit(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(di_ns(1, "node_pool"), "gpu"))
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    (finding,) = raised.value.findings
    line = (root / DI).read_text(encoding="utf-8").splitlines()[finding.line - 1]
    assert line.strip() == "node_pool: gpu"
    assert str(finding).startswith(f"{root / DI}:{finding.line}: namespaces[1].node_pool: unknown node pool")
    assert "use one of: general, batch, edge-lab" in str(finding)


def test_every_broken_file_is_reported_in_one_run(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(di_ns(0, "quota", "cpu"), "lots"))
    edit_yaml(root / RATES, set_path(("currency",), "euro"))
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    assert {f.file for f in raised.value.findings} == {str(root / DI), str(root / RATES)}


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    (root / ES).write_text("id: edge-security\nnamespaces: [\n  - oops: {\n", encoding="utf-8")
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    (finding,) = raised.value.findings
    assert finding.file == str(root / ES)
    assert "is not valid YAML" in finding.message
    assert finding.line is not None


def test_missing_pool_file_and_empty_unit_directory(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    (root / POOL).unlink()
    for path in (root / "business-units").glob("*.yaml"):
        path.unlink()
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    messages = {(Path(f.file).name, f.message) for f in raised.value.findings}
    assert ("pool.yaml", "file not found") in messages
    assert ("business-units", "holds no <unit>.yaml files") in messages


def test_budget_below_full_quota_cost_is_a_warning_with_the_numbers(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / ES, set_path(("budget", "monthly"), 1000))
    catalog = load_catalog(root)
    (warning,) = catalog.warnings
    assert warning.severity is Severity.WARNING
    assert warning.field == "budget.monthly"
    version = rate_version_for(catalog.rates)
    cost = round_money(unit_monthly_cost(catalog.unit("edge-security"), version), "CNY")
    expected = f"full-quota monthly cost {cost:,} CNY is above the budget 1,000.00 CNY by {cost - 1000:,}"
    assert expected in warning.message


def test_full_quota_cost_is_closed_form() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    version = rate_version_for(catalog.rates)
    # es-testbed: 48 cores, 192 GiB, 200 GiB hot, 5 TiB archive over 730 h at the 2026 prices.
    expected = (
        Decimal(48) * 730 * Decimal("0.24")
        + Decimal(192) * 730 * Decimal("0.032")
        + Decimal(200) * Decimal("0.90")
        + Decimal(5 * 1024) * Decimal("0.08")
    )
    assert round_money(unit_monthly_cost(catalog.unit("edge-security"), version), "CNY") == round_money(expected, "CNY")


def test_pool_validate_cli_reports_problems_without_traceback(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / DI, set_path(di_ns(0, "node_pool"), "gpu"))
    result = CliRunner().invoke(app, ["validate", "--catalog", str(root)])
    assert result.exit_code == 2
    assert "unknown node pool 'gpu'" in result.output
    assert "Traceback" not in result.output


def test_catalog_schema_export_lists_field_descriptions(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["catalog", "schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    import json

    unit_schema = json.loads((tmp_path / "business-unit.schema.json").read_text(encoding="utf-8"))
    assert unit_schema["properties"]["cost_center"]["description"] == "Finance cost center, e.g. CC-4100."
    quota = unit_schema["$defs"]["Quota"]["properties"]
    assert {"cpu", "memory", "storage", "gpu", "load_balancers", "pods"} <= set(quota)
