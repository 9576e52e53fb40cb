"""The policy pack offline: run the program under mocks and apply the pack's own rules to what it declares.

`pool check`, `pool request` and the demo use `check_catalog`; the rule functions are the very ones
`pulumi preview --policy-pack policies` runs, so both always agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from policies.rules import (
    BUSINESS_UNIT_LABEL,
    NAMESPACE,
    RULES,
    Breach,
    ResourceCheck,
    Rule,
    StackCheck,
    StackResource,
    describe,
    labels_of,
    metadata,
    namespace_name,
)
from pool_catalog import Catalog

from .errors import PolicyConfigError
from .mocks import run_program

Enforcement = Literal["mandatory", "advisory"]
_LEVELS = {"mandatory": "mandatory", "remediate": "mandatory", "advisory": "advisory", "disabled": None}


@dataclass(frozen=True)
class Violation:
    """One broken rule, as `pool check` prints it."""

    rule: str
    enforcement: Enforcement
    unit: str | None
    """Business unit id; None for cluster-wide findings (a node pool's capacity)."""
    resource: str
    """"Namespace di-api", "ResourceQuota di-api/pool-quota", or "stack"."""
    message: str


def check_catalog(
    catalog: Catalog, cluster: str | None = None, config: Mapping[str, Any] | None = None
) -> list[Violation]:
    """Every violation of the pack's rules by what the program declares for `cluster` (default: every cluster).

    `config` has the shape of `pulumi preview --policy-pack-config`: rule name → enforcement level, or
    → {"enforcementLevel": ..., <rule settings>}. Raises PolicyConfigError for a config the rules reject,
    ProgramError or CatalogError when the program cannot run.
    """
    levels, settings = resolve_config(config or {})
    names = [cluster] if cluster else [c.name for c in catalog.pool.clusters]
    violations: set[Violation] = set()
    for name in names:
        resources = [
            StackResource(type=r.type, name=r.name, props=r.props, parent_type=r.parent_type)
            for r in run_program(catalog, name)
        ]
        violations.update(check_resources(resources, catalog, levels, settings))
    return sorted(violations, key=lambda v: (v.unit or "", v.rule, v.resource, v.message))


def check_resources(
    resources: Sequence[StackResource],
    catalog: Catalog,
    levels: Mapping[str, Enforcement | None],
    settings: Mapping[str, dict[str, Any]],
) -> list[Violation]:
    """Apply every enabled rule to one stack's resources."""
    units = {namespace_name(r): labels_of(r.props).get(BUSINESS_UNIT_LABEL) for r in resources if r.type == NAMESPACE}
    violations = []
    for rule in RULES:
        level = levels[rule.name]
        if level is None:
            continue
        if rule.scope == "resource":
            check: ResourceCheck = rule.check  # type: ignore[assignment]
            for resource in resources:
                for message in check(resource.type, resource.props, settings[rule.name]):
                    unit = labels_of(resource.props).get(BUSINESS_UNIT_LABEL) or units.get(
                        metadata(resource.props).get("namespace", "")
                    )
                    violations.append(
                        Violation(rule.name, level, unit, describe(resource.type, resource.props), message)
                    )
        else:
            stack_check: StackCheck = rule.check  # type: ignore[assignment]
            breaches: list[Breach] = list(stack_check(resources, settings[rule.name], catalog))
            violations.extend(
                Violation(
                    rule.name,
                    level,
                    breach.unit,
                    describe(breach.resource.type, breach.resource.props) if breach.resource else "stack",
                    breach.message,
                )
                for breach in breaches
            )
    return violations


def resolve_config(config: Mapping[str, Any]) -> tuple[dict[str, Enforcement | None], dict[str, dict[str, Any]]]:
    """Per rule: the enforcement level (None: disabled) and its settings with defaults, checked against the schema."""
    by_name = {rule.name: rule for rule in RULES}
    unknown = sorted(set(config) - set(by_name) - {"all"})
    if unknown:
        raise PolicyConfigError(
            f"policy config names unknown rule(s) {', '.join(unknown)}; rules: {', '.join(sorted(by_name))}"
        )
    default_level = _level("all", config.get("all"))
    levels: dict[str, Enforcement | None] = {}
    settings: dict[str, dict[str, Any]] = {}
    for rule in RULES:
        entry = config.get(rule.name)
        given: dict[str, Any] = {}
        level = default_level or rule.enforcement.value
        if isinstance(entry, Mapping):
            given = dict(entry)
            level = _level(rule.name, given.pop("enforcementLevel", None)) or level
        elif entry is not None:
            level = _level(rule.name, entry)
        _validate_settings(rule, given)
        levels[rule.name] = _LEVELS[level]  # type: ignore[assignment]
        settings[rule.name] = rule.settings(given)
    return levels, settings


def _level(rule: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in _LEVELS:
        raise PolicyConfigError(f"policy config {rule}: enforcement level {value!r} is not one of {', '.join(_LEVELS)}")
    return str(value)


def _validate_settings(rule: Rule, given: Mapping[str, Any]) -> None:
    schema = {"type": "object", "properties": rule.config, "additionalProperties": False}
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(dict(given)), key=lambda e: list(e.path))
    if errors:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error.path) or 'settings'}: {error.message}" for error in errors
        )
        settable = ", ".join(sorted(rule.config)) or "nothing but enforcementLevel"
        raise PolicyConfigError(f"policy config {rule.name}: {problems} (settable: {settable})")
