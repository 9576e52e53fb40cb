"""A `pool request` as a typed request: from flags and/or a request file to a validated `NamespaceRequest`.

Bad input is a RequestError naming the flag (or the file's field) and how to write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from pool_catalog import CatalogError
from pool_catalog.files import field_path
from pool_catalog.loader import check_expansion
from pool_catalog.models import Capability, ContainerDefaults
from pool_catalog.quantities import Bytes, Cores

from ..errors import RequestError


class QuotaRequest(BaseModel):
    """Quota fields of a request; a field left out keeps the current value of an existing namespace."""

    model_config = ConfigDict(extra="forbid")

    cpu: Cores | None = Field(None, description="requests.cpu in cores (8, 500m).")
    memory: Bytes | None = Field(None, description="requests.memory (32Gi).")
    limits_cpu: Cores | None = Field(None, description="limits.cpu; defaults to twice cpu.")
    limits_memory: Bytes | None = Field(None, description="limits.memory; defaults to memory.")
    storage: dict[str, Bytes] = Field(
        default_factory=dict, description="Storage per tier (hot: 500Gi); 0 removes the tier from the quota."
    )
    gpu: int | None = Field(None, ge=0, description="requests.nvidia.com/gpu.")
    load_balancers: int | None = Field(None, ge=0, description="services.loadbalancers.")
    pods: int | None = Field(None, ge=1, description="Maximum number of pods.")


class NamespaceRequest(BaseModel):
    """A new namespace or a quota change, with the field names of a namespace entry in the unit's file."""

    model_config = ConfigDict(extra="forbid")

    unit: str = Field(..., description="Id of the business unit asking (its file is business-units/<unit>.yaml).")
    name: str = Field(..., description="Namespace name: new, or one the unit already has (a quota change).")
    cluster: str | None = Field(None, description="Cluster; default: the namespace's, else the first in pool.yaml.")
    node_pool: str | None = Field(None, description="Node pool; required for a new namespace.")
    purpose: str | None = Field(None, description="What runs there.")
    quota: QuotaRequest = Field(default_factory=QuotaRequest, description="Requested quota.")
    container_defaults: ContainerDefaults | None = Field(None, description="LimitRange defaults.")
    exposes: list[Capability] | None = Field(None, description="Capabilities served from the namespace.")
    consumes: list[str] | None = Field(None, description="Capabilities of other units it calls.")


_FLAG_OF = {
    "unit": "--unit",
    "name": "--namespace",
    "cluster": "--cluster",
    "node_pool": "--node-pool",
    "quota.cpu": "--cpu",
    "quota.memory": "--memory",
    "quota.limits_cpu": "--limits-cpu",
    "quota.limits_memory": "--limits-memory",
    "quota.gpu": "--gpu",
    "quota.load_balancers": "--load-balancers",
    "quota.pods": "--pods",
}


def parse_request(fields: Mapping[str, Any], source: str) -> NamespaceRequest:
    """Validate request fields (from flags and/or a file); bad quantities raise RequestError naming the field."""
    try:
        return NamespaceRequest.model_validate(dict(fields))
    except ValidationError as e:
        problems = []
        for where, message in request_problems(e):
            if source == "flags":
                where = _FLAG_OF.get(where) or ("--storage" if where.startswith("quota.storage") else where)
            problems.append(f"{where}: {message}")
        raise RequestError(f"request ({source}) is not valid:\n  " + "\n  ".join(problems)) from e


def request_problems(error: ValidationError) -> list[tuple[str, str]]:
    """(field path such as quota.cpu, message) of each problem of a request; the portal shows each beside its field."""
    problems = []
    for item in error.errors():
        message = "is required" if item["type"] == "missing" else item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "is not a field of a namespace request (see `pool request --help`)"
        problems.append((field_path(tuple(item["loc"])), message))
    return problems


def read_request_file(path: Path) -> dict[str, Any]:
    """A request file: a namespace entry as in business-units/<unit>.yaml, plus an optional `unit:`."""
    try:
        text = path.read_text(encoding="utf-8")
        check_expansion(text, path)  # an alias bomb fails here, before anything is built
        document = YAML(typ="safe").load(text)
    except CatalogError as e:
        raise RequestError("; ".join(str(f) for f in e.findings)) from e
    except (OSError, UnicodeDecodeError) as e:
        raise RequestError(f"{path}: cannot be read: {e}") from e
    except YAMLError as e:
        raise RequestError(f"{path}: is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(document, dict):
        raise RequestError(f"{path}: must be a mapping such as `name: ...`, `node_pool: ...`, `quota: {{cpu: 8}}`")
    return document


def merge_request_fields(
    file_fields: Mapping[str, Any],
    flags: Mapping[str, Any],
    quota_flags: Mapping[str, Any],
    storage_flags: Mapping[str, str],
) -> dict[str, Any]:
    """A request file's fields with the flags that were given (not None) laid over them."""
    fields = dict(file_fields)
    fields.update({key: value for key, value in flags.items() if value is not None})
    quota = fields.get("quota") or {}
    if not isinstance(quota, dict) or not isinstance(quota.get("storage") or {}, dict):
        raise RequestError("quota must be a mapping such as {cpu: 8, memory: 32Gi, storage: {hot: 500Gi}}")
    quota = {**quota, **{key: value for key, value in quota_flags.items() if value is not None}}
    if storage_flags:
        quota["storage"] = {**(quota.get("storage") or {}), **storage_flags}
    fields["quota"] = quota
    return fields


def parse_storage_flags(values: list[str]) -> dict[str, str]:
    """--storage hot=500Gi (repeatable) to {tier: size}."""
    storage = {}
    for value in values:
        tier, sep, size = value.partition("=")
        if not sep or not tier.strip() or not size.strip():
            raise RequestError(f"--storage {value!r}: write TIER=SIZE, e.g. --storage hot=500Gi")
        storage[tier.strip()] = size.strip()
    return storage


def request_from_command_line(
    request_file: Path | None,
    flags: Mapping[str, Any],
    quota_flags: Mapping[str, Any],
    storage: list[str],
) -> NamespaceRequest:
    """The request of `pool request`: the --file entry (if any) with the flags given laid over it."""
    fields = merge_request_fields(
        read_request_file(request_file) if request_file else {}, flags, quota_flags, parse_storage_flags(storage)
    )
    return parse_request(fields, f"--file {request_file}" if request_file else "flags")
