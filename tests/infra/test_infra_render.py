"""`pool render` / `pool validate`: every manifest validated strictly, stable files, atomic writes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from infra.cli import app
from infra.errors import ManifestValidationError, RenderError
from infra.render import (
    RENDER_MARKER,
    Manifest,
    RenderResult,
    manifests_from,
    render_cluster,
    validate_manifests,
    write_cluster,
)
from pool_catalog import load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml


@pytest.fixture(scope="module")
def rendered() -> RenderResult:
    return render_cluster(load_catalog(EXAMPLE_CATALOG), "dc1")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def with_body(manifest: Manifest, change: Any) -> Manifest:
    body = copy.deepcopy(manifest.body)
    change(body)
    return Manifest(path=manifest.path, body=body, source=manifest.source, comment=manifest.comment)


def test_every_kubernetes_resource_becomes_one_validated_manifest(rendered: RenderResult) -> None:
    kubernetes = [r for r in rendered.resources if r.type.startswith("kubernetes:")]
    assert len(rendered.manifests) == len(kubernetes) == 69
    kinds = sorted({m.kind for m in rendered.manifests})
    assert kinds == [
        "ClusterRole",
        "IPAddressPool",
        "L2Advertisement",
        "LimitRange",
        "Namespace",
        "NetworkPolicy",
        "Node",
        "ResourceQuota",
        "RoleBinding",
        "StorageClass",
    ]
    validate_manifests(rendered.manifests, "1.31")  # raises on any problem


def test_layout_groups_objects_by_namespace_in_apply_order(rendered: RenderResult) -> None:
    paths = [m.path for m in rendered.manifests]
    assert paths == sorted(paths)
    in_testbed = [p for p in paths if p.startswith("namespaces/es-testbed/")]
    assert in_testbed[:3] == [
        "namespaces/es-testbed/00-namespace-es-testbed.yaml",
        "namespaces/es-testbed/10-resourcequota-pool-quota.yaml",
        "namespaces/es-testbed/20-limitrange-pool-container-defaults.yaml",
    ]
    assert "namespaces/metallb-system/50-ipaddresspool-platform.yaml" in paths
    assert "cluster-scoped/00-storageclass-pool-hot.yaml" in paths
    assert "cluster-scoped/10-node-srv-edge-01.resource-pool-node.patch.yaml" in paths


def test_patches_render_as_the_patch_they_apply(rendered: RenderResult) -> None:
    (edge,) = [m for m in rendered.manifests if m.path.endswith("srv-edge-01.resource-pool-node.patch.yaml")]
    text = edge.text()
    assert text.startswith("# Server-side apply patch of the existing Node 'srv-edge-01'")
    assert "--field-manager=resource-pool-node -f" in text
    assert "--force-conflicts" not in text
    body = yaml.safe_load(text)
    assert body == {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {  # pulumi.com/* directives never reach the node
            "name": "srv-edge-01",
            "labels": {"pool.resource-pool.io/node-pool": "edge-lab", **body["metadata"]["labels"]},
        },
        "spec": {"taints": [{"effect": "NoSchedule", "key": "pool.example.com/dedicated", "value": "edge-security"}]},
    }
    (general,) = [m for m in rendered.manifests if m.path.endswith("srv-gen-01.resource-pool-node.patch.yaml")]
    assert "--force-conflicts" not in general.text()
    assert "spec" not in yaml.safe_load(general.text())


def test_numbers_come_back_as_integers(rendered: RenderResult) -> None:
    wanted = "pf-identity/30-networkpolicy-allow-capability-identity.yaml"
    (policy,) = [m for m in rendered.manifests if m.path.endswith(wanted)]
    assert "port: 8443\n" in policy.text()


def test_invalid_manifests_are_reported_with_file_and_field(rendered: RenderResult) -> None:
    by_kind = {m.kind: m for m in rendered.manifests}
    broken = [
        with_body(by_kind["ResourceQuota"], lambda b: b["spec"].update(hardd={})),
        with_body(by_kind["NetworkPolicy"], lambda b: b["spec"].update(podSelector="everything")),
        with_body(by_kind["IPAddressPool"], lambda b: b["spec"].update(autoAssign="yes")),
        with_body(by_kind["L2Advertisement"], lambda b: b["spec"].update(interface="eth0")),
        with_body(by_kind["Namespace"], lambda b: b.update(kind="Tenant")),
    ]
    with pytest.raises(ManifestValidationError) as caught:
        validate_manifests([*broken, by_kind["RoleBinding"]], "1.31")
    problems = caught.value.problems
    assert len(problems) == 5
    assert "10-resourcequota-pool-quota.yaml" in problems[0] and "'hardd' was unexpected" in problems[0]
    assert "spec.podSelector" in problems[1]
    assert "spec.autoAssign: 'yes' is not of type 'boolean'" in problems[2]
    assert "'interface' was unexpected" in problems[3]
    assert "Couldn't find schema for kind Tenant" in problems[4]


def test_render_is_byte_identical_and_replaces_stale_files(tmp_path: Path, rendered: RenderResult) -> None:
    out = tmp_path / "manifests"
    write_cluster(out, "dc1", rendered.manifests)
    first = tree(out)
    assert RENDER_MARKER in "".join(first)
    stale = out / "dc1" / "namespaces" / "gone" / "00-namespace-gone.yaml"
    stale.parent.mkdir(parents=True)
    stale.write_text("kind: Namespace\n")
    again = render_cluster(load_catalog(EXAMPLE_CATALOG), "dc1")
    write_cluster(out, "dc1", again.manifests)
    assert tree(out) == first
    assert [p.name for p in out.iterdir()] == ["dc1"]  # no staging directories left behind


def test_a_directory_not_written_by_render_is_never_replaced(tmp_path: Path, rendered: RenderResult) -> None:
    foreign = tmp_path / "dc1"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(RenderError, match="was not written by `pool render`"):
        write_cluster(tmp_path, "dc1", rendered.manifests)
    assert (foreign / "notes.txt").read_text() == "mine"


def test_duplicate_file_names_are_refused(rendered: RenderResult) -> None:
    twice = [r for r in rendered.resources if r.type.startswith("kubernetes:")][:1] * 2
    with pytest.raises(RenderError, match="same file"):
        manifests_from(twice)


# --------------------------------------------------------------------- CLI


def test_pool_render_writes_and_reports_counts(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["render", "--out", str(tmp_path), "--catalog", str(EXAMPLE_CATALOG)])
    assert result.exit_code == 0, result.output
    assert f"cluster dc1: 69 manifests validated and written to {tmp_path / 'dc1'}" in result.output
    assert len([p for p in (tmp_path / "dc1").rglob("*.yaml")]) == 69


def test_pool_validate_runs_the_program_and_validates_manifests() -> None:
    result = CliRunner().invoke(app, ["validate", "--catalog", str(EXAMPLE_CATALOG)])
    assert result.exit_code == 0, result.output
    assert "cluster dc1: program built 74 resources under mocks, 69 manifests validated" in result.output


def test_pool_render_with_a_broken_catalog_writes_nothing(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def huge_default(doc: Any) -> None:
        doc["namespaces"][0]["container_defaults"] = {"default_memory": "1Ti"}

    edit_yaml(root / "business-units" / "edge-security.yaml", huge_default)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["render", "--out", str(out), "--catalog", str(root)])
    assert result.exit_code == 2
    assert "namespaces[0].container_defaults.default_memory" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_pool_render_unknown_cluster(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["render", "--out", str(tmp_path), "--cluster", "dc9", "--catalog", str(EXAMPLE_CATALOG)]
    )
    assert result.exit_code == 2
    assert "cluster 'dc9' is not in pool.yaml (clusters: dc1)" in result.output


def test_validation_needs_no_network(rendered: RenderResult, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from infra import render

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("manifest validation tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    render._kubernetes_validator.cache_clear()
    validate_manifests(rendered.manifests, "1.31")
