"""`infra.request.decide`: each limit is checked by one check and reported once, as a typed refusal."""

from __future__ import annotations

import datetime as dt

from infra.request import NamespaceRequest, evaluate
from pool_catalog import load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG

AT = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def test_a_request_over_capacity_and_budget_is_refused_once_per_limit() -> None:
    """100,000 cores on general: over the pool's cpu (the catalog's capacity sums and the pack's capacity rule
    would say so too) and over the unit's budget (the pack's unit-budget rule too); each is one refusal."""
    request = NamespaceRequest.model_validate(
        {"unit": "data-insight", "name": "di-huge", "node_pool": "general", "quota": {"cpu": 100000, "memory": "8Gi"}}
    )
    decision = evaluate(load_catalog(EXAMPLE_CATALOG), request, at=AT)
    assert [refusal.limit for refusal in decision.refusals] == ["node pool general cpu", "budget"]
    assert "ask for ≤" in decision.refusals[0].fits
    assert not any("unit-budget" in warning for warning in decision.warnings)


def test_an_over_budget_request_allowed_warns_once_and_no_policy_repeats_it() -> None:
    request = NamespaceRequest.model_validate(
        {"unit": "data-insight", "name": "di-more", "node_pool": "general", "quota": {"cpu": 200, "memory": "8Gi"}}
    )
    decision = evaluate(load_catalog(EXAMPLE_CATALOG), request, at=AT, allow_over_budget=True)
    assert decision.accepted, decision.refusals
    budget = [w for w in decision.warnings if "budget" in w]
    assert len(budget) == 1 and budget[0].endswith("accepted with --allow-over-budget"), decision.warnings
