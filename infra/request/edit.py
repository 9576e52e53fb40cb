"""The unit's catalog file edited by a request: ruamel round trip (comments, order and quoting stay) and the
atomic write of the result. Nothing here decides; `decide` says whether the edit may be written."""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from pool_catalog.quantities import format_bytes, format_cpu

from ..errors import RequestError
from .model import NamespaceRequest, QuotaRequest


def _yaml() -> YAML:
    """Round-trip settings that reproduce the example files byte for byte."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    return yaml


def load_document(text: str) -> Any:
    """The unit file as a round-trip document (comments and order kept)."""
    return _yaml().load(text)


def dump(document: Any) -> str:
    """The document as text, formatted as the catalog's files are."""
    stream = io.StringIO()
    _yaml().dump(document, stream)
    return stream.getvalue()


def _cpu_value(cores: Decimal) -> int | str:
    text = format_cpu(cores)
    return int(text) if text.isdigit() else text


def _flow_map(values: Mapping[str, Any]) -> CommentedMap:
    mapping = CommentedMap(values)
    mapping.fa.set_flow_style()
    return mapping


def _apply_quota(quota: CommentedMap, change: QuotaRequest) -> None:
    """Set the requested quota fields in the unit file's quota mapping, in the catalog's key order."""
    values: dict[str, Any] = {}
    if change.cpu is not None:
        values["cpu"] = _cpu_value(change.cpu)
    if change.memory is not None:
        values["memory"] = format_bytes(change.memory)
    if change.limits_cpu is not None:
        values["limits_cpu"] = _cpu_value(change.limits_cpu)
    if change.limits_memory is not None:
        values["limits_memory"] = format_bytes(change.limits_memory)
    for key in ("gpu", "load_balancers", "pods"):
        if getattr(change, key) is not None:
            values[key] = getattr(change, key)
    for key, value in values.items():
        if key in quota:
            quota[key] = value
        else:
            quota.insert(_insert_position(quota, key), key, value)
    if change.storage:
        storage = quota.get("storage")
        if storage is None:
            storage = _flow_map({})
            quota.insert(_insert_position(quota, "storage"), "storage", storage)
        for tier, size in change.storage.items():
            if size:
                storage[tier] = format_bytes(size)
            else:
                storage.pop(tier, None)
        if not storage:
            del quota["storage"]


_QUOTA_ORDER = ["cpu", "memory", "limits_cpu", "limits_memory", "storage", "gpu", "load_balancers", "pods"]


def _insert_position(quota: CommentedMap, key: str) -> int:
    """Where `key` goes so the quota keeps the documented order."""
    rank = _QUOTA_ORDER.index(key)
    keys = list(quota)
    return sum(1 for k in keys if k in _QUOTA_ORDER and _QUOTA_ORDER.index(k) < rank)


def new_entry(request: NamespaceRequest, cluster: str | None) -> CommentedMap:
    """A new namespace entry (name, cluster when it must be written, node pool, purpose, empty quota)."""
    entry = CommentedMap()
    entry["name"] = request.name
    if cluster is not None:
        entry["cluster"] = cluster
    entry["node_pool"] = request.node_pool
    if request.purpose:
        entry["purpose"] = request.purpose
    entry["quota"] = CommentedMap()
    return entry


def apply_request(entry: CommentedMap, request: NamespaceRequest) -> None:
    """Write the request's non-quota fields into a namespace entry; the quota separately."""
    if request.node_pool is not None:
        entry["node_pool"] = request.node_pool
    if request.purpose is not None:
        entry["purpose"] = request.purpose
    _apply_quota(entry["quota"], request.quota)
    if request.container_defaults is not None:
        entry["container_defaults"] = _flow_map(request.container_defaults.model_dump(mode="json", exclude_unset=True))
    if request.exposes is not None:
        exposes = CommentedSeq()
        for capability in request.exposes:
            item = CommentedMap(capability.model_dump(mode="json", exclude_defaults=True))
            for key in ("ports", "pod_selector"):
                if key in item:
                    item[key] = _flow_list(item[key]) if key == "ports" else _flow_map(item[key])
            exposes.append(item)
        entry["exposes"] = exposes
    if request.consumes is not None:
        entry["consumes"] = _flow_list(request.consumes)


def _flow_list(values: list[Any]) -> CommentedSeq:
    seq = CommentedSeq(values)
    seq.fa.set_flow_style()
    return seq


LOCK_WAIT = 10.0
"""Seconds a write waits for another `pool request --write` on the same unit file before giving up."""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the unit file itself, waiting at most LOCK_WAIT seconds. The file, not a lock
    file beside it: a file left behind would change the catalog's hash and show the checkout dirty. A writer
    that waited on the file replaced meanwhile still sees the new content when it re-reads the path."""
    try:
        handle = path.open("rb")
    except OSError as e:
        raise RequestError(f"cannot open {path} to lock it: {e.strerror}") from e
    with handle:
        until = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > until:
                    raise RequestError(
                        f"{path} stayed locked by another pool request --write for {LOCK_WAIT:g} s; nothing was "
                        "written — run the request again when the other one has finished"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_unit_file(path: Path, text: str, read_as: str | None = None) -> None:
    """Replace the unit's file at `path` with `text` atomically (temporary file in the same directory, then
    rename): a reviewer never sees half a file, even after Ctrl-C. Under the file's lock the file is read again:
    when it no longer holds `read_as` (what the request was decided on), another request or an edit came
    first and nothing is written, so no request is lost."""
    with _locked(path):
        if read_as is not None and path.read_text(encoding="utf-8") != read_as:
            raise RequestError(
                f"{path} changed after this request read it (another pool request --write or an edit came first); "
                "nothing was written — run the request again, so it is checked against the file as it is now"
            )
        _replace(path, text)


def _replace(path: Path, text: str) -> None:
    directory = path.parent
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as e:
        raise RequestError(
            f"cannot write {path}: cannot create a file in {directory} ({e.strerror}); "
            "check the folder's permissions, or run without --write and apply the diff by hand"
        ) from e
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except OSError as e:
        Path(temporary).unlink(missing_ok=True)
        raise RequestError(f"cannot write {path}: {e}") from e
