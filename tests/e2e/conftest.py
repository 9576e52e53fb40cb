"""Fixtures of the e2e tier: the tools from tools/e2e-tools.sh, a local control plane, a Pulumi project.

The tier needs binaries built by `make e2e-tools`. Without them its tests are skipped with that
hint, unless RESOURCE_POOL_E2E=required (as `make test` sets it), where a missing tool fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pool_catalog import load_catalog
from pool_catalog.quantities import format_bytes, format_cpu
from tests.e2e.cluster import LocalCluster, local_cluster
from tests.e2e.pulumi_cli import PulumiProject
from tests.support.catalog_edit import EXAMPLE_CATALOG

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


def locate(*names: str) -> dict[str, str]:
    """KEY=path of each tool, as `tools/e2e-tools.sh --locate` finds them (it never builds)."""
    result = subprocess.run(
        ["bash", str(REPO / "tools" / "e2e-tools.sh"), "--locate", *names], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        message = f"e2e tools missing: {result.stderr.strip()}"
        if os.environ.get("RESOURCE_POOL_E2E") == "required":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def cluster_tools() -> dict[str, str]:
    """etcd, kube-apiserver and kube-controller-manager."""
    return locate("kubernetes", "etcd")


@pytest.fixture(scope="session")
def pulumi_tools() -> dict[str, str]:
    """The Pulumi CLI and its Python language host."""
    return locate("pulumi", "pulumi-language-python")


@pytest.fixture(scope="session")
def provider(project: PulumiProject) -> PulumiProject:
    """The project with the kubernetes provider registered (needed once a resource is planned)."""
    project.use_plugins(Path(locate("pulumi-kubernetes")["PULUMI_PLUGINS_HOME"]) / "plugins")
    return project


@pytest.fixture(scope="session")
def metrics_tools() -> dict[str, str]:
    """Prometheus 3 and Thanos."""
    return locate("prometheus", "thanos")


@pytest.fixture(scope="session")
def cluster(cluster_tools: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The control plane, with a Node for each server of the example catalog (as their kubelets register)."""
    with local_cluster(cluster_tools, tmp_path_factory.mktemp("cluster")) as running:
        catalog = load_catalog(EXAMPLE_CATALOG)
        for pool in catalog.pool.clusters[0].node_pools:
            for node in pool.nodes:
                running.create_node(node.name, format_cpu(node.cpu), format_bytes(node.memory))
        running.wait_for(
            "the default ServiceAccount of the default namespace",
            lambda: running.exists("/api/v1/namespaces/default/serviceaccounts/default"),
        )
        yield running


@pytest.fixture(scope="session")
def project(
    pulumi_tools: dict[str, str], cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PulumiProject]:
    """The project in a scratch folder (stack files stay out of the repo), logged in to a file backend."""
    root = tmp_path_factory.mktemp("pulumi")
    catalog = root / "catalog"
    shutil.copytree(EXAMPLE_CATALOG, catalog)
    yield PulumiProject.create(root, REPO, pulumi_tools, cluster.kubeconfig, catalog)
