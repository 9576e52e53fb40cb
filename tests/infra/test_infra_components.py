"""The Pulumi program under Pulumi's mocks: what each component declares for the example catalog."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from infra.mocks import ProgramRun, RegisteredResource, run_build, run_program
from pool_catalog import load_catalog
from pool_catalog.conventions import BUSINESS_UNIT_TYPE, RESOURCE_POOL_TYPE
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

NAMESPACE = "kubernetes:core/v1:Namespace"
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMITS = "kubernetes:core/v1:LimitRange"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
BINDING = "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding"
CLUSTER_ROLE = "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole"
NODE_PATCH = "kubernetes:core/v1:NodePatch"
STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
IP_POOL = "kubernetes:metallb.io/v1beta1:IPAddressPool"
L2 = "kubernetes:metallb.io/v1beta1:L2Advertisement"
UNIT_LABEL = "pool.resource-pool.io/business-unit"
NAME_LABEL = "kubernetes.io/metadata.name"


@pytest.fixture(scope="module")
def run() -> ProgramRun:
    return run_build(load_catalog(EXAMPLE_CATALOG), "dc1")


def in_namespace(run: ProgramRun, type_token: str, namespace: str) -> dict[str, dict[str, Any]]:
    """Objects of one type in one namespace, by Kubernetes name."""
    return {
        r.props["metadata"]["name"]: r.props
        for r in run.of_type(type_token)
        if r.props["metadata"].get("namespace") == namespace
    }


def namespace_props(run: ProgramRun, name: str) -> dict[str, Any]:
    (props,) = [r.props for r in run.of_type(NAMESPACE) if r.props["metadata"]["name"] == name]
    return props


# ---------------------------------------------------------------- quotas


def test_quota_lists_every_tier_with_zero_for_tiers_not_granted(run: ProgramRun) -> None:
    hard = in_namespace(run, QUOTA, "es-testbed")["pool-quota"]["spec"]["hard"]
    assert hard == {
        "requests.cpu": "48",
        "limits.cpu": "96",  # limits default to twice the requests
        "requests.memory": "192Gi",
        "limits.memory": "192Gi",
        "requests.storage": "5320Gi",  # 200Gi hot + 5Ti archive
        "pool-hot.storageclass.storage.k8s.io/requests.storage": "200Gi",
        "pool-cold.storageclass.storage.k8s.io/requests.storage": "0",
        "pool-archive.storageclass.storage.k8s.io/requests.storage": "5Ti",
        "requests.nvidia.com/gpu": "0",
        "services.loadbalancers": "0",
        "pods": "80",
        "services.nodeports": "0",  # no NodePort Service unless the catalog grants quota.node_ports
    }


def test_quota_grants_gpus_and_load_balancers_where_the_catalog_does(run: ProgramRun) -> None:
    batch = in_namespace(run, QUOTA, "di-batch")["pool-quota"]["spec"]["hard"]
    assert batch["requests.nvidia.com/gpu"] == "2"
    assert batch["pool-cold.storageclass.storage.k8s.io/requests.storage"] == "20Ti"
    miniapp = in_namespace(run, QUOTA, "cs-miniapp")["pool-quota"]["spec"]["hard"]
    assert miniapp["services.loadbalancers"] == "2"
    assert miniapp["requests.nvidia.com/gpu"] == "0"


def test_limit_range_sets_container_defaults_and_maximum(run: ProgramRun) -> None:
    (limits,) = in_namespace(run, LIMITS, "di-api")["pool-container-defaults"]["spec"]["limits"]
    assert limits == {
        "type": "Container",
        "default": {"cpu": "1", "memory": "1Gi"},
        "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
        "max": {"cpu": "48", "memory": "96Gi"},  # no max in the catalog: the namespace's limits quota
    }


# ------------------------------------------------------------- namespaces


def test_namespace_labels_pin_it_to_its_pool_and_name_its_owner(run: ProgramRun) -> None:
    metadata = namespace_props(run, "di-batch")["metadata"]
    assert metadata["labels"][UNIT_LABEL] == "data-insight"
    assert metadata["labels"]["pool.resource-pool.io/cost-center"] == "CC-4100"
    assert metadata["labels"]["pool.resource-pool.io/node-pool"] == "batch"
    assert metadata["annotations"] == {
        "scheduler.alpha.kubernetes.io/node-selector": "pool.resource-pool.io/node-pool=batch"
    }


def test_namespace_on_a_tainted_pool_tolerates_its_taints(run: ProgramRun) -> None:
    annotations = namespace_props(run, "es-testbed")["metadata"]["annotations"]
    assert annotations["scheduler.alpha.kubernetes.io/node-selector"] == "pool.resource-pool.io/node-pool=edge-lab"
    assert json.loads(annotations["scheduler.alpha.kubernetes.io/defaultTolerations"]) == [
        {"key": "pool.example.com/dedicated", "operator": "Equal", "value": "edge-security", "effect": "NoSchedule"}
    ]
    untainted = [r for r in run.of_type(NAMESPACE) if r.props["metadata"]["name"] != "es-testbed"]
    assert len(untainted) == 7
    assert all("scheduler.alpha.kubernetes.io/defaultTolerations" not in r.props["metadata"]["annotations"]
               for r in untainted)  # fmt: skip


def test_namespaces_are_protected_and_retained(run: ProgramRun) -> None:
    namespaces = run.of_type(NAMESPACE)
    assert sorted(r.name for r in namespaces) == sorted(
        [
            "cs-miniapp",
            "cs-miniapp-staging",
            "di-api",
            "di-batch",
            "es-testbed",
            "pf-identity",
            "pf-crypto",
            "pf-credit",
        ]
    )
    for resource in namespaces:
        options = run.options[(NAMESPACE, resource.name)]
        assert options.protect and options.retain_on_delete, resource.name
        assert options.ignore_changes == ()
    # Only namespaces are protected: quotas and policies follow the catalog freely.
    assert not run.options[(QUOTA, "es-testbed-quota")].protect


def test_every_child_has_its_component_as_parent(run: ProgramRun) -> None:
    for resource in run.resources:
        if resource.type in (RESOURCE_POOL_TYPE, BUSINESS_UNIT_TYPE):
            assert resource.parent_type is None
        elif resource.type in (STORAGE_CLASS, NODE_PATCH, IP_POOL, L2, CLUSTER_ROLE):
            assert resource.parent_type == RESOURCE_POOL_TYPE, resource.name
        else:
            assert resource.parent_type == BUSINESS_UNIT_TYPE, resource.name
    assert sorted(r.name for r in run.of_type(BUSINESS_UNIT_TYPE)) == [
        "community-services",
        "data-insight",
        "edge-security",
        "platform",
    ]


# ---------------------------------------------------------------- network


def peers(rules: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return [peer for rule in rules for peer in rule.get(key, [])]


def baseline(run: ProgramRun, namespace: str) -> dict[str, Any]:
    return in_namespace(run, NETPOL, namespace)["pool-baseline"]["spec"]


def test_baseline_denies_by_default_in_both_directions(run: ProgramRun) -> None:
    for namespace in ("cs-miniapp", "es-testbed", "pf-identity"):
        spec = baseline(run, namespace)
        assert spec["podSelector"] == {}  # every pod of the namespace
        assert spec["policyTypes"] == ["Ingress", "Egress"]  # isolated: only the rules below pass


def test_policies_of_a_provider_namespace(run: ProgramRun) -> None:
    policies = in_namespace(run, NETPOL, "pf-identity")
    assert sorted(policies) == ["allow-capability-identity", "pool-baseline"]
    assert policies["pool-baseline"]["spec"]["ingress"] == [
        {"from": [{"namespaceSelector": {"matchLabels": {UNIT_LABEL: "platform"}}}]},
        {
            "from": [{"namespaceSelector": {"matchLabels": {NAME_LABEL: "ingress-nginx"}}}],
            "ports": [{"protocol": "TCP", "port": 8443}],  # `ingress: {ports: [8443]}` in platform.yaml
        },
    ]
    capability = policies["allow-capability-identity"]["spec"]
    assert capability["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "identity"}}
    assert capability["policyTypes"] == ["Ingress"]
    (rule,) = capability["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8443}]
    (peer,) = rule["from"]
    (expression,) = peer["namespaceSelector"]["matchExpressions"]
    # Exactly the namespaces whose catalog entry consumes `identity`.
    assert expression == {
        "key": NAME_LABEL,
        "operator": "In",
        "values": ["cs-miniapp", "cs-miniapp-staging", "di-api", "es-testbed"],
    }


def test_a_capability_nobody_consumes_stays_closed(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def consume_nothing(doc: Any) -> None:
        for ns in doc["namespaces"]:
            ns["consumes"] = [c for c in ns.get("consumes", []) if c != "credit-scoring"]

    for unit in ("data-insight", "community-services"):  # the two units consuming credit-scoring
        edit_yaml(root / "business-units" / f"{unit}.yaml", consume_nothing)
    resources = run_program(load_catalog(root), "dc1")
    names = {r.props["metadata"]["name"] for r in resources if r.type == NETPOL}
    assert "allow-capability-credit-scoring" not in names
    assert "allow-capability-identity" in names


def test_egress_goes_to_dns_own_unit_ingress_and_consumed_capabilities_only(run: ProgramRun) -> None:
    assert baseline(run, "di-api")["egress"] == [
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAME_LABEL: "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
        {"to": [{"namespaceSelector": {"matchLabels": {UNIT_LABEL: "data-insight"}}}]},
        {"to": [{"namespaceSelector": {"matchLabels": {NAME_LABEL: "ingress-nginx"}}}]},
        # Consumed capabilities: only the serving pods, only their ports.
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAME_LABEL: "pf-credit"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "credit-scoring"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8080}],
        },
        {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {NAME_LABEL: "pf-identity"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "identity"}},
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8443}],
        },
        # No ipBlock: the example catalog lists no egress_cidrs, so nothing outside the cluster is reachable.
    ]
    # A namespace that consumes nothing reaches no other unit's pods.
    assert len(baseline(run, "pf-credit")["egress"]) == 3


def test_ingress_is_allowed_only_from_own_unit_ingress_controller_and_consumers(run: ProgramRun) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    consumers = {
        cap.name: sorted(n.name for _, n in catalog.namespaces() if cap.name in n.consumes)
        for _, ns in catalog.namespaces()
        for cap in ns.exposes
    }
    for unit, ns in catalog.namespaces():
        allowed = [
            {"namespaceSelector": {"matchLabels": {UNIT_LABEL: unit.id}}},
            {"namespaceSelector": {"matchLabels": {NAME_LABEL: "ingress-nginx"}}},
        ]
        for cap in ns.exposes:
            allowed.append(
                {"namespaceSelector": {"matchExpressions": [
                    {"key": NAME_LABEL, "operator": "In", "values": consumers[cap.name]}]}}
            )  # fmt: skip
        for name, policy in in_namespace(run, NETPOL, ns.name).items():
            for peer in peers(policy["spec"].get("ingress", []), "from"):
                assert peer in allowed, (ns.name, name, peer)


def test_the_ingress_controller_reaches_only_the_ports_a_namespace_declares(tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(
        catalog / "business-units/data-insight.yaml",
        lambda doc: doc["namespaces"][0].update({"ingress": {"ports": [8443, 8080, 9090]}}),
    )
    run = run_build(load_catalog(catalog), "dc1")
    controller = {"namespaceSelector": {"matchLabels": {NAME_LABEL: "ingress-nginx"}}}
    admitted = {}
    for _, ns in load_catalog(catalog).namespaces():
        rules = [rule for rule in baseline(run, ns.name)["ingress"] if controller in rule["from"]]
        # One rule per namespace at most, never without ports (which would be every port).
        assert len(rules) <= 1 and all(rule.get("ports") for rule in rules), (ns.name, rules)
        admitted[ns.name] = [(p["protocol"], p["port"]) for rule in rules for p in rule["ports"]]
    assert admitted == {
        "cs-miniapp": [("TCP", 8080)],
        "cs-miniapp-staging": [("TCP", 8080)],
        "di-api": [("TCP", 8080), ("TCP", 8443), ("TCP", 9090)],
        "di-batch": [],  # declares no ingress: the controller reaches none of its pods
        "es-testbed": [],
        "pf-identity": [("TCP", 8443)],
        "pf-crypto": [],
        "pf-credit": [],
    }


# ------------------------------------------------------------------- rbac


def test_role_bindings_give_owners_the_unit_owner_role_and_viewers_view(run: ProgramRun) -> None:
    bindings = run.of_type(BINDING)
    assert len(bindings) == 16  # 8 namespaces × (owners, viewers)
    assert all(b.props["roleRef"]["name"] in ("resource-pool-unit-owner", "view") for b in bindings)
    assert not any('admin"' in json.dumps(b.props["roleRef"]) for b in bindings)  # neither admin nor cluster-admin
    in_credit = in_namespace(run, BINDING, "pf-credit")
    assert in_credit["pool-owners"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "resource-pool-unit-owner",
    }
    assert in_credit["pool-owners"]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "platform-admins"}
    ]
    assert [s["name"] for s in in_credit["pool-viewers-view"]["subjects"]] == ["finance-readers", "platform-oncall"]
    assert all(s["kind"] == "Group" for b in bindings for s in b.props["subjects"])


# ------------------------------------------------------------------- pool


def test_storage_class_per_tier(run: ProgramRun) -> None:
    classes = {r.props["metadata"]["name"]: r.props for r in run.of_type(STORAGE_CLASS)}
    assert sorted(classes) == ["pool-archive", "pool-cold", "pool-hot"]
    archive = classes["pool-archive"]
    assert archive["provisioner"] == "cephfs.csi.ceph.com"
    assert archive["parameters"] == {"clusterID": "ceph-dc1", "fsName": "archive"}
    assert archive["reclaimPolicy"] == "Retain"
    assert archive["volumeBindingMode"] == "Immediate"
    assert archive["allowVolumeExpansion"] is True
    assert archive["metadata"]["labels"]["pool.resource-pool.io/storage-tier"] == "archive"
    assert classes["pool-hot"]["volumeBindingMode"] == "WaitForFirstConsumer"


def test_every_server_is_labelled_and_dedicated_servers_tainted(run: ProgramRun) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    patches = {r.name: r.props for r in run.of_type(NODE_PATCH)}
    (cluster,) = catalog.pool.clusters
    servers = [(pool, node) for pool in cluster.node_pools for node in pool.nodes]
    assert len(servers) == 8
    for pool, node in servers:
        patch = patches[f"node-{node.name}"]
        assert patch["metadata"]["name"] == node.name
        assert patch["metadata"]["labels"] == {"pool.resource-pool.io/node-pool": pool.name, **pool.labels}
        # One patch and one field manager per Node (two would conflict over the patch annotations), not forced.
        assert patch["metadata"]["annotations"] == {
            "pulumi.com/patchFieldManager": "resource-pool-node",
            "pulumi.com/patchForce": "false",
        }
        if pool.name == "edge-lab":
            assert patch["spec"]["taints"] == [
                {"key": "pool.example.com/dedicated", "value": "edge-security", "effect": "NoSchedule"}
            ]
        else:
            assert "spec" not in patch  # an untainted pool claims no taints
    assert len(patches) == 8


def test_metallb_pools_for_units_with_addresses(run: ProgramRun) -> None:
    pools = {r.props["metadata"]["name"]: r.props for r in run.of_type(IP_POOL)}
    assert sorted(pools) == ["community-services", "data-insight", "platform"]  # edge-security has none
    data = pools["data-insight"]
    assert data["metadata"]["namespace"] == "metallb-system"
    assert data["spec"] == {
        "addresses": ["192.0.2.16/29"],
        "autoAssign": True,
        "serviceAllocation": {"namespaces": ["di-api", "di-batch"]},
    }
    adverts = {r.props["metadata"]["name"]: r.props["spec"] for r in run.of_type(L2)}
    assert adverts == {name: {"ipAddressPools": [name]} for name in pools}


def test_no_metallb_pools_where_the_pool_defines_no_ranges(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def drop_ranges(doc: Any) -> None:
        doc["clusters"][0]["network"].pop("load_balancer_ranges")

    edit_yaml(root / "pool.yaml", drop_ranges)
    for unit_file in (root / "business-units").glob("*.yaml"):

        def drop_addresses(doc: Any) -> None:
            doc.pop("load_balancer_addresses", None)
            for ns in doc["namespaces"]:
                ns["quota"].pop("load_balancers", None)

        edit_yaml(unit_file, drop_addresses)
    resources = run_program(load_catalog(root), "dc1")
    types = {r.type for r in resources}
    assert IP_POOL not in types and L2 not in types
    assert NAMESPACE in types


def test_address_pools_stay_inside_the_pool_ranges(run: ProgramRun) -> None:
    (pool_range,) = [ipaddress.ip_network("192.0.2.0/25")]
    for resource in run.of_type(IP_POOL):
        for text in resource.props["spec"]["addresses"]:
            assert ipaddress.ip_network(text).subnet_of(pool_range)


# --------------------------------------------------------------- mocks


def test_runs_repeat_with_identical_results() -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)

    def key(resources: list[RegisteredResource]) -> list[tuple[str, str, str]]:
        return sorted((r.type, r.name, json.dumps(r.props, sort_keys=True)) for r in resources)

    first, second = run_program(catalog, "dc1"), run_program(catalog, "dc1")
    assert key(first) == key(second)
    assert len(first) == 74
