"""What the program does with the live cluster's facts, and the tenancy it declares (under mocks).

The facts (`ClusterFacts`) are what `pulumi up` reads from the API server before planning: here
they are handed in, as the mocks do, to show each defect the real server showed is now refused
with a message, and how the catalog turns MetalLB pools off, retires a unit and opens egress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.cluster_state import ClusterFacts
from infra.components.resource_pool import UNIT_OWNER_RULES
from infra.errors import ProgramError
from infra.mocks import ProgramRun, run_pulumi
from infra.program import build, main
from pool_catalog import CatalogError, load_catalog
from pool_catalog.models import Cluster
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

NAMESPACE = "kubernetes:core/v1:Namespace"
NODE_PATCH = "kubernetes:core/v1:NodePatch"
IP_POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"


def facts(cluster: Cluster, *, without_nodes: tuple[str, ...] = (), metallb: bool = True) -> ClusterFacts:
    assumed = ClusterFacts.assumed(cluster)
    return ClusterFacts(
        nodes=assumed.nodes - set(without_nodes),
        crds=assumed.crds if metallb else frozenset(),
        namespaces=assumed.namespaces if metallb else frozenset(),
        source="test cluster",
    )


def run_with(root: Path, **kwargs: Any) -> ProgramRun:
    catalog = load_catalog(root)
    return run_pulumi(lambda: build(catalog, "dc1", **kwargs), stack="dc1")


def patched_nodes(run: ProgramRun) -> set[str]:
    return {r.props["metadata"]["name"] for r in run.of_type(NODE_PATCH)}


# ------------------------------------------------------------------- nodes


def test_a_server_that_is_not_a_node_stops_the_program_naming_it() -> None:
    with pytest.raises(ProgramError) as raised:
        run_with(EXAMPLE_CATALOG, cluster_facts=lambda c: facts(c, without_nodes=("srv-gen-04", "srv-edge-02")))
    message = str(raised.value)
    assert "srv-gen-04 (node pool general), srv-edge-02 (node pool edge-lab)" in message
    assert "are not a Node in test cluster" in message
    assert "pulumi config set resource-pool:missingNodes warn" in message


def test_missing_nodes_warn_skips_only_their_patches() -> None:
    run = run_with(
        EXAMPLE_CATALOG, cluster_facts=lambda c: facts(c, without_nodes=("srv-edge-02",)), missing_nodes="warn"
    )
    patched = patched_nodes(run)
    assert "srv-edge-02" not in patched
    assert {"srv-edge-01", "srv-gen-01", "srv-bat-02"} <= patched
    assert len(run.of_type(NODE_PATCH)) == 7  # one per server, less srv-edge-02


def test_main_rejects_an_unknown_missing_nodes_setting() -> None:
    config = {"resource-pool:catalog": str(EXAMPLE_CATALOG), "resource-pool:missingNodes": "ignore"}
    with pytest.raises(Exception, match="resource-pool:missingNodes is 'ignore'; set it to error"):
        run_pulumi(main, stack="dc1", config=config)


def test_main_under_mocks_answers_lookups_from_the_given_facts() -> None:
    config = {"resource-pool:catalog": str(EXAMPLE_CATALOG), "resource-pool:missingNodes": "warn"}
    run = run_pulumi(main, stack="dc1", config=config, cluster_facts=lambda c: facts(c, without_nodes=("srv-gen-01",)))
    assert "srv-gen-01" not in patched_nodes(run)


# ------------------------------------------------------------------ metallb


def test_metallb_pools_without_metallb_stop_before_any_object_is_planned() -> None:
    with pytest.raises(ProgramError) as raised:
        run_with(EXAMPLE_CATALOG, cluster_facts=lambda c: facts(c, metallb=False))
    message = str(raised.value)
    assert "hands out load-balancer addresses to community-services, data-insight, platform" in message
    assert (
        "has no CustomResourceDefinition ipaddresspools.metallb.io and no CustomResourceDefinition "
        "l2advertisements.metallb.io and no namespace metallb-system" in message
    )
    assert "Install MetalLB" in message and "address_pools: false" in message


def test_address_pools_off_plans_no_metallb_object_and_needs_no_metallb(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "pool.yaml", lambda doc: doc["clusters"][0]["network"].update(address_pools=False))
    run = run_with(root, cluster_facts=lambda c: facts(c, metallb=False))
    assert run.of_type(IP_POOL) == [] and run.of_type(L2) == []
    assert len(run.of_type(NAMESPACE)) == 8


# ------------------------------------------------------------------- retire


@pytest.mark.parametrize(("retire", "retained"), [("retain", True), ("delete", False)])
def test_a_retiring_unit_unprotects_its_namespaces(tmp_path: Path, retire: str, retained: bool) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "business-units" / "edge-security.yaml", lambda doc: doc.update(retire=retire))
    run = run_with(root)
    options = run.options[(NAMESPACE, "es-testbed")]
    assert not options.protect
    assert options.retain_on_delete is retained
    assert run.options[(NAMESPACE, "di-api")].protect  # other units keep theirs


def test_retire_accepts_only_retain_or_delete(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "business-units" / "edge-security.yaml", lambda doc: doc.update(retire="archive"))
    with pytest.raises(CatalogError, match="retire"):
        load_catalog(root)


# ------------------------------------------------------------------ tenancy


def test_namespaces_enforce_baseline_by_default_and_a_namespace_may_ask_for_restricted(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def restricted(doc: Any) -> None:
        doc["namespaces"][0]["pod_security"] = "restricted"

    edit_yaml(root / "business-units" / "edge-security.yaml", restricted)
    run = run_with(root)
    labels = {r.props["metadata"]["name"]: r.props["metadata"]["labels"] for r in run.of_type(NAMESPACE)}
    assert labels["di-api"]["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["di-api"]["pod-security.kubernetes.io/enforce-version"] == "v1.31"
    assert labels["di-api"]["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["di-api"]["pod-security.kubernetes.io/audit"] == "restricted"
    assert labels["es-testbed"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_privileged_pod_security_is_not_accepted(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "pool.yaml", lambda doc: doc["clusters"][0].update(pod_security="privileged"))
    with pytest.raises(CatalogError, match="pod_security"):
        load_catalog(root)


def test_egress_outside_the_cluster_only_to_listed_networks(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "pool.yaml", lambda doc: doc["clusters"][0]["network"].update(egress_cidrs=["10.20.0.0/16"]))

    def own(doc: Any) -> None:
        doc["namespaces"][0]["egress_cidrs"] = ["198.51.100.0/24"]

    edit_yaml(root / "business-units" / "edge-security.yaml", own)
    run = run_with(root)

    def outside(namespace: str) -> list[str]:
        (policy,) = [
            r.props
            for r in run.of_type(NETPOL)
            if r.props["metadata"]["namespace"] == namespace and r.props["metadata"]["name"] == "pool-baseline"
        ]
        return [
            peer["ipBlock"]["cidr"] for rule in policy["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer
        ]

    assert outside("es-testbed") == ["10.20.0.0/16", "198.51.100.0/24"]
    assert outside("di-api") == ["10.20.0.0/16"]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "10.0.0.1/8"])
def test_egress_cidrs_refuse_everywhere_and_host_bits(tmp_path: Path, cidr: str) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "pool.yaml", lambda doc: doc["clusters"][0]["network"].update(egress_cidrs=[cidr]))
    with pytest.raises(CatalogError, match="egress_cidrs"):
        load_catalog(root)


def test_unit_owner_role_cannot_write_what_bounds_the_namespace() -> None:
    bounded = {"networkpolicies", "resourcequotas", "limitranges", "roles", "rolebindings"}
    writes = {"create", "update", "patch", "delete", "deletecollection", "*"}
    for rule in UNIT_OWNER_RULES:
        if bounded & set(rule["resources"]):
            assert not writes & set(rule["verbs"]), rule
        assert "*" not in rule["resources"] and "*" not in rule["verbs"]
    run = run_with(EXAMPLE_CATALOG)
    (role,) = run.of_type(CLUSTER_ROLE)
    assert role.props["metadata"]["name"] == "resource-pool-unit-owner"
