"""The policy pack: each rule on passing and failing resources, `pool check`, and the pack served over gRPC.

Capacity overcommit in the catalog itself is rejected by the loader (`pool check` then exits 2 with
the loader's numbers). The `node-pool-capacity` rule catches what the loader cannot: quotas declared
outside the catalog (hand-built ResourceQuotas added to the program's resources here) and a stricter
headroom set in the policy config (exit 1 from `pool check`).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc, plugin_pb2
from typer.testing import CliRunner

from infra.check import Violation, check_catalog, check_resources, resolve_config
from infra.cli import app
from infra.errors import PolicyConfigError
from infra.mocks import run_program
from policies import rules
from policies.rules import (
    BUSINESS_UNIT_LABEL,
    COST_CENTER_LABEL,
    NODE_SELECTOR_ANNOTATION,
    POD_SECURITY_ENFORCE_LABEL,
    StackResource,
    check_default_deny_egress,
    check_default_deny_ingress,
    check_namespace_labels,
    check_node_pool_capacity,
    check_pod_security,
    check_quota_and_limits,
    check_rbac_scope,
    check_storage_classes,
    check_unit_budget,
)
from pool_catalog import Catalog, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

POLICIES_DIR = Path(rules.__file__).resolve().parent
PRICED_AT = "2026-10-20T00:00:00+00:00"
"""After the 2026-10-15 rate version: cold storage 0.24 CNY per GiB-month."""

runner = CliRunner()


# ----------------------------------------------------------------------------- builders


def namespace(name: str, unit: str | None = "data-insight", pool: str | None = "general") -> StackResource:
    labels = {BUSINESS_UNIT_LABEL: unit, COST_CENTER_LABEL: "CC-4100", POD_SECURITY_ENFORCE_LABEL: "baseline"}
    labels = labels if unit else {}
    annotations = {NODE_SELECTOR_ANNOTATION: f"pool.resource-pool.io/node-pool={pool}"} if pool else {}
    props = {"metadata": {"name": name, "labels": labels, "annotations": annotations}}
    return StackResource(rules.NAMESPACE, name, props)


def quota(ns: str, hard: dict[str, str], unit: str | None = "data-insight") -> StackResource:
    labels = {BUSINESS_UNIT_LABEL: unit} if unit else {}
    props = {"metadata": {"name": "pool-quota", "namespace": ns, "labels": labels}, "spec": {"hard": hard}}
    return StackResource(rules.RESOURCE_QUOTA, f"{ns}-quota", props)


def limit_range(ns: str) -> StackResource:
    props = {"metadata": {"name": "pool-container-defaults", "namespace": ns}, "spec": {"limits": []}}
    return StackResource(rules.LIMIT_RANGE, f"{ns}-limits", props)


def storage_class(name: str, tier: str) -> StackResource:
    props = {"metadata": {"name": name, "labels": {rules.STORAGE_TIER_LABEL: tier}}}
    return StackResource(rules.STORAGE_CLASS, f"storageclass-{name}", props)


def network_policy(ns: str, spec: dict[str, Any]) -> StackResource:
    return StackResource(
        rules.NETWORK_POLICY, f"{ns}-netpol", {"metadata": {"name": "p", "namespace": ns}, "spec": spec}
    )


DEFAULT_DENY = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [{"from": []}]}


def full_hard(**overrides: str) -> dict[str, str]:
    hard = {
        "requests.cpu": "8",
        "limits.cpu": "16",
        "requests.memory": "32Gi",
        "limits.memory": "32Gi",
        "requests.storage": "100Gi",
        "pool-hot.storageclass.storage.k8s.io/requests.storage": "100Gi",
        "pool-cold.storageclass.storage.k8s.io/requests.storage": "0",
    }
    hard.update(overrides)
    return hard


def guarded_namespace(name: str) -> list[StackResource]:
    """A unit namespace with everything the stack rules ask for, on two declared tiers."""
    return [namespace(name), quota(name, full_hard()), limit_range(name), network_policy(name, DEFAULT_DENY)]


TIERS = [storage_class("pool-hot", "hot"), storage_class("pool-cold", "cold")]


def settings(rule_name: str, **given: Any) -> dict[str, Any]:
    rule = next(r for r in rules.RULES if r.name == rule_name)
    return rule.settings(given)


@pytest.fixture(scope="module")
def example() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def example_resources(example: Catalog) -> list[StackResource]:
    return [
        StackResource(type=r.type, name=r.name, props=r.props, parent_type=r.parent_type)
        for r in run_program(example, "dc1")
    ]


def run_rules(
    resources: list[StackResource], catalog: Catalog, config: dict[str, Any] | None = None
) -> list[Violation]:
    levels, values = resolve_config(config or {})
    return check_resources(resources, catalog, levels, values)


# ----------------------------------------------------------------------------- resource rules


def test_namespace_labels_pass_with_both_labels() -> None:
    ns = namespace("di-api")
    assert list(check_namespace_labels(ns.type, ns.props, settings("namespace-labels"))) == []


def test_namespace_labels_fail_without_cost_center_or_any_label() -> None:
    ns = namespace("di-api")
    ns.props["metadata"]["labels"][COST_CENTER_LABEL] = " "
    (message,) = check_namespace_labels(ns.type, ns.props, settings("namespace-labels"))
    assert message.startswith(f"Namespace di-api has no {COST_CENTER_LABEL} label")
    bare = namespace("scratch", unit=None)
    (message,) = check_namespace_labels(bare.type, bare.props, settings("namespace-labels"))
    assert f"no {BUSINESS_UNIT_LABEL} or {COST_CENTER_LABEL} label" in message


def test_namespace_labels_exempt_namespaces_and_other_kinds() -> None:
    bare = namespace("ingress-nginx", unit=None)
    given = settings("namespace-labels", exempt_namespaces=["ingress-nginx"])
    assert list(check_namespace_labels(bare.type, bare.props, given)) == []
    q = quota("x", {}, unit=None)
    assert list(check_namespace_labels(q.type, q.props, settings("namespace-labels"))) == []


def binding(kind: str, role: str, subjects: list[dict[str, str]]) -> tuple[str, dict[str, Any]]:
    token = rules.ROLE_BINDING if kind == "RoleBinding" else rules.CLUSTER_ROLE_BINDING
    meta = {"name": "b", "namespace": "di-api"} if kind == "RoleBinding" else {"name": "b"}
    props = {"kind": kind, "metadata": meta, "roleRef": {"kind": "ClusterRole", "name": role}, "subjects": subjects}
    return token, props


def test_rbac_unit_owner_role_in_a_namespace_passes() -> None:
    token, props = binding("RoleBinding", "resource-pool-unit-owner", [{"kind": "Group", "name": "di-admins"}])
    assert list(check_rbac_scope(token, props, settings("rbac-namespace-scoped"))) == []
    token, props = binding("RoleBinding", "view", [{"kind": "Group", "name": "di-readers"}])
    assert list(check_rbac_scope(token, props, settings("rbac-namespace-scoped"))) == []


@pytest.mark.parametrize("role", ["admin", "edit"])
def test_rbac_builtin_admin_or_edit_in_a_namespace_fails(role: str) -> None:
    token, props = binding("RoleBinding", role, [{"kind": "Group", "name": "data-insight-admins"}])
    (message,) = check_rbac_scope(token, props, settings("rbac-namespace-scoped"))
    assert message.startswith(f"RoleBinding di-api/b grants {role} to Group data-insight-admins")
    assert "can change or delete the namespace's NetworkPolicies" in message


def test_pod_security_requires_baseline_or_restricted_on_unit_namespaces() -> None:
    given = settings("pod-security-enforced")
    assert list(check_pod_security(rules.NAMESPACE, namespace("di-api").props, given)) == []
    bare = namespace("di-api")
    del bare.props["metadata"]["labels"][POD_SECURITY_ENFORCE_LABEL]
    (message,) = check_pod_security(rules.NAMESPACE, bare.props, given)
    assert message.startswith("Namespace di-api enforces Pod Security level none")
    bare.props["metadata"]["labels"][POD_SECURITY_ENFORCE_LABEL] = "privileged"
    assert len(list(check_pod_security(rules.NAMESPACE, bare.props, given))) == 1
    platform = namespace("ingress-nginx", unit=None)  # not a unit namespace: the platform team decides
    assert list(check_pod_security(rules.NAMESPACE, platform.props, given)) == []


def test_rbac_cluster_admin_in_a_namespace_fails() -> None:
    token, props = binding("RoleBinding", "cluster-admin", [{"kind": "Group", "name": "data-insight-admins"}])
    (message,) = check_rbac_scope(token, props, settings("rbac-namespace-scoped"))
    assert message.startswith("RoleBinding di-api/b grants cluster-admin to Group data-insight-admins")


def test_rbac_cluster_role_binding_to_unit_group_fails_unless_platform_group() -> None:
    token, props = binding("ClusterRoleBinding", "view", [{"kind": "Group", "name": "data-insight-devs"}])
    (message,) = check_rbac_scope(token, props, settings("rbac-namespace-scoped"))
    assert message.startswith("ClusterRoleBinding b gives Group data-insight-devs the role view in every namespace")
    allowed = settings("rbac-namespace-scoped", platform_groups=["data-insight-devs"])
    assert list(check_rbac_scope(token, props, allowed)) == []
    token, props = binding("ClusterRoleBinding", "view", [{"kind": "ServiceAccount", "name": "metrics"}])
    assert list(check_rbac_scope(token, props, settings("rbac-namespace-scoped"))) == []


# ----------------------------------------------------------------------------- stack rules


def test_quota_and_limits_pass_when_complete() -> None:
    resources = [*TIERS, *guarded_namespace("di-api")]
    assert list(check_quota_and_limits(resources, settings("quota-and-limits"))) == []


def test_quota_and_limits_fail_without_tier_key_limit_range_or_quota() -> None:
    hard = full_hard()
    del hard["pool-cold.storageclass.storage.k8s.io/requests.storage"]
    resources = [*TIERS, namespace("di-api"), quota("di-api", hard), namespace("di-batch"), limit_range("di-batch")]
    breaches = list(check_quota_and_limits(resources, settings("quota-and-limits")))
    assert [(b.unit, b.resource.name if b.resource else None, b.message) for b in breaches] == [
        (
            "data-insight",
            "di-api",
            "namespace di-api: its ResourceQuota does not bound pool-cold.storageclass.storage.k8s.io/requests.storage"
            "; set each (0 for a tier the unit was not granted)",
        ),
        (
            "data-insight",
            "di-api",
            "namespace di-api has no LimitRange: containers without requests escape the quota's accounting",
        ),
        ("data-insight", "di-batch", "namespace di-batch has no ResourceQuota: nothing bounds what it allocates"),
    ]


def test_default_deny_ingress_passes_with_all_pod_ingress_policy() -> None:
    resources = guarded_namespace("di-api")
    assert list(check_default_deny_ingress(resources, {})) == []


@pytest.mark.parametrize(
    "spec",
    [
        {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
        {"podSelector": {}, "policyTypes": ["Egress"]},
    ],
    ids=["selects-some-pods", "egress-only"],
)
def test_default_deny_ingress_fails_without_one(spec: dict[str, Any]) -> None:
    resources = [namespace("di-api"), network_policy("di-api", spec)]
    (breach,) = check_default_deny_ingress(resources, {})
    assert breach.unit == "data-insight"
    assert breach.message.startswith("namespace di-api has no default-deny ingress NetworkPolicy")


def test_default_deny_egress_passes_with_listed_networks_only() -> None:
    spec = {**DEFAULT_DENY, "egress": [{"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}]}]}
    resources = [namespace("di-api"), network_policy("di-api", spec)]
    assert list(check_default_deny_egress(resources, {})) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"podSelector": {}, "policyTypes": ["Ingress"]}, "namespace di-api has no default-deny egress NetworkPolicy"),
        (
            {**DEFAULT_DENY, "egress": [{"to": [{"ipBlock": {"cidr": "::/0"}}]}]},
            "NetworkPolicy di-api/p: egress[0] allows ::/0",
        ),
        ({**DEFAULT_DENY, "egress": [{"ports": [{"port": 443}]}]}, "NetworkPolicy di-api/p: egress[0] has no `to`"),
    ],
    ids=["ingress-only", "everywhere", "no-peers"],
)
def test_default_deny_egress_fails_open_or_missing(spec: dict[str, Any], expected: str) -> None:
    resources = [namespace("di-api"), network_policy("di-api", spec)]
    (breach,) = check_default_deny_egress(resources, {})
    assert breach.unit == "data-insight"
    assert breach.message.startswith(expected)


def test_storage_classes_pass_for_declared_tiers() -> None:
    resources = [*TIERS, *guarded_namespace("di-api")]
    assert list(check_storage_classes(resources, {})) == []


def test_storage_classes_fail_for_a_class_that_is_no_tier() -> None:
    hard = full_hard(**{"local-nvme.storageclass.storage.k8s.io/requests.storage": "1Ti"})
    resources = [*TIERS, namespace("di-api"), quota("di-api", hard)]
    (breach,) = check_storage_classes(resources, {})
    assert breach.message == (
        "ResourceQuota di-api/pool-quota bounds storage class local-nvme, which is not a storage tier of the pool "
        "(tier classes: pool-cold, pool-hot); add the tier to pool.yaml or fix the name"
    )


def test_node_pool_capacity_passes_on_the_example(example: Catalog, example_resources: list[StackResource]) -> None:
    assert list(check_node_pool_capacity(example_resources, settings("node-pool-capacity"), example)) == []


def test_node_pool_capacity_counts_quotas_declared_outside_the_catalog(
    example: Catalog, example_resources: list[StackResource]
) -> None:
    # edge-lab: 2 servers × 32 cores × overcommit 2.0 = 128 cores; es-testbed already holds 48.
    extra = [
        namespace("lab-extra", pool="edge-lab"),
        quota("lab-extra", {"requests.cpu": "100", "requests.memory": "0"}),
    ]
    (breach,) = check_node_pool_capacity([*example_resources, *extra], settings("node-pool-capacity"), example)
    assert breach.unit is None and breach.resource is None
    assert breach.message == (
        "node pool 'edge-lab': cpu quotas total 148 cores, above capacity 64 cores × overcommit 2.0 = 128 cores "
        "by 20 cores; add servers or shrink quotas of: es-testbed, lab-extra"
    )


def test_node_pool_capacity_flags_unpinned_and_unknown_pools_and_full_tiers(
    example: Catalog, example_resources: list[StackResource]
) -> None:
    extra = [
        namespace("loose", pool=None),
        quota("loose", {"requests.cpu": "1"}, unit=None),
        namespace("elsewhere", pool="gpu-xl"),
        quota("elsewhere", {"requests.cpu": "1"}),
        namespace("hoarder", pool="general"),
        quota("hoarder", {"pool-hot.storageclass.storage.k8s.io/requests.storage": "40Ti"}),
    ]
    messages = [b.message for b in check_node_pool_capacity([*example_resources, *extra], {}, example)]
    assert messages[0].startswith(
        "ResourceQuota loose/pool-quota grants quota in a namespace not pinned to a node pool"
    )
    assert messages[1] == (
        "namespace elsewhere is pinned to node pool 'gpu-xl', which cluster 'dc1' does not have "
        "(pools: general, batch, edge-lab)"
    )
    # hot: 40Ti capacity; the example holds 1,024 + 200 + 500 + 1,024 + 200 + 200 + 100 + 300 = 3,548Gi.
    assert messages[2].startswith(
        "storage tier 'hot': storage quotas total 44,508 GiB, above capacity 40 TiB by 3,548 GiB; add capacity"
    )
    assert len(messages) == 3


def test_unit_budget_passes_within_budget(example: Catalog, example_resources: list[StackResource]) -> None:
    given = settings("unit-budget", priced_at=PRICED_AT)
    assert list(check_unit_budget(example_resources, given, example)) == []


def test_unit_budget_warns_above_budget_through_the_program(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "business-units" / "data-insight.yaml", lambda d: d["budget"].__setitem__("monthly", 50000))
    violations = check_catalog(load_catalog(root), "dc1", {"unit-budget": {"priced_at": PRICED_AT}})
    # di-api: 24×730×0.24 + 96×730×0.032 + 500×0.90 + 1×730×0.30 = 7,116.36
    # di-batch: 96×730×0.24 + 512×730×0.032 + 2×730×11.50 + 1,024×0.90 + 20,480×0.24 = 51,406.32
    assert violations == [
        Violation(
            rule="unit-budget",
            enforcement="advisory",
            unit="data-insight",
            resource="stack",
            message="unit 'data-insight': full-quota monthly cost 58,522.68 CNY (prices effective 2026-10-15) is "
            "above its budget 50,000.00 CNY by 8,522.68 CNY; raise the budget or shrink quotas",
        )
    ]


# ----------------------------------------------------------------------------- through the program


def test_example_catalog_passes_every_rule(example: Catalog) -> None:
    assert check_catalog(example, config={"unit-budget": {"priced_at": PRICED_AT}}) == []


def test_resources_dropped_or_added_beside_the_program_are_caught(
    example: Catalog, example_resources: list[StackResource]
) -> None:
    kept = [r for r in example_resources if not (r.type == rules.LIMIT_RANGE and r.name == "di-api-limits")]
    kept = [r for r in kept if not (r.type == rules.NETWORK_POLICY and r.name == "di-batch-netpol-pool-baseline")]
    token, props = binding("ClusterRoleBinding", "edit", [{"kind": "Group", "name": "data-insight-admins"}])
    unlabelled = namespace("scratch", unit=None)
    kept += [StackResource(token, "di-edit-everywhere", props), unlabelled]
    found = {(v.rule, v.enforcement, v.unit, v.resource) for v in run_rules(kept, example)}
    assert found == {
        ("quota-and-limits", "mandatory", "data-insight", "Namespace di-api"),
        ("default-deny-ingress", "mandatory", "data-insight", "Namespace di-batch"),
        ("default-deny-egress", "mandatory", "data-insight", "Namespace di-batch"),
        ("rbac-namespace-scoped", "mandatory", None, "ClusterRoleBinding b"),
        ("namespace-labels", "mandatory", None, "Namespace scratch"),
    }


def test_policy_config_levels_and_bad_values(example: Catalog, example_resources: list[StackResource]) -> None:
    unlabelled = namespace("scratch", unit=None)
    resources = [*example_resources, unlabelled]
    (violation,) = run_rules(resources, example, {"namespace-labels": "advisory"})
    assert violation.enforcement == "advisory"
    assert run_rules(resources, example, {"namespace-labels": {"enforcementLevel": "disabled"}}) == []
    assert run_rules(resources, example, {"all": "disabled"}) == []
    with pytest.raises(PolicyConfigError, match="unknown rule"):
        resolve_config({"no-such-rule": "advisory"})
    with pytest.raises(PolicyConfigError, match=r"headroom_percent: 150 is greater than the maximum of 100"):
        resolve_config({"node-pool-capacity": {"headroom_percent": 150}})
    with pytest.raises(PolicyConfigError, match="enforcement level 'strict'"):
        resolve_config({"unit-budget": "strict"})


# ----------------------------------------------------------------------------- pool check


def test_pool_check_passes_on_the_example_catalog() -> None:
    result = runner.invoke(app, ["check", "--catalog", str(EXAMPLE_CATALOG)])
    assert result.exit_code == 0, result.output
    assert "policy check passed: 0 mandatory and 0 advisory violations" in result.output


def test_pool_check_fails_with_the_numbers_when_headroom_is_not_kept(tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text(json.dumps({"node-pool-capacity": {"headroom_percent": 50}}), encoding="utf-8")
    result = runner.invoke(
        app, ["check", "--catalog", str(EXAMPLE_CATALOG), "--policy-config", str(config)], env={"COLUMNS": "300"}
    )
    assert result.exit_code == 1, result.output
    # edge-lab: 2 × 128Gi × overcommit 1.0 = 256Gi, half kept free = 128Gi; es-testbed holds 192Gi.
    assert (
        "node pool 'edge-lab': memory quotas total 192 GiB, above capacity 256 GiB × overcommit 1.0 less 50% headroom "
        "= 128 GiB by 64 GiB" in result.output
    )
    assert "cluster-wide" in result.output and "node-pool-capacity" in result.output
    assert "policy check failed: 1 mandatory and 0 advisory violations" in result.output


def test_pool_check_rejects_an_overcommitted_catalog_with_exit_2(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(
        root / "business-units" / "edge-security.yaml",
        lambda d: d["namespaces"][0]["quota"].__setitem__("memory", "300Gi"),
    )
    result = runner.invoke(app, ["check", "--catalog", str(root)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert (
        "node pool 'edge-lab': memory quotas total 300 GiB, above capacity 256 GiB × overcommit 1.0 = 256 GiB "
        "by 44 GiB" in result.output
    )


def test_pool_check_prints_advisory_budget_and_exits_0(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "business-units" / "edge-security.yaml", lambda d: d["budget"].__setitem__("monthly", 100))
    result = runner.invoke(app, ["check", "--catalog", str(root)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "edge-security" in result.output and "unit-budget" in result.output
    assert "advisory" in result.output and "above its budget 100.00 CNY" in result.output
    assert "policy check passed: 0 mandatory and 1 advisory violations" in result.output


def test_pool_check_bad_policy_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "policy-config.json"
    config.write_text('{"node-pool-capacity": {"headroom": 10}}', encoding="utf-8")
    result = runner.invoke(app, ["check", "--catalog", str(EXAMPLE_CATALOG), "--policy-config", str(config)])
    assert result.exit_code == 2
    assert "'headroom' was unexpected" in result.output
    config.write_text("[1, 2]", encoding="utf-8")
    result = runner.invoke(app, ["check", "--catalog", str(EXAMPLE_CATALOG), "--policy-config", str(config)])
    assert result.exit_code == 2
    assert "expected a JSON object" in result.output


# ----------------------------------------------------------------------------- the pack itself


def test_rules_module_never_imports_the_pack_entry_point() -> None:
    tree = ast.parse(Path(rules.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not any(name and name.endswith("__main__") for name in imported)
    probe = (
        "import sys, grpc\n"
        "grpc.server = lambda *a, **k: sys.exit('a gRPC server was started')\n"
        "import policies.rules, infra.check\n"
        "assert 'policies.__main__' not in sys.modules\n"
        "print(len(policies.rules.policies()))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"


def test_pack_main_only_builds_the_pack() -> None:
    tree = ast.parse((POLICIES_DIR / "__main__.py").read_text(encoding="utf-8"))
    calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert [ast.unparse(c.value.func) for c in calls] == ["PolicyPack"]
    assert not [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]


@pytest.fixture(scope="module")
def pack() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    """The pack as `pulumi preview --policy-pack policies` starts it: a process printing its loopback port."""
    process = subprocess.Popen(
        [sys.executable, "-u", str(POLICIES_DIR)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        port = int(process.stdout.readline())  # type: ignore[union-attr]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        process.terminate()
        process.wait(timeout=30)


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(json.loads(json.dumps(value)))
    return message


def test_pack_lists_each_rule_with_its_level(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = pack.GetAnalyzerInfo(empty_pb2.Empty())
    levels = {p.name: analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel) for p in info.policies}
    assert levels == {
        "namespace-labels": "MANDATORY",
        "quota-and-limits": "MANDATORY",
        "default-deny-ingress": "MANDATORY",
        "default-deny-egress": "MANDATORY",
        "pod-security-enforced": "MANDATORY",
        "storage-classes-are-tiers": "MANDATORY",
        "rbac-namespace-scoped": "MANDATORY",
        "services-stay-in-their-unit": "MANDATORY",
        "node-pool-capacity": "MANDATORY",
        "unit-budget": "ADVISORY",
    }
    schema = next(p for p in info.policies if p.name == "node-pool-capacity").configSchema
    assert schema.properties["headroom_percent"]["default"] == 0
    assert isinstance(pack.GetPluginInfo(empty_pb2.Empty()), plugin_pb2.PluginInfo)


def test_pack_reports_an_unlabelled_namespace(pack: analyzer_pb2_grpc.AnalyzerStub) -> None:
    request = analyzer_pb2.AnalyzeRequest(
        type=rules.NAMESPACE,
        name="scratch",
        urn="urn:pulumi:dev::resource-pool::kubernetes:core/v1:Namespace::scratch",
        properties=struct({"metadata": {"name": "scratch"}}),
    )
    (diagnostic,) = pack.Analyze(request).diagnostics
    assert diagnostic.policyName == "namespace-labels"
    assert analyzer_pb2.EnforcementLevel.Name(diagnostic.enforcementLevel) == "MANDATORY"
    # The engine shows the rule's description, then the message.
    description, message = diagnostic.message.split("\n", 1)
    assert description == diagnostic.description
    assert message.startswith(f"Namespace scratch has no {BUSINESS_UNIT_LABEL} or {COST_CENTER_LABEL}")


def test_pack_checks_the_stack_with_config_and_the_catalog(
    pack: analyzer_pb2_grpc.AnalyzerStub, example_resources: list[StackResource]
) -> None:
    stack = "urn:pulumi:dc1::resource-pool::"
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=r.type, name=r.name, urn=f"{stack}{r.type}::{r.name}", properties=struct(dict(r.props))
        )
        for r in example_resources
    ]
    config = {
        "node-pool-capacity": analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.EnforcementLevel.Value("MANDATORY"),
            properties=struct({"catalog": str(EXAMPLE_CATALOG), "headroom_percent": 50}),
        )
    }
    pack.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config))
    diagnostics = pack.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources)).diagnostics
    assert [(d.policyName, d.message.split("\n", 1)[1]) for d in diagnostics] == [
        (
            "node-pool-capacity",
            "node pool 'edge-lab': memory quotas total 192 GiB, above capacity 256 GiB × overcommit 1.0 less 50% "
            "headroom = 128 GiB by 64 GiB; add servers or shrink quotas of: es-testbed",
        )
    ]


def test_pack_reports_a_catalog_it_cannot_read(tmp_path: Path) -> None:
    from pulumi_policy import StackValidationArgs

    reported: list[tuple[str, str | None]] = []
    policy = next(r for r in rules.RULES if r.name == "unit-budget").policy()
    policy.validate(
        StackValidationArgs([], {"catalog": str(tmp_path / "missing")}), lambda m, u=None: reported.append((m, u))
    )
    ((message, urn),) = reported
    assert urn is None
    assert message.startswith("cannot read the catalog named by config unit-budget.catalog:")
    assert f"{tmp_path / 'missing'}: is not a directory" in message


def test_pool_check_unknown_cluster_exits_2() -> None:
    args = ["check", "--catalog", str(EXAMPLE_CATALOG), "--cluster", "dc9"]
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "cluster 'dc9' is not in" in result.output


def test_pack_refuses_an_external_name_into_another_unit(
    pack: analyzer_pb2_grpc.AnalyzerStub, example_resources: list[StackResource]
) -> None:
    """`pulumi preview --policy-pack` on a stack with a unit's Service pointing the ingress controller at another
    unit (Service shape: core/v1 ServiceSpec, https://kubernetes.io/docs/reference/kubernetes-api/service-resources/
    service-v1/)."""
    stack = "urn:pulumi:dc1::resource-pool::"
    hostile = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "scores", "namespace": "di-api"},
        "spec": {"type": "ExternalName", "externalName": "credit-scoring.cs-miniapp.svc.cluster.local"},
    }
    resources = [
        analyzer_pb2.AnalyzerResource(
            type=r.type, name=r.name, urn=f"{stack}{r.type}::{r.name}", properties=struct(dict(r.props))
        )
        for r in [*example_resources, StackResource(rules.SERVICE, "di-api-scores", hostile)]
    ]
    catalog = struct({"catalog": str(EXAMPLE_CATALOG)})
    level = analyzer_pb2.EnforcementLevel.Value("MANDATORY")
    config = {
        name: analyzer_pb2.PolicyConfig(enforcementLevel=level, properties=catalog)
        for name in ("services-stay-in-their-unit", "node-pool-capacity")
    }
    pack.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig=config))
    diagnostics = pack.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources)).diagnostics
    (diagnostic,) = [d for d in diagnostics if d.policyName == "services-stay-in-their-unit"]
    assert diagnostic.urn == f"{stack}{rules.SERVICE}::di-api-scores"
    assert "Service di-api/scores is an ExternalName to credit-scoring.cs-miniapp.svc.cluster.local, in namespace " \
        "cs-miniapp of unit 'community-services'" in diagnostic.message  # fmt: skip
    assert "declare `consumes:` on namespace di-api in" in diagnostic.message
