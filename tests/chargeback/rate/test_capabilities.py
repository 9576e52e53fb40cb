"""Rating capability calls: per_call to the cent per line, cost_recovery split exactly by largest remainder,
none at zero, method and price versions changing mid-month, and the hand-over schemas."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from chargeback.collect.calls import UNKNOWN_CALLER, calls_frame
from chargeback.errors import RatingError, UsageDataError
from chargeback.period import Period
from chargeback.rate.capabilities import per_call_amount, rate_calls, recover
from pool_catalog import load_catalog
from pool_catalog.models import CapabilityRate, Catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG

OCTOBER = Period.parse("2026-10")
START = OCTOBER.start


def row(hour: int, consumer: str, provider: str, capability: str, calls: int, value: str = "", billable: bool = True):
    return {
        "hour": START + dt.timedelta(hours=hour),
        "cluster": "dc1",
        "consumer_namespace": consumer,
        "provider_namespace": provider,
        "capability": capability,
        "class_value": value,
        "billable": billable,
        "calls": calls,
    }


def with_rates(catalog: Catalog, *rates: dict) -> Catalog:
    entries = [CapabilityRate.model_validate(r) for r in rates]
    keep = [r for r in catalog.rates.capabilities if r.capability not in {e.capability for e in entries}]
    return catalog.model_copy(update={"rates": catalog.rates.model_copy(update={"capabilities": keep + entries})})


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


def test_per_call_is_calls_per_thousand_times_price_half_even() -> None:
    assert per_call_amount(1125, Decimal("0.40"), "CNY") == Decimal("0.45")
    assert per_call_amount(1, Decimal("5.00"), "CNY") == Decimal("0.00")  # 0.005 → half-even to 0.00
    assert per_call_amount(3, Decimal("5.00"), "CNY") == Decimal("0.02")  # 0.015 → 0.02
    assert per_call_amount(1000, Decimal("2.00"), "JPY") == Decimal("2")


def test_recover_sums_exactly_and_gives_the_cent_to_the_largest_remainder() -> None:
    parts = recover(Decimal("100.00"), {"a": 1, "b": 1, "c": 1}, "CNY")
    assert parts == {"a": Decimal("33.34"), "b": Decimal("33.33"), "c": Decimal("33.33")}  # tie: first listed
    parts = recover(Decimal("10.00"), {"x": 2, "y": 7, "z": 0}, "CNY")
    assert parts == {"x": Decimal("2.22"), "y": Decimal("7.78")}  # 2.222… and 7.777…: the cent goes to y
    assert recover(Decimal("10.00"), {"x": 0}, "CNY") == {}


def test_switch_from_per_call_to_cost_recovery_moves_exactly_the_providers_cost(catalog: Catalog) -> None:
    calls = calls_frame(
        [
            row(0, "di-api", "pf-identity", "identity", 7001),
            row(1, "cs-miniapp", "pf-identity", "identity", 12_345),
            row(1, "cs-miniapp-staging", "pf-identity", "identity", 999),
            row(2, "es-testbed", "pf-identity", "identity", 1),
            row(2, "pf-identity", "pf-identity", "identity", 500),  # its own health checks
            row(3, UNKNOWN_CALLER, "pf-identity", "identity", 3000),
        ]
    )
    cost = {("dc1", "pf-identity"): Decimal("8765.43")}
    per_call = rate_calls(calls, catalog, OCTOBER, cost)
    assert per_call.set_index("consumer_namespace")["amount"].to_dict() == {
        "cs-miniapp": Decimal("4.94"),  # 12,345 / 1,000 × 0.40 = 4.938
        "cs-miniapp-staging": Decimal("0.40"),  # 0.3996
        "di-api": Decimal("2.80"),  # 2.8004
        "es-testbed": Decimal("0.00"),
        "pf-identity": Decimal("0.00"),  # a provider does not pay for calling itself
        UNKNOWN_CALLER: Decimal("1.20"),  # priced, charged to nobody
    }
    recovery = {"capability": "identity", "versions": [{"effective_from": "2026-01-01", "method": "cost_recovery"}]}
    lines = rate_calls(calls, with_rates(catalog, recovery), OCTOBER, cost)
    assert sum(lines["amount"]) == Decimal("8765.43")  # the whole cost, to the cent
    charged = lines[lines["charged"]]
    kept = lines[~lines["charged"]]
    assert set(kept["consumer_namespace"]) == {"pf-identity", UNKNOWN_CALLER}
    # 23,846 calls: each share is cost × calls / 23,846 with the leftover cents to the largest remainders
    expected = {"di-api": "2573.46", "cs-miniapp": "4537.84", "cs-miniapp-staging": "367.22", "es-testbed": "0.37",
                "pf-identity": "183.79", UNKNOWN_CALLER: "1102.75"}  # fmt: skip
    assert lines.set_index("consumer_namespace")["amount"].to_dict() == {k: Decimal(v) for k, v in expected.items()}
    assert sum(charged["amount"]) + sum(kept["amount"]) == Decimal("8765.43")
    assert set(lines["recovered_cost"]) == {Decimal("8765.43")}
    assert lines.set_index("consumer_namespace").loc["di-api", "share"] == Decimal("0.293592217")  # 7001 / 23846


def test_method_and_price_change_mid_month(catalog: Catalog) -> None:
    calls = calls_frame(
        [
            *(row(hour, "di-api", "pf-identity", "identity", 1000) for hour in range(0, 48)),
            *(row(hour, "cs-miniapp", "pf-identity", "identity", 3000) for hour in range(24, 48)),
        ]
    )
    versions = {
        "capability": "identity",
        "versions": [
            {"effective_from": "2026-01-01", "method": "per_call", "price": "0.40"},
            {"effective_from": "2026-10-02T00:00:00Z", "method": "per_call", "price": "0.50"},
            {"effective_from": "2026-10-02T12:00:00Z", "method": "cost_recovery"},
            {"effective_from": "2026-10-15T00:00:00Z", "method": "none"},
        ],
    }
    lines = rate_calls(calls, with_rates(catalog, versions), OCTOBER, {("dc1", "pf-identity"): Decimal("744.00")})
    got = [
        (row.rate_effective_from.strftime("%d %H"), row.method, row.consumer_namespace, row.calls, row.amount)
        for row in lines.itertuples()
    ]
    assert got == [
        ("01 00", "per_call", "di-api", 24_000, Decimal("9.60")),
        ("02 00", "per_call", "cs-miniapp", 36_000, Decimal("18.00")),
        ("02 00", "per_call", "di-api", 12_000, Decimal("6.00")),
        # cost_recovery from 02 12:00 to 15 00:00 = 300 of 744 hours: 300.00 of the cost, by 12,000 : 36,000
        ("02 12", "cost_recovery", "cs-miniapp", 36_000, Decimal("225.00")),
        ("02 12", "cost_recovery", "di-api", 12_000, Decimal("75.00")),
    ]
    assert lines["charge_period_start"].min() == pd.Timestamp(START)
    assert lines.iloc[-1]["charge_period_end"] == pd.Timestamp(START + dt.timedelta(hours=48))


def test_none_shows_calls_at_zero_and_a_missing_version_is_an_error(catalog: Catalog) -> None:
    calls = calls_frame([row(0, "di-api", "pf-identity", "identity", 10)])
    shown = {"capability": "identity", "versions": [{"effective_from": "2026-01-01", "method": "none"}]}
    lines = rate_calls(calls, with_rates(catalog, shown), OCTOBER, {})
    assert (lines["calls"].tolist(), lines["amount"].tolist(), lines["charged"].tolist()) == (
        [10],
        [Decimal(0)],
        [False],
    )
    late = {"capability": "identity", "versions": [{"effective_from": "2026-11-01", "method": "none"}]}
    with pytest.raises(RatingError, match="capabilities entry 'identity' has no version in force at 2026-10-01"):
        rate_calls(calls, with_rates(catalog, late), OCTOBER, {})


def test_calls_frame_schema_is_checked_at_hand_over(catalog: Catalog) -> None:
    broken = calls_frame([row(0, "di-api", "pf-identity", "identity", 10)]).assign(calls=1.5)
    with pytest.raises(UsageDataError, match="column 'calls' has dtype float64, expected int64"):
        rate_calls(broken, catalog, OCTOBER, {})
    with pytest.raises(UsageDataError, match="column 'consumer_namespace' holds empty"):
        rate_calls(calls_frame([row(0, "", "pf-identity", "identity", 10)]), catalog, OCTOBER, {})
