"""The `services-stay-in-their-unit` rule: Services a unit could use to reach across units through the shared
ingress controller, or around its NetworkPolicies, added to the example program's stack (what `pool check`
and `pulumi preview --policy-pack` see when a unit's Services are declared in a stack).

The Service shapes follow the core/v1 API (ServiceSpec `type`, `externalName`, `externalIPs`, `ports[].nodePort`,
`allocateLoadBalancerNodePorts`: https://kubernetes.io/docs/reference/kubernetes-api/service-resources/service-v1/).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.check import check_resources, resolve_config
from infra.mocks import run_program
from policies import rules
from policies.rules import StackResource, external_name_namespace
from pool_catalog import Catalog, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml

RULE = "services-stay-in-their-unit"
CS_FILE = "business-units/community-services.yaml"


def service(namespace: str, name: str, **spec: Any) -> StackResource:
    props = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}], **spec},
    }
    return StackResource(rules.SERVICE, f"{namespace}-{name}", props)


def stack_of(catalog: Catalog) -> list[StackResource]:
    return [
        StackResource(type=r.type, name=r.name, props=r.props, parent_type=r.parent_type)
        for r in run_program(catalog, "dc1")
    ]


@pytest.fixture(scope="module")
def example() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def example_stack(example: Catalog) -> list[StackResource]:
    return stack_of(example)


def breaches(stack: list[StackResource], catalog: Catalog, *added: StackResource) -> list[tuple[str, str, str]]:
    """(rule's unit, resource, message) of every violation of the rule, as `pool check` reports them."""
    levels, values = resolve_config({})
    found = check_resources([*stack, *added], catalog, levels, values)
    assert {v.rule for v in found} <= {RULE}, [(v.rule, v.message) for v in found]
    return [(v.unit or "", v.resource or "", v.message) for v in found]


def test_the_example_stack_passes(example: Catalog, example_stack: list[StackResource]) -> None:
    assert breaches(example_stack, example) == []


# (service, words the message must contain: what is wrong, the namespace, how to allow it)
HOSTILE = [
    pytest.param(
        service("cs-miniapp", "scores", type="ExternalName", externalName="credit-scoring.pf-credit.svc.cluster.local"),
        ["ExternalName to credit-scoring.pf-credit.svc.cluster.local", "namespace pf-credit of unit 'platform'",
         "expose a capability and declare `consumes:` on namespace cs-miniapp in", CS_FILE],
        id="external-name-full",
    ),
    pytest.param(
        service("cs-miniapp", "scores", type="ExternalName", externalName="credit-scoring.pf-credit"),
        ["namespace pf-credit of unit 'platform'", "`consumes:`"],
        id="external-name-short",  # completed to ….svc.cluster.local by the resolver's search path
    ),
    pytest.param(
        service("cs-miniapp", "scores", type="ExternalName", externalName="pod-0.kms.pf-crypto.svc"),
        ["namespace pf-crypto of unit 'platform'"],
        id="external-name-pod-of-headless",
    ),
    pytest.param(
        service("cs-miniapp", "scores", type="ExternalName", externalName="10.96.12.7"),
        ["ExternalName to the address 10.96.12.7", "another unit's Service or pod", CS_FILE],
        id="external-name-ip",
    ),
    pytest.param(
        service("cs-miniapp", "grab", externalIPs=["192.0.2.200"]),
        ["externalIPs 192.0.2.200", "CVE-2020-8554", "load_balancer_addresses", "namespace cs-miniapp in", CS_FILE],
        id="external-ips",
    ),
    pytest.param(
        service("cs-miniapp", "debug", type="NodePort", ports=[{"port": 80, "nodePort": 30080, "targetPort": 8080}]),
        ["of type NodePort, which namespace cs-miniapp in", "set quota.node_ports", CS_FILE],
        id="node-port",
    ),
    pytest.param(
        service("cs-miniapp-staging", "public", type="LoadBalancer", allocateLoadBalancerNodePorts=False),
        ["of type LoadBalancer, which namespace cs-miniapp-staging in", "set quota.load_balancers", CS_FILE],
        id="load-balancer-not-granted",
    ),
    pytest.param(
        service("cs-miniapp", "public", type="LoadBalancer"),
        ["opens node ports", "allocateLoadBalancerNodePorts: false", "quota.node_ports on namespace cs-miniapp"],
        id="load-balancer-with-node-ports",
    ),
    pytest.param(
        service("cs-miniapp", "public", type="LoadBalancer", allocateLoadBalancerNodePorts=False,
                ports=[{"port": 443, "nodePort": 30443, "targetPort": 8443}]),
        ["opens node ports"],
        id="load-balancer-with-an-explicit-node-port",  # counted by the quota although allocation is off
    ),
]  # fmt: skip


@pytest.mark.parametrize(("hostile", "words"), HOSTILE)
def test_a_hostile_service_is_refused_with_the_namespace_and_the_fix(
    example: Catalog, example_stack: list[StackResource], hostile: StackResource, words: list[str]
) -> None:
    ((unit, resource, message),) = breaches(example_stack, example, hostile)
    assert unit == "community-services"
    assert resource == f"Service {hostile.props['metadata']['namespace']}/{hostile.props['metadata']['name']}"
    for word in words:
        assert word in message, (word, message)


def test_services_the_unit_may_have_pass(example: Catalog, example_stack: list[StackResource]) -> None:
    allowed = [
        service("cs-miniapp", "plain"),  # ClusterIP
        service("cs-miniapp", "staging", type="ExternalName", externalName="web.cs-miniapp-staging.svc.cluster.local"),
        service("cs-miniapp", "partner", type="ExternalName", externalName="api.partner.example.com"),
        # Granted two load balancers; MetalLB needs no node ports.
        service("cs-miniapp", "public", type="LoadBalancer", allocateLoadBalancerNodePorts=False),
        # Platform namespaces are the platform team's: the controller's own LoadBalancer is not a unit's.
        service("ingress-nginx", "ingress-nginx-controller", type="LoadBalancer", externalIPs=["192.0.2.1"]),
    ]
    assert breaches(example_stack, example, *allowed) == []


def test_node_ports_the_catalog_grants_are_allowed(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / CS_FILE, lambda doc: doc["namespaces"][0]["quota"].update({"node_ports": 2}))
    catalog = load_catalog(root)
    stack = stack_of(catalog)
    (hard,) = [
        r.props["spec"]["hard"]
        for r in stack
        if r.type == rules.RESOURCE_QUOTA and r.props["metadata"]["namespace"] == "cs-miniapp"
    ]
    assert hard["services.nodeports"] == "2"  # the API server's quota holds the count
    granted = [
        service("cs-miniapp", "debug", type="NodePort", ports=[{"port": 80, "nodePort": 30080, "targetPort": 8080}]),
        service("cs-miniapp", "public", type="LoadBalancer"),  # may now allocate node ports
    ]
    assert breaches(stack, catalog, *granted) == []
    # Still refused in the unit's other namespace, and across units whatever the quota.
    staging = service("cs-miniapp-staging", "debug", type="NodePort")
    across = service("cs-miniapp", "kms", type="ExternalName", externalName="kms.pf-crypto.svc.cluster.local")
    assert [r for _, r, _ in breaches(stack, catalog, staging, across)] == [
        "Service cs-miniapp-staging/debug",
        "Service cs-miniapp/kms",
    ]


def test_a_policy_admitting_the_ingress_controller_on_every_port_is_refused(
    example: Catalog, example_stack: list[StackResource]
) -> None:
    open_to_controller = StackResource(
        rules.NETWORK_POLICY,
        "di-batch-netpol-allow-ingress",
        {
            "metadata": {"name": "allow-ingress", "namespace": "di-batch"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "ingress-nginx"}}}]}],
            },
        },
    )  # fmt: skip
    ((unit, resource, message),) = breaches(example_stack, example, open_to_controller)
    assert (unit, resource) == ("data-insight", "NetworkPolicy di-batch/allow-ingress")
    assert "admits the ingress controller (ingress-nginx) on every port" in message
    assert "`ingress: {ports: [...]}` on namespace di-batch in" in message


@pytest.mark.parametrize(
    ("name", "namespace"),
    [
        ("credit-scoring.pf-credit.svc.cluster.local", "pf-credit"),
        ("credit-scoring.pf-credit.svc.cluster.local.", "pf-credit"),
        ("credit-scoring.pf-credit.svc", "pf-credit"),
        ("credit-scoring.pf-credit", "pf-credit"),
        ("10-0-3-7.pf-credit.pod.cluster.local", "pf-credit"),
        ("Web.CS-Miniapp.SVC.corp.internal", "cs-miniapp"),  # DNS is case-blind; another cluster domain
        ("api.partner.example.com", None),
        ("localhost", None),
    ],
)
def test_where_an_external_name_points(name: str, namespace: str | None) -> None:
    assert external_name_namespace(name) == namespace
