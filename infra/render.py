"""Manifests for GitOps review: what the program would apply, one YAML file per object.

Layout, per cluster (stable names, sorted, byte-identical on every run):

    <out>/<cluster>/cluster-scoped/00-storageclass-pool-hot.yaml
    <out>/<cluster>/cluster-scoped/10-node-srv-gen-01.resource-pool-node-labels.patch.yaml
    <out>/<cluster>/namespaces/<namespace>/00-namespace-<namespace>.yaml
    <out>/<cluster>/namespaces/<namespace>/10-resourcequota-pool-quota.yaml   … 20 limitrange,
                                                   30 networkpolicy, 40 rolebinding, 50/51 MetalLB

The number orders a `kubectl apply -R` (namespaces before what lives in them) and groups a
review by kind. Patch resources are rendered as the patch they apply (server-side apply, with the
field manager in the file name and a comment); provider directives (`pulumi.com/*` annotations)
are left out because they never reach the cluster object.

Every manifest is validated before anything is written: built-in kinds against the Kubernetes
OpenAPI schema of the cluster's version (kubernetes-validate, strict: unknown fields fail), MetalLB
kinds against the checked-in schema `schemas/metallb.io-v1beta1.json` of the fields the program uses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate import utils as kv_utils
from packaging.version import Version
from referencing import Registry, Resource

from pool_catalog import Catalog
from pool_catalog.conventions import PATCH_FIELD_MANAGER_ANNOTATION, PATCH_FORCE_ANNOTATION

from .errors import ManifestValidationError, ProgramError, RenderError
from .mocks import RegisteredResource, run_program

RENDER_MARKER = ".resource-pool-render"
"""File in every rendered cluster directory: only directories carrying it are ever replaced."""

_KIND_ORDER = {
    "Namespace": 0,
    "StorageClass": 0,
    "Node": 10,
    "ResourceQuota": 10,
    "LimitRange": 20,
    "NetworkPolicy": 30,
    "RoleBinding": 40,
    "IPAddressPool": 50,
    "L2Advertisement": 51,
}
_TOP_LEVEL_ORDER = ["apiVersion", "kind", "metadata"]
_CRD_SCHEMA_FILES = {"metallb.io/v1beta1": "metallb.io-v1beta1.json"}


@dataclass(frozen=True)
class Manifest:
    """One rendered object and where it goes, relative to the cluster directory."""

    path: str
    body: dict[str, Any]
    source: str
    """Pulumi type and logical name, for error messages."""
    comment: str = ""

    @property
    def api_version(self) -> str:
        return self.body["apiVersion"]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    def text(self) -> str:
        header = "".join(f"# {line}\n" for line in self.comment.splitlines())
        return header + yaml.safe_dump(self.body, sort_keys=False, allow_unicode=True, width=120)


@dataclass(frozen=True)
class RenderResult:
    cluster: str
    resources: list[RegisteredResource]
    """Everything the program registered, components included."""
    manifests: list[Manifest]


def manifests_from(resources_: list[RegisteredResource]) -> list[Manifest]:
    """Kubernetes objects among the registered resources, sorted by file path (components left out)."""
    manifests = [_manifest(r) for r in resources_ if r.type.startswith("kubernetes:")]
    paths = [m.path for m in manifests]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise RenderError(f"two objects would be written to the same file: {', '.join(duplicates)}")
    return sorted(manifests, key=lambda m: m.path)


def _manifest(resource: RegisteredResource) -> Manifest:
    props = _normalize(resource.props)
    kind = props.get("kind")
    api_version = props.get("apiVersion")
    if not kind or not api_version:
        raise RenderError(f"{resource.type} {resource.name!r} has no apiVersion/kind; cannot render it")
    metadata = dict(props.get("metadata") or {})
    is_patch = resource.type.endswith("Patch")
    comment = ""
    if is_patch:
        annotations = dict(metadata.get("annotations") or {})
        manager = annotations.get(PATCH_FIELD_MANAGER_ANNOTATION, "resource-pool")
        force = annotations.get(PATCH_FORCE_ANNOTATION) == "true"
        directives = {k: v for k, v in annotations.items() if not k.startswith("pulumi.com/")}
        if directives:
            metadata["annotations"] = directives
        else:
            metadata.pop("annotations", None)
        comment = (
            f"Server-side apply patch of the existing {kind} {metadata.get('name')!r}; apply with\n"
            f"kubectl apply --server-side --field-manager={manager}{' --force-conflicts' if force else ''} -f <file>"
        )
    body: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": _sorted(metadata)}
    for key in sorted(k for k in props if k not in _TOP_LEVEL_ORDER):
        body[key] = _sorted(props[key])
    name = metadata.get("name", resource.name)
    namespace = metadata.get("namespace")
    order = _KIND_ORDER.get(kind, 90)
    if kind == "Namespace":
        directory = f"namespaces/{name}"
    elif namespace:
        directory = f"namespaces/{namespace}"
    else:
        directory = "cluster-scoped"
    suffix = f".{manager}.patch.yaml" if is_patch else ".yaml"
    path = f"{directory}/{order:02d}-{kind.lower()}-{name}{suffix}"
    return Manifest(path=path, body=body, source=f"{resource.type} {resource.name!r}", comment=comment)


def _normalize(value: Any) -> Any:
    """Numbers come through the engine as floats; whole ones go back to int (ports, counts)."""
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


# ------------------------------------------------------------------ validation


def validate_manifests(manifests: list[Manifest], kubernetes_version: str) -> None:
    """Every manifest against its schema; raises ManifestValidationError listing every problem."""
    problems = []
    for manifest in manifests:
        problem = _problem(manifest, kubernetes_version)
        if problem:
            problems.append(f"{manifest.path} ({manifest.source}): {problem}")
    if problems:
        raise ManifestValidationError(problems)


def _problem(manifest: Manifest, kubernetes_version: str) -> str | None:
    crd_file = _CRD_SCHEMA_FILES.get(manifest.api_version)
    if crd_file is not None:
        validator = _crd_validator(crd_file, manifest.kind)
        if validator is None:
            return f"no schema for {manifest.kind} in schemas/{crd_file}; add it before the program emits one"
        error = jsonschema.exceptions.best_match(validator.iter_errors(manifest.body))
        return None if error is None else _describe(error)
    try:
        validator = _kubernetes_validator(manifest.api_version, manifest.kind, kubernetes_version)
    except kubernetes_validate.SchemaNotFoundError as e:
        return f"{e.message}: no offline schema; a custom resource needs a schema under infra/schemas/"
    except kubernetes_validate.VersionNotSupportedError as e:
        return f"{e.message}; use a kubernetes_version the installed kubernetes-validate knows"
    error = jsonschema.exceptions.best_match(validator.iter_errors(manifest.body))
    return None if error is None else _describe(error)


@cache
def _kubernetes_validator(api_version: str, kind: str, kubernetes_version: str) -> jsonschema.protocols.Validator:
    """kubernetes-validate's strict schema for one kind, built once.

    `kubernetes_validate.validate` re-reads the 1.3 MB definitions file on every call (30 ms per
    manifest); this picks the same schema files (newest bundled version not newer than the
    cluster's) and keeps the compiled validator.
    """
    wanted = Version(kubernetes_version)
    versions = [v for v in kv_utils.all_versions() if Version(kv_utils.major_minor(v)) <= wanted]
    if Version(kv_utils.major_minor(kv_utils.latest_version())) < wanted or not versions:
        raise kubernetes_validate.VersionNotSupportedError(version=kubernetes_version)
    schema_dir = f"kubernetes-json-schema/v{versions[-1]}-local-strict"
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = kv_utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group_version}.json", kubernetes_version)
    except FileNotFoundError as e:
        raise kubernetes_validate.SchemaNotFoundError(
            kind=kind, version=kubernetes_version, api_version=api_version
        ) from e
    definitions = kv_utils.schema_contents(f"{schema_dir}/_definitions.json", kubernetes_version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    return f"{where}: {error.message}"


@cache
def _crd_validator(file_name: str, kind: str) -> jsonschema.protocols.Validator | None:
    schemas = json.loads(resources.files("infra").joinpath("schemas", file_name).read_text(encoding="utf-8"))
    schema = schemas.get("kinds", {}).get(kind)
    if schema is None:
        return None
    schema = {**schema, "$defs": schemas.get("$defs", {})}
    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator_class.check_schema(schema)
    return validator_class(schema)


# --------------------------------------------------------------------- writing


def write_cluster(out: Path, cluster: str, manifests: list[Manifest]) -> Path:
    """Replace `<out>/<cluster>/` with exactly these manifests, atomically.

    Everything is written to a temporary sibling first and swapped in with renames, so a failure
    leaves the previous rendering untouched; stale files (a namespace removed from the catalog)
    disappear. A directory without the render marker is never replaced.
    """
    target = out / cluster
    if target.exists() and not (target / RENDER_MARKER).exists() and any(target.iterdir()):
        raise RenderError(
            f"{target} exists and was not written by `pool render` (no {RENDER_MARKER}); "
            "choose another --out or empty it"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{cluster}.", dir=out))
        try:
            for manifest in manifests:
                path = staging / manifest.path
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(manifest.text(), encoding="utf-8")
            (staging / RENDER_MARKER).write_text(
                "Rendered by `pool render`; the whole directory is replaced on the next render.\n", encoding="utf-8"
            )
            os.chmod(staging, 0o755)
            previous = None
            if target.exists():
                previous = Path(tempfile.mkdtemp(prefix=f".{cluster}.old.", dir=out))
                previous.rmdir()
                target.rename(previous)
            try:
                staging.rename(target)
            except OSError:
                if previous is not None:
                    previous.rename(target)
                raise
            if previous is not None:
                shutil.rmtree(previous)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    except OSError as e:
        raise RenderError(f"cannot write manifests to {target}: {e.strerror or e}") from e
    return target


# ------------------------------------------------------------------ whole runs


def render_cluster(catalog: Catalog, cluster: str) -> RenderResult:
    """Run the program for `cluster` under mocks, render and validate its manifests (writes nothing)."""
    model = catalog.pool.cluster(cluster)
    if model is None:
        known = ", ".join(c.name for c in catalog.pool.clusters)
        raise ProgramError(f"cluster {cluster!r} is not in pool.yaml (clusters: {known})")
    registered = run_program(catalog, cluster)
    manifests = manifests_from(registered)
    validate_manifests(manifests, model.kubernetes_version)
    return RenderResult(cluster=cluster, resources=registered, manifests=manifests)


def render_catalog(catalog: Catalog, out: Path, clusters: list[str] | None = None) -> list[RenderResult]:
    """Render every requested cluster (default: all); nothing is written unless all of them validate."""
    names = clusters or [c.name for c in catalog.pool.clusters]
    results = [render_cluster(catalog, name) for name in names]
    for result in results:
        write_cluster(out, result.cluster, result.manifests)
    return results
