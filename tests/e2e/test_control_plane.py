"""The local control plane the Pulumi tests run against behaves as a cluster's would."""

from __future__ import annotations

import pytest

from tests.e2e.cluster import LocalCluster

pytestmark = pytest.mark.e2e


def test_the_catalog_servers_are_registered_nodes(cluster: LocalCluster) -> None:
    names = sorted(item["metadata"]["name"] for item in cluster.get("/api/v1/nodes")["items"])
    assert names == sorted(
        [
            "srv-gen-01",
            "srv-gen-02",
            "srv-gen-03",
            "srv-gen-04",
            "srv-bat-01",
            "srv-bat-02",
            "srv-edge-01",
            "srv-edge-02",
        ]
    )
    assert cluster.get("/version")["gitVersion"] == "v1.31.14"


def test_rbac_denies_what_no_binding_grants(cluster: LocalCluster) -> None:
    assert not cluster.can("someone", ["some-group"], "list", "pods", "default")
    assert cluster.can("admin", ["system:masters"], "delete", "namespaces")


def test_the_controller_manager_finalises_a_deleted_namespace(cluster: LocalCluster) -> None:
    status, body = cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": "e2e-scratch"}})
    assert status == 201, body
    config_map = {"metadata": {"name": "c"}, "data": {"k": "v"}}
    status, body = cluster.api("POST", "/api/v1/namespaces/e2e-scratch/configmaps", config_map)
    assert status == 201, body
    status, body = cluster.api("DELETE", "/api/v1/namespaces/e2e-scratch")
    assert status == 200, body
    cluster.wait_for("e2e-scratch to be gone", lambda: not cluster.exists("/api/v1/namespaces/e2e-scratch"), 90)
