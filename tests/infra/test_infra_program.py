"""The program as `pulumi up` runs it (config read once, stack outputs) and its error messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.errors import ProgramError
from infra.mocks import ProgramRun, run_build, run_pulumi
from infra.program import build, main
from pool_catalog import CatalogError, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

QUOTA = "kubernetes:core/v1:ResourceQuota"


def run_main(catalog_dir: Path | str, cluster: str = "dc1") -> ProgramRun:
    config = {"resource-pool:catalog": str(catalog_dir), "resource-pool:cluster": cluster}
    return run_pulumi(main, stack=cluster, config=config)


@pytest.fixture(scope="module")
def main_run() -> ProgramRun:
    return run_main(EXAMPLE_CATALOG)


def test_stack_outputs_per_unit(main_run: ProgramRun) -> None:
    outputs = main_run.stack_outputs
    assert outputs["cluster"] == "dc1"
    assert outputs["currency"] == "CNY"
    assert sorted(outputs["units"]) == ["community-services", "data-insight", "edge-security", "platform"]
    edge = outputs["units"]["edge-security"]
    assert edge["namespaces"] == ["es-testbed"]
    assert edge["cost_center"] == "CC-4300"
    # 48 cores × 730 h × 0.24 + 192 GiB × 730 h × 0.032 + 200 GiB × 0.90 + 5120 GiB × 0.08 (per GiB-month)
    # = 8409.60 + 4485.12 + 180.00 + 409.60
    assert edge["monthly_cost"] == "13484.32"
    assert edge["budget"] == "15000.00"
    assert edge["quotas"]["es-testbed"]["pool-cold.storageclass.storage.k8s.io/requests.storage"] == "0"


def test_stack_output_quotas_are_the_applied_quotas(main_run: ProgramRun) -> None:
    applied = {r.props["metadata"]["namespace"]: r.props["spec"]["hard"] for r in main_run.of_type(QUOTA)}
    exported = {ns: hard for unit in main_run.stack_outputs["units"].values() for ns, hard in unit["quotas"].items()}
    assert exported == applied
    assert len(main_run.resources) == 74


def test_monthly_cost_follows_the_rate_version_in_force() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)

    def cost(when: dt.datetime) -> dict[str, Any]:
        return run_build(catalog, "dc1", priced_at=when).result["units"]["data-insight"]

    before = cost(dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    after = cost(dt.datetime(2026, 10, 20, tzinfo=dt.UTC))
    # di-api: 4204.80 cpu + 2242.56 memory + 450.00 hot + 219.00 LB = 7116.36
    # di-batch: 16819.20 cpu + 11960.32 memory + 16790.00 GPU + 921.60 hot + 20480 GiB cold × 0.30 (then 0.24)
    assert before["namespace_monthly_costs"] == {"di-api": "7116.36", "di-batch": "52635.12"}
    assert after["namespace_monthly_costs"] == {"di-api": "7116.36", "di-batch": "51406.32"}
    assert before["monthly_cost"] == "59751.48"
    assert after["monthly_cost"] == "58522.68"


def test_relative_catalog_path_is_resolved_from_the_project_root() -> None:
    run = run_main("catalog")
    assert sorted(run.stack_outputs["units"]) == ["community-services", "data-insight", "edge-security", "platform"]


def test_catalog_error_is_a_clean_message_naming_file_and_field(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def wrong_pool(doc: Any) -> None:
        doc["namespaces"][0]["node_pool"] = "gpu-giant"

    edit_yaml(root / "business-units" / "edge-security.yaml", wrong_pool)
    with pytest.raises(pulumi.RunError) as caught:
        run_main(root)
    message = str(caught.value)
    assert "edge-security.yaml" in message
    assert "namespaces[0].node_pool" in message
    assert "unknown node pool 'gpu-giant'" in message
    assert "pool validate" in message


def test_unknown_cluster_in_stack_config() -> None:
    with pytest.raises(pulumi.RunError, match=r"cluster 'dc9' is not in .*pool.yaml \(clusters: dc1\)"):
        run_main(EXAMPLE_CATALOG, cluster="dc9")
    with pytest.raises(ProgramError):
        build(load_catalog(EXAMPLE_CATALOG), "dc9")


def test_container_default_above_the_namespace_limit_is_refused(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def huge_default(doc: Any) -> None:
        doc["namespaces"][0]["container_defaults"] = {"default_cpu": "200"}

    edit_yaml(root / "business-units" / "edge-security.yaml", huge_default)
    with pytest.raises(CatalogError) as caught:
        run_build(load_catalog(root), "dc1")
    (finding,) = caught.value.findings
    assert finding.file.endswith("business-units/edge-security.yaml")
    assert finding.field == "namespaces[0].container_defaults.default_cpu"
    assert "above the namespace's limits_cpu quota 96" in finding.message
