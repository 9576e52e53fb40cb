"""`pool capacity` on the example catalog: every figure is a closed-form sum of pool.yaml and the unit files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app
from tests.support.catalog_edit import copy_example, edit_yaml

runner = CliRunner()
GI = 2**30


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def capacity_json(catalog: Path, *args: str) -> list[dict]:
    result = runner.invoke(app, ["capacity", "--catalog", str(catalog), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_node_pool_figures_match_the_catalog(catalog: Path) -> None:
    [dc1] = capacity_json(catalog)
    assert dc1["cluster"] == "dc1"
    general = dc1["node_pools"]["general"]
    # 4 servers × 64 cores at overcommit 2.0; quotas 24 + 32 + 8 + 16 + 8 + 16 = 104 cores
    assert general["cpu"] == {
        "capacity": "256",
        "overcommit": "2",
        "limit": "512",
        "allocated": "104",
        "free": "408",
        "allocated_percent": "20.3",
    }
    # 4 × 512Gi, never overcommitted; quotas 96 + 128 + 32 + 64 + 32 + 64 = 416Gi
    assert general["memory"]["capacity"] == str(2048 * GI)
    assert general["memory"]["allocated"] == str(416 * GI)
    assert general["memory"]["free"] == str(1632 * GI)
    assert general["gpu"]["limit"] == "0" and general["gpu"]["allocated_percent"] is None
    batch = dc1["node_pools"]["batch"]
    # 2 × 96 cores at the pool's own overcommit 1.5 = 288; di-batch holds 96 cores and 2 of the 4 GPUs
    assert (batch["cpu"]["limit"], batch["cpu"]["free"]) == ("288", "192")
    assert (batch["gpu"]["capacity"], batch["gpu"]["allocated"], batch["gpu"]["allocated_percent"]) == (
        "4",
        "2",
        "50.0",
    )
    edge = dc1["node_pools"]["edge-lab"]
    assert (edge["memory"]["allocated"], edge["memory"]["free"]) == (str(192 * GI), str(64 * GI))


def test_storage_tiers_and_addresses_match_the_catalog(catalog: Path) -> None:
    [dc1] = capacity_json(catalog)
    hot = dc1["storage_tiers"]["hot"]
    # 500 + 1024 + 1024 + 200 + 200 + 200 + 100 + 300 = 3,548Gi of 40Ti
    assert (hot["capacity"], hot["allocated"], hot["free"]) == (str(40960 * GI), str(3548 * GI), str(37412 * GI))
    # di-batch 20Ti + pf-credit 2Ti; cs-miniapp 2Ti + es-testbed 5Ti
    assert dc1["storage_tiers"]["cold"]["allocated"] == str(22 * 1024 * GI)
    assert dc1["storage_tiers"]["archive"]["allocated"] == str(7 * 1024 * GI)
    # 192.0.2.0/25; units own a /29 and two /28s; quotas 1 + 2 + 1 + 1 load balancers
    assert dc1["load_balancer_addresses"] == {"addresses": 128, "assigned_to_units": 40, "unassigned": 88, "quota": 5}


def test_table_shows_each_pool_and_tier_row(catalog: Path) -> None:
    result = runner.invoke(app, ["capacity", "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    general = ["general", "cpu", "256", "cores", "×2.0", "512", "cores", "104", "cores", "408", "cores", "20.3", "%"]
    assert general in rows
    assert ["batch", "gpu", "4", "GPUs", "×1.0", "4", "GPUs", "2", "GPUs", "2", "GPUs", "50.0", "%"] in rows
    assert ["edge-lab", "memory", "256", "GiB", "×1.0", "256", "GiB", "192", "GiB", "64", "GiB", "75.0", "%"] in rows
    assert ["hot", "40", "TiB", "3,548", "GiB", "37,412", "GiB", "8.7", "%"] in rows
    assert "load-balancer addresses 128, assigned to units 40, unassigned 88; quotas allow 5" in result.output


def test_a_written_request_shows_up_in_the_allocation(catalog: Path) -> None:
    result = runner.invoke(
        app,
        [
            *("request", "--catalog", str(catalog), "--at", "2026-11-01T00:00:00Z", "--write"),
            *("--unit", "community-services", "--namespace", "cs-reports", "--node-pool", "general"),
            *("--cpu", "8", "--memory", "32Gi", "--storage", "hot=500Gi"),
        ],
    )
    assert result.exit_code == 0, result.output
    [dc1] = capacity_json(catalog, "--cluster", "dc1")
    assert dc1["node_pools"]["general"]["cpu"]["allocated"] == "112"
    assert dc1["storage_tiers"]["hot"]["allocated"] == str(4048 * GI)


def test_unknown_cluster_exits_2_naming_the_known_ones(catalog: Path) -> None:
    result = runner.invoke(app, ["capacity", "--catalog", str(catalog), "--cluster", "dc9"])
    assert result.exit_code == 2
    assert "--cluster 'dc9' is not in pool.yaml: use one of dc1" in result.output
    assert "Traceback" not in result.output


def test_an_over_allocated_pool_is_shown_with_the_finding(catalog: Path) -> None:
    def grow_di_api(unit: dict) -> None:
        unit["namespaces"][0]["quota"]["cpu"] = 500

    edit_yaml(catalog / "business-units" / "data-insight.yaml", grow_di_api)
    result = runner.invoke(app, ["capacity", "--catalog", str(catalog)])
    assert result.exit_code == 0, result.output
    # general: 104 - 24 + 500 = 580 cores of 512
    assert "above capacity 256 cores × overcommit 2.0 = 512 cores by 68 cores" in result.output
    assert ["general", "cpu", "256", "cores", "×2.0", "512", "cores", "580", "cores", "-68", "cores", "113.3", "%"] in [
        line.split() for line in result.output.splitlines()
    ]
