"""The platform engineer's loop with the real Pulumi CLI against a local kube-apiserver.

The tests run in file order on one cluster and one stack: the refusals come first (nothing is
created while MetalLB or a server is missing), then `pulumi up`, the read-back, the API server's
own enforcement (quota, RBAC), a catalog edit, and the retire path down to `pulumi destroy`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from infra.cli import app
from infra.mocks import RegisteredResource, run_program
from pool_catalog import load_catalog
from tests.e2e.cluster import LocalCluster
from tests.e2e.pulumi_cli import PulumiProject
from tests.support.catalog_edit import edit_yaml

pytestmark = pytest.mark.e2e

COMPONENTS = ("resource-pool:index:ResourcePool", "resource-pool:index:BusinessUnit")
METALLB = "/apis/metallb.io/v1beta1"


def api_path(resource: RegisteredResource) -> str:
    """Where the API server keeps the object a declared resource applies."""
    meta = resource.props["metadata"]
    name, namespace = meta["name"], meta.get("namespace")
    core, rbac, net = "/api/v1", "/apis/rbac.authorization.k8s.io/v1", "/apis/networking.k8s.io/v1"
    group_paths = {
        "kubernetes:core/v1:Namespace": core + "/namespaces/{name}",
        "kubernetes:core/v1:NodePatch": core + "/nodes/{name}",
        "kubernetes:core/v1:ResourceQuota": core + "/namespaces/{ns}/resourcequotas/{name}",
        "kubernetes:core/v1:LimitRange": core + "/namespaces/{ns}/limitranges/{name}",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": net + "/namespaces/{ns}/networkpolicies/{name}",
        "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": rbac + "/namespaces/{ns}/rolebindings/{name}",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": rbac + "/clusterroles/{name}",
        "kubernetes:storage.k8s.io/v1:StorageClass": "/apis/storage.k8s.io/v1/storageclasses/{name}",
        "kubernetes:metallb.io/v1beta1:IPAddressPool": METALLB + "/namespaces/{ns}/ipaddresspools/{name}",
        "kubernetes:metallb.io/v1beta1:L2Advertisement": METALLB + "/namespaces/{ns}/l2advertisements/{name}",
    }
    return group_paths[resource.type].format(name=name, ns=namespace)


def install_metallb_crds(cluster: LocalCluster) -> None:
    """MetalLB's two CRDs and namespace, as its manifests install them (schemas left open: no controller runs)."""
    for plural, kind in (("ipaddresspools", "IPAddressPool"), ("l2advertisements", "L2Advertisement")):
        crd = {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.metallb.io"},
            "spec": {
                "group": "metallb.io",
                "scope": "Namespaced",
                "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": f"{kind}List"},
                "versions": [
                    {
                        "name": "v1beta1",
                        "served": True,
                        "storage": True,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }
                ],
            },
        }
        status, body = cluster.api("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        assert status in (201, 409), body
    status, body = cluster.api("POST", "/api/v1/namespaces", {"metadata": {"name": "metallb-system"}})
    assert status in (201, 409), body
    cluster.wait_for("the metallb.io/v1beta1 API", lambda: cluster.exists(METALLB + "/ipaddresspools"))


def output_of(result: Any) -> str:
    return result.stdout + result.stderr


# ------------------------------------------------------------------ refusals


def test_preview_without_metallb_stops_and_says_what_to_install(project: PulumiProject, cluster: LocalCluster) -> None:
    result = project.run("preview", "--policy-pack", project.policy_pack(), check=False)
    assert result.returncode != 0
    text = output_of(result)
    assert "hands out load-balancer addresses to community-services, data-insight, platform" in text
    assert "no CustomResourceDefinition ipaddresspools.metallb.io" in text
    assert "Install MetalLB" in text
    assert not cluster.exists("/api/v1/namespaces/di-api")


def test_a_server_that_never_joined_is_named_and_no_phantom_node_is_made(
    project: PulumiProject, cluster: LocalCluster
) -> None:
    def add_server(doc: Any) -> None:
        doc["clusters"][0]["node_pools"][0]["nodes"].append({"name": "srv-gen-05", "cpu": 64, "memory": "512Gi"})

    edit_yaml(project.catalog / "pool.yaml", add_server)
    try:
        result = project.run("up", "--yes", "--skip-preview", check=False)
        assert result.returncode != 0
        assert "srv-gen-05 (node pool general)" in output_of(result)
        assert "is not a Node" in output_of(result)
        assert not cluster.exists("/api/v1/nodes/srv-gen-05")
    finally:

        def drop_server(doc: Any) -> None:  # edit_yaml writes back what the edit returns, if anything
            doc["clusters"][0]["node_pools"][0]["nodes"].pop()

        edit_yaml(project.catalog / "pool.yaml", drop_server)


@pytest.fixture(scope="module")
def metallb(cluster: LocalCluster) -> None:
    install_metallb_crds(cluster)


def test_preview_with_the_policy_pack_passes(provider: PulumiProject, metallb: None) -> None:
    project = provider
    result = project.run("preview", "--policy-pack", project.policy_pack())
    assert "resource-pool" in output_of(result)


def test_policy_pack_refuses_quotas_that_leave_no_headroom(
    provider: PulumiProject, metallb: None, tmp_path: Path
) -> None:
    project = provider
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"node-pool-capacity": {"headroom_percent": 50, "catalog": str(project.catalog)}}))
    result = project.run(
        "preview", "--policy-pack", project.policy_pack(), "--policy-pack-config", str(config), check=False
    )
    assert result.returncode != 0
    text = output_of(result)
    assert "node-pool-capacity" in text
    assert (
        "node pool 'edge-lab': memory quotas total 192 GiB, above capacity 256 GiB × overcommit 1.0 less 50% "
        "headroom = 128 GiB by 64 GiB" in text
    )


def test_an_overcommitted_catalog_is_refused_with_the_capacity_message(project: PulumiProject, metallb: None) -> None:
    unit = project.catalog / "business-units" / "edge-security.yaml"
    saved = unit.read_text()
    edit_yaml(unit, lambda d: d["namespaces"][0]["quota"].__setitem__("memory", "300Gi"))
    try:
        result = project.run("preview", "--policy-pack", project.policy_pack(), check=False)
        assert result.returncode != 0
        text = output_of(result)
        assert "node pool 'edge-lab': memory quotas total 300 GiB, above capacity 256 GiB" in text, text[-3000:]
    finally:
        unit.write_text(saved)


# ----------------------------------------------------------------------- up


@pytest.fixture(scope="module")
def deployed(provider: PulumiProject, metallb: None) -> list[RegisteredResource]:
    project = provider
    project.run("up", "--yes", "--skip-preview", "--policy-pack", project.policy_pack())
    return [r for r in run_program(load_catalog(project.catalog), "dc1") if r.type not in COMPONENTS]


def test_up_creates_every_object_the_program_declares(
    cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    assert len(deployed) == 69  # the 74 registrations under mocks less the 5 components
    for resource in deployed:
        live = cluster.get(api_path(resource))
        wanted_labels = resource.props["metadata"].get("labels") or {}
        assert wanted_labels.items() <= (live["metadata"].get("labels") or {}).items(), api_path(resource)
        if resource.type == "kubernetes:core/v1:ResourceQuota":
            assert live["spec"]["hard"] == resource.props["spec"]["hard"]
        if resource.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            assert live["spec"]["policyTypes"] == resource.props["spec"]["policyTypes"]
        if resource.type == "kubernetes:core/v1:NodePatch" and "spec" in resource.props:
            assert live["spec"]["taints"] == resource.props["spec"]["taints"]
    # Server-side apply patched the registered Nodes: still exactly the servers the fixture registered.
    assert len(cluster.get("/api/v1/nodes")["items"]) == 8


def test_a_second_up_changes_nothing(project: PulumiProject, deployed: list[RegisteredResource]) -> None:
    project.run("preview", "--expect-no-changes")
    project.run("up", "--yes", "--skip-preview", "--expect-no-changes")


# ------------------------------------------------------ the API server enforces


def pod(name: str, cpu_request: str, cpu_limit: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.invalid/app:1",
                    "resources": {
                        "requests": {"cpu": cpu_request, "memory": "64Mi"},
                        "limits": {"cpu": cpu_limit, "memory": "128Mi"},
                    },
                    "securityContext": {"allowPrivilegeEscalation": False},
                }
            ],
        },
    }


def test_the_quota_is_enforced_by_the_api_server(cluster: LocalCluster, deployed: list[RegisteredResource]) -> None:
    # es-testbed: requests.cpu 48 (quota), limits.cpu 96; a container may take up to the namespace's limit.
    cluster.wait_for(
        "the default ServiceAccount in es-testbed",
        lambda: cluster.exists("/api/v1/namespaces/es-testbed/serviceaccounts/default"),
    )
    # Quota admission refuses every pod until the quota controller has computed the quota's status.
    cluster.wait_for(
        "the status of es-testbed's quota",
        lambda: bool(
            cluster.get("/api/v1/namespaces/es-testbed/resourcequotas/pool-quota").get("status", {}).get("hard")
        ),
    )
    status, body = cluster.api("POST", "/api/v1/namespaces/es-testbed/pods", pod("fits", "2", "4"))
    assert status == 201, body
    status, body = cluster.api("POST", "/api/v1/namespaces/es-testbed/pods", pod("too-big", "60", "60"))
    assert status == 403, body
    assert "exceeded quota: pool-quota" in body["message"] and "requests.cpu" in body["message"]


def test_pod_security_baseline_refuses_a_privileged_pod(
    cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    privileged = pod("privileged", "1", "1")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    status, body = cluster.api("POST", "/api/v1/namespaces/es-testbed/pods", privileged)
    assert status == 403, body
    assert 'violates PodSecurity "baseline:v1.31"' in body["message"]


def test_rbac_owners_manage_their_own_namespaces_only(
    cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "catalog")
    units = {unit.id: unit for unit in catalog.units}
    owner = ("di-owner", list(units["data-insight"].owners))
    viewer = ("di-viewer", list(units["data-insight"].viewers))
    can = cluster.can
    assert can(*owner, "create", "pods", "di-api")
    assert can(*owner, "create", "deployments", "di-batch", group="apps")
    assert can(*owner, "get", "networkpolicies", "di-api", group="networking.k8s.io")
    assert not can(*owner, "create", "pods", "pf-credit")
    assert not can(*owner, "get", "secrets", "pf-credit")
    for verb in ("create", "update", "patch", "delete"):
        assert not can(*owner, verb, "networkpolicies", "di-api", group="networking.k8s.io"), verb
        assert not can(*owner, verb, "resourcequotas", "di-api"), verb
        assert not can(*owner, verb, "limitranges", "di-api"), verb
        assert not can(*owner, verb, "rolebindings", "di-api", group="rbac.authorization.k8s.io"), verb
    assert can(*viewer, "list", "pods", "di-api")
    assert not can(*viewer, "create", "pods", "di-api")
    assert not can(*viewer, "delete", "deployments", "di-api", group="apps")
    # Nothing cluster-wide for any unit group.
    for unit in units.values():
        groups = [*unit.owners, *unit.viewers]
        for verb, resource, group in (("list", "pods", ""), ("list", "namespaces", ""), ("get", "nodes", ""),
                                      ("create", "clusterrolebindings", "rbac.authorization.k8s.io")):  # fmt: skip
            assert not can(f"{unit.id}-member", groups, verb, resource, "", group), (unit.id, verb, resource)


def test_an_owner_cannot_delete_the_baseline_policy_of_its_namespace(
    cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "catalog")
    owners = next(u.owners for u in catalog.units if u.id == "data-insight")
    path = "/apis/networking.k8s.io/v1/namespaces/di-api/networkpolicies/pool-baseline"
    status, body = cluster.api("DELETE", path, impersonate=("di-owner", list(owners)))
    assert status == 403, body
    status, body = cluster.api(
        "PATCH",
        "/api/v1/namespaces/di-api/resourcequotas/pool-quota",
        {"spec": {"hard": {"requests.cpu": "1000"}}},
        impersonate=("di-owner", list(owners)),
        content_type="application/merge-patch+json",
    )
    assert status == 403, body
    assert cluster.exists(path)


# ------------------------------------------------------------- catalog edits


def test_a_catalog_edit_gives_the_expected_diff(
    project: PulumiProject, cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    def raise_quota(doc: Any) -> None:
        ns = next(n for n in doc["namespaces"] if n["name"] == "di-batch")
        ns["quota"]["pods"] = int(ns["quota"].get("pods", 100)) + 5

    edit_yaml(project.catalog / "business-units" / "data-insight.yaml", raise_quota)
    result = CliRunner().invoke(
        app,
        ["request", "--catalog", str(project.catalog), "--unit", "data-insight", "--namespace", "di-reports",
         "--node-pool", "general", "--cpu", "2", "--memory", "4Gi", "--write", "--allow-over-budget"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    steps = project.preview_steps()
    changed = {(step["op"], step["urn"].split("::")[-1]) for step in steps if step["op"] != "same"}
    assert ("update", "di-batch-quota") in changed
    for name in ("di-reports", "di-reports-quota", "di-reports-limits", "di-reports-netpol-pool-baseline",
                 "di-reports-pool-owners", "di-reports-pool-viewers-view"):  # fmt: skip
        assert ("create", name) in changed, (name, sorted(changed))
    # The new namespace joins the unit's MetalLB pool (serviceAllocation lists its namespaces).
    allowed = {("update", "di-batch-quota"), ("update", "metallb-pool-data-insight")}
    assert {c for c in changed if c[0] != "create"} <= allowed, sorted(changed)
    project.run("up", "--yes", "--skip-preview")
    assert cluster.get("/api/v1/namespaces/di-reports/resourcequotas/pool-quota")["spec"]["hard"]["requests.cpu"] == "2"


# ------------------------------------------------------------------- retire


def test_retiring_a_unit_deletes_or_keeps_its_namespaces_as_the_catalog_says(
    project: PulumiProject, cluster: LocalCluster, deployed: list[RegisteredResource]
) -> None:
    units = project.catalog / "business-units"
    # A protected namespace is refused: removing the unit without `retire` fails and deletes nothing.
    backup = units.parent / "edge-security.yaml.kept"
    shutil.move(units / "edge-security.yaml", backup)
    result = project.run("up", "--yes", "--skip-preview", check=False)
    assert result.returncode != 0 and "protect" in output_of(result)
    assert cluster.exists("/api/v1/namespaces/es-testbed")
    shutil.move(backup, units / "edge-security.yaml")
    project.run("up", "--yes", "--skip-preview")  # back to the catalog's state

    edit_yaml(units / "edge-security.yaml", lambda doc: doc.update(retire="delete"))
    edit_yaml(units / "community-services.yaml", lambda doc: doc.update(retire="retain"))
    project.run("up", "--yes", "--skip-preview")  # unprotects their namespaces, nothing else
    (units / "edge-security.yaml").unlink()
    (units / "community-services.yaml").unlink()
    project.run("up", "--yes", "--skip-preview")
    cluster.wait_for("es-testbed to be deleted", lambda: not cluster.exists("/api/v1/namespaces/es-testbed"), 120)
    assert cluster.exists("/api/v1/namespaces/cs-miniapp")  # retained, with its workloads
    assert not cluster.exists("/api/v1/namespaces/cs-miniapp/resourcequotas/pool-quota")


def test_destroy_after_retiring_every_unit(project: PulumiProject, cluster: LocalCluster) -> None:
    units = project.catalog / "business-units"
    for unit_file in units.glob("*.yaml"):
        edit_yaml(unit_file, lambda doc: doc.update(retire="retain"))
    project.run("up", "--yes", "--skip-preview")
    project.run("destroy", "--yes", "--skip-preview")
    assert project.stack_resources() == []
    assert cluster.exists("/api/v1/namespaces/di-api")  # retained
    assert not cluster.exists("/api/v1/namespaces/di-api/resourcequotas/pool-quota")
    assert not cluster.exists("/apis/rbac.authorization.k8s.io/v1/clusterroles/resource-pool-unit-owner")
