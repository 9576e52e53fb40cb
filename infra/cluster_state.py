"""What the program needs to know about the live cluster before it plans anything.

Two facts decide whether the plan can be applied at all: which Node objects exist (a node patch
for a server that never joined would, under server-side apply, create a phantom Node), and whether
MetalLB is installed (its IPAddressPool/L2Advertisement kinds are CRDs: without them the API
server answers 404 half-way through `pulumi up`). `pulumi up`/`preview` read them from the cluster
the kubernetes provider talks to; `pool render/validate/check` run under mocks and assume the
cluster the catalog describes (`ClusterFacts.assumed`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pool_catalog.conventions import METALLB_CRDS, METALLB_NAMESPACE
from pool_catalog.models import Cluster

from .errors import ProgramError


@dataclass(frozen=True)
class ClusterFacts:
    """Node names, CustomResourceDefinition names and namespace names found in the cluster."""

    nodes: frozenset[str]
    crds: frozenset[str]
    namespaces: frozenset[str]
    source: str
    """Where the facts come from, for messages (a kubeconfig context, or "the catalog")."""

    @classmethod
    def assumed(cls, cluster: Cluster) -> ClusterFacts:
        """The cluster as the catalog describes it: every server joined, MetalLB installed."""
        return cls(
            nodes=frozenset(node.name for pool in cluster.node_pools for node in pool.nodes),
            crds=frozenset(METALLB_CRDS),
            namespaces=frozenset({METALLB_NAMESPACE}),
            source="the catalog (no cluster is read under mocks)",
        )

    def missing_metallb(self) -> list[str]:
        """What of MetalLB is absent: its CRDs by name, then its namespace."""
        missing = [f"CustomResourceDefinition {crd}" for crd in METALLB_CRDS if crd not in self.crds]
        if METALLB_NAMESPACE not in self.namespaces:
            missing.append(f"namespace {METALLB_NAMESPACE}")
        return missing


FACTS_READER: ContextVar[Callable[[Cluster], ClusterFacts] | None] = ContextVar("facts_reader", default=None)
"""Set by `infra.mocks.run_pulumi`: under mocks the program's lookups are answered, never sent to a cluster."""


def read_cluster(kubeconfig: str | None = None, context: str | None = None) -> ClusterFacts:
    """Read the facts from the API server the kubernetes provider uses.

    `kubeconfig` is the provider's `kubernetes:kubeconfig` setting (a path or the file's content);
    without it, $KUBECONFIG or ~/.kube/config, as the provider does. Only three reads: the Node
    list, the two MetalLB CRDs and the MetalLB namespace.
    """
    from kubernetes import client
    from kubernetes import config as kube_config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    where = _describe(kubeconfig, context)
    try:
        api = _api_client(kubeconfig, context, kube_config)
    except (ConfigException, OSError, ValueError) as e:
        raise ProgramError(
            f"cannot load the kubeconfig ({where}): {e}; set KUBECONFIG or `pulumi config set kubernetes:kubeconfig`"
        ) from None
    try:
        core = client.CoreV1Api(api)
        nodes = frozenset(item.metadata.name for item in core.list_node(_request_timeout=30).items)
        extensions = client.ApiextensionsV1Api(api)
        crds = frozenset(_existing(lambda name: extensions.read_custom_resource_definition(name), METALLB_CRDS))
        namespaces = frozenset(_existing(lambda name: core.read_namespace(name), [METALLB_NAMESPACE]))
    except ApiException as e:
        raise ProgramError(
            f"the cluster ({where}) refused a read the program needs ({e.status} {e.reason}): the identity "
            "running `pulumi up` must be able to list nodes and get customresourcedefinitions and namespaces"
        ) from None
    except Exception as e:  # urllib3 connection errors have no common public base class
        raise ProgramError(f"cannot reach the cluster ({where}): {e}") from None
    finally:
        api.close()
    return ClusterFacts(nodes=nodes, crds=crds, namespaces=namespaces, source=where)


def _existing(read: Any, names: list[str] | tuple[str, ...]) -> list[str]:
    from kubernetes.client.exceptions import ApiException

    found = []
    for name in names:
        try:
            read(name)
        except ApiException as e:
            if e.status == 404:
                continue
            raise
        found.append(name)
    return found


def _api_client(kubeconfig: str | None, context: str | None, kube_config: Any) -> Any:
    if kubeconfig and not Path(kubeconfig).is_file() and ("apiVersion" in kubeconfig or "clusters" in kubeconfig):
        import yaml

        return kube_config.new_client_from_config_dict(yaml.safe_load(kubeconfig), context=context)
    return kube_config.new_client_from_config(config_file=kubeconfig or None, context=context)


def _describe(kubeconfig: str | None, context: str | None) -> str:
    if kubeconfig and Path(kubeconfig).is_file():
        file = kubeconfig
    elif kubeconfig:
        file = "kubernetes:kubeconfig from the stack config"
    else:
        file = os.environ.get("KUBECONFIG") or "~/.kube/config"
    return f"{file}, context {context}" if context else file
