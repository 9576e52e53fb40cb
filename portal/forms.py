"""The request form: form fields → the request's fields (as `pool request` flags give them), validation with the
request model's own rules, and each problem placed beside the field it concerns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from infra.errors import RequestError
from infra.request.decide import Decision, evaluate
from infra.request.model import NamespaceRequest, request_problems
from pool_catalog import Catalog
from pool_catalog.estimate import UnitHistory

QUOTA_FIELDS = ("cpu", "memory", "gpu", "load_balancers", "pods")
TEXT_FIELDS = ("namespace", "cluster", "node_pool", "purpose", *QUOTA_FIELDS)
MAX_TEXT = 200


@dataclass
class RequestForm:
    """What a person typed (kept to show the form again), the errors per field, and the decision once checked."""

    values: dict[str, str]
    storage: dict[str, str]
    consumes: list[str]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)
    request: NamespaceRequest | None = None
    decision: Decision | None = None

    def add(self, where: str, message: str) -> None:
        self.errors.setdefault(where, []).append(message)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.general and self.decision is not None and self.decision.accepted

    def stored_fields(self) -> dict[str, Any]:
        """The fields as the request store keeps them (and approval parses again)."""
        return {"values": self.values, "storage": self.storage, "consumes": self.consumes}


def read_form(form: Mapping[str, Any], consumes: list[str], tiers: list[str]) -> RequestForm:
    """The posted (or queried) fields, trimmed; unknown storage tiers are not read."""
    values = {name: str(form.get(name) or "").strip()[:MAX_TEXT] for name in TEXT_FIELDS}
    storage = {tier: str(form.get(f"storage_{tier}") or "").strip()[:MAX_TEXT] for tier in tiers}
    return RequestForm(values, storage, consumes)


def form_from_stored(stored: Mapping[str, Any]) -> RequestForm:
    return RequestForm(dict(stored["values"]), dict(stored["storage"]), list(stored["consumes"]))


def _field_of(path: str) -> str:
    """A request model path (quota.cpu, quota.storage.hot, name) → the form field it came from."""
    if path == "name":
        return "namespace"
    if path.startswith("quota.storage."):
        return "storage_" + path.removeprefix("quota.storage.")
    if path.startswith("quota."):
        return path.removeprefix("quota.")
    return path if path in TEXT_FIELDS else "general"


def _refusal_field(limit: str) -> str:
    """Where a refusal of `pool request` (its `limit`) belongs on the form."""
    if limit in ("namespace name", "namespace owner"):
        return "namespace"
    if limit == "node pool":
        return "node_pool"
    if limit == "cluster":
        return "cluster"
    if limit.startswith("node pool "):
        resource = limit.rsplit(" ", 1)[-1]
        return resource if resource in QUOTA_FIELDS else "general"
    if limit.startswith("storage tier"):
        tier = limit.removeprefix("storage tier").strip()
        return f"storage_{tier}" if tier else "general"
    return "general"


def check(
    form: RequestForm, unit: str, catalog: Catalog, *, full: bool, history: UnitHistory | None = None
) -> RequestForm:
    """Validate with the request model, then decide with `pool request`'s own `evaluate` (the policy pack and
    the reload of the edited catalog only when `full`: on submit and approval, not on every keystroke); with
    the unit's last issued month as `history`, as `pool request --history` does."""
    quota: dict[str, Any] = {key: form.values[key] for key in QUOTA_FIELDS if form.values[key]}
    storage = {tier: size for tier, size in form.storage.items() if size}
    if storage:
        quota["storage"] = storage
    fields: dict[str, Any] = {"unit": unit, "name": form.values["namespace"] or None, "quota": quota}
    for key, target in (("cluster", "cluster"), ("node_pool", "node_pool"), ("purpose", "purpose")):
        if form.values[key]:
            fields[target] = form.values[key]
    if form.consumes:
        fields["consumes"] = form.consumes
    try:
        form.request = NamespaceRequest.model_validate(fields)
    except ValidationError as e:
        for path, message in request_problems(e):
            form.add(_field_of(path), message)
        return form
    try:
        form.decision = evaluate(catalog, form.request, revalidate=full, history=history)
    except RequestError as e:
        form.general.append(str(e))
        return form
    for refusal in form.decision.refusals:
        text = refusal.message + (f" — {refusal.fits}" if refusal.fits else "")
        where = _refusal_field(refusal.limit)
        if where == "general":
            form.general.append(text)
        else:
            form.add(where, text)
    return form
