"""Errors of the provisioning half (the Pulumi program, rendering, manifest validation).

Catalog problems stay `pool_catalog.CatalogError`; everything here derives from `PoolError` so the
CLI can print one clear message instead of a traceback.
"""

from __future__ import annotations

from pool_catalog.errors import UserError


class PoolError(UserError):
    """Base of every error the `pool` command reports as a message."""


class ProgramError(PoolError):
    """The Pulumi program could not be built or run (under mocks) for a cluster."""


class RenderError(PoolError):
    """Manifests could not be rendered or written."""


class ManifestValidationError(RenderError):
    """Rendered manifests do not match the Kubernetes (or CRD) schema; `problems` lists each one."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        noun = "manifest problem" if len(problems) == 1 else "manifest problems"
        super().__init__(f"{len(problems)} {noun}:\n  " + "\n  ".join(problems))


class PolicyConfigError(PoolError):
    """The policy config given to `pool check` names an unknown rule or a value its schema rejects."""


class RequestError(PoolError):
    """A `pool request` cannot be evaluated: unknown unit, bad quantity, unreadable request file."""
