"""Idle allocations: flags, idle cost, right-sizing and savings from hand-built frames (example rate card:
cpu 0.24/core-hour, memory 0.032/GiB-hour, cold storage 0.30 then 0.24 per GiB-month from 2026-10-15)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from chargeback.period import Period
from chargeback.rate.idle import recommend
from chargeback.rate.invoices import idle_totals
from chargeback.rate.result import charge
from pool_catalog import Catalog, load_catalog
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.usage_frames import hours, steady, usage_frame

OCT = Period.parse("2026-10")
START = OCT.start


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


def idle_of(rows: list[dict], catalog: Catalog) -> pd.DataFrame:
    return charge(usage_frame(rows), catalog, OCT).idle


def only(frame: pd.DataFrame) -> dict:
    assert len(frame) == 1, frame
    return frame.iloc[0].to_dict()


@pytest.mark.parametrize(
    ("resource", "p95", "expected"),
    [
        ("cpu", "0.25", "0.3"),  # 0.30 → 100m steps below a core
        ("cpu", "0.84", "1.5"),  # 1.008: just above a core, so half-core steps
        ("cpu", "2", "2.5"),  # 2.4 → half cores up to 4
        ("cpu", "10", "12"),  # whole cores above 4
        ("memory", "0.3", "0.5"),  # 0.36 GiB → 256Mi steps
        ("memory", "5", "6"),  # 1Gi steps up to 8
        ("memory", "10", "12"),  # 12 → 4Gi steps up to 32
        ("memory", "100", "128"),  # 120 → 16Gi steps
        ("storage", "20", "30"),  # 24 → 10Gi steps
        ("storage", "900", "1100"),  # 1080 → 100Gi steps above a TiB
        ("gpu", "0.5", "1"),
        ("load_balancer", "0", "0"),
    ],
)
def test_recommendation_steps(resource: str, p95: str, expected: str) -> None:
    recommended = recommend(resource, Decimal(p95), 0.2)
    assert recommended == Decimal(expected)
    assert recommended >= Decimal(p95)


def test_underused_quota_is_flagged_with_cost_and_savings(catalog: Catalog) -> None:
    rows = steady("di-api", "cpu", 2.0, START, OCT.hours, requested=2.0, allocated=24.0)
    rows += steady("di-api", "pods", 3.0, START, OCT.hours)
    flagged = only(idle_of(rows, catalog))
    assert flagged["business_unit"] == "data-insight" and flagged["reason"] == "quota-underused"
    assert (flagged["allocated"], flagged["used_avg"], flagged["used_p95"]) == (Decimal(24), Decimal(2), Decimal(2))
    assert flagged["utilization"] == Decimal("0.0833")
    assert flagged["idle_cost"] == Decimal("3928.32")  # (24 − 2) cores × 744 h × 0.24
    assert flagged["recommended_allocation"] == Decimal("2.5")  # 2 × 1.2 = 2.4 → 2.5 cores
    assert flagged["monthly_savings"] == Decimal("3766.80")  # (24 − 2.5) × 730 h × 0.24


def test_p95_drives_the_recommendation(catalog: Catalog) -> None:
    rows = steady("di-api", "cpu", 1.0, START, 90, allocated=8.0)
    rows += steady("di-api", "cpu", 3.0, START + dt.timedelta(hours=90), 10, allocated=8.0)
    rows += steady("di-api", "pods", 1.0, START, 100)
    flagged = only(idle_of(rows, catalog))
    assert flagged["used_avg"] == Decimal("1.2") and flagged["used_p95"] == Decimal(3)
    assert flagged["utilization"] == Decimal("0.15")
    assert flagged["recommended_allocation"] == Decimal(4)  # 3 × 1.2 = 3.6 → 4 cores
    assert flagged["idle_cost"] == Decimal("163.20")  # (8 × 100 − 120) core-h × 0.24
    assert flagged["monthly_savings"] == Decimal("700.80")  # (8 − 4) × 730 × 0.24


def test_well_used_allocations_and_short_lived_ones_are_not_flagged(catalog: Catalog) -> None:
    rows = steady("di-api", "cpu", 8.0, START, 48, requested=10.0, allocated=24.0)  # 33 % of quota, 80 % of requests
    rows += steady("di-batch", "cpu", 0.0, START, 23, allocated=96.0)  # idle, but only 23 h < min_hours 24
    rows += steady("di-api", "pods", 2.0, START, 48) + steady("di-batch", "pods", 1.0, START, 23)
    assert idle_of(rows, catalog).empty


def test_requests_and_volume_claims_are_judged_too(catalog: Catalog) -> None:
    rows = steady("cs-miniapp", "cpu", 0.5, START, 100, requested=4.0)
    rows += steady("cs-miniapp", "storage", 20.0, START, 100, tier="hot", requested=200.0)
    rows += steady("cs-miniapp", "pods", 2.0, START, 100)
    idle = idle_of(rows, catalog).set_index("resource")
    assert idle.loc["cpu", "reason"] == "requests-underused" and idle.loc["cpu", "basis"] == "requests"
    assert idle.loc["cpu", "idle_cost"] == Decimal("84.00")  # 3.5 cores × 100 h × 0.24
    assert idle.loc["cpu", "recommended_allocation"] == Decimal("0.6")
    assert idle.loc["storage", "reason"] == "volumes-underused"
    assert idle.loc["storage", "recommended_allocation"] == Decimal(30)  # 20 GiB × 1.2 → 30Gi
    assert idle.loc["storage", "idle_cost"] == Decimal("22.19")  # 180 GiB × 100 h × 0.90 / 730 = 22.19…
    assert idle.loc["storage", "monthly_savings"] == Decimal("153.00")  # 170 GiB × 0.90


def test_namespace_without_pods_and_idle_cost_across_a_price_change(catalog: Catalog) -> None:
    rows = steady("pf-credit", "cpu", 0.0, START, OCT.hours, allocated=16.0)
    rows += steady("pf-credit", "storage", 0.0, START, OCT.hours, tier="cold", allocated=1000.0)
    idle = idle_of(rows, catalog).set_index("resource")
    assert idle.loc["cpu", "reason"] == "no-running-pods"
    assert idle.loc["cpu", "recommended_allocation"] == Decimal(0)
    assert idle.loc["cpu", "idle_cost"] == Decimal("2856.96")  # 16 × 744 × 0.24
    assert idle.loc["storage", "reason"] == "quota-underused"  # volumes hold data without pods
    # 1000 GiB × (336 h × 0.30 + 408 h × 0.24) / 730 = 272.219… ; savings at the latest price 0.24
    assert idle.loc["storage", "idle_cost"] == Decimal("272.22")
    assert idle.loc["storage", "monthly_savings"] == Decimal("240.00")


def volume_rows(namespace: str, pvc: str, tier: str, used: float, requested: float, count: int) -> list[dict]:
    return [
        {"hour": h, "cluster": "dc1", "namespace": namespace, "pvc": pvc, "tier": tier, "used": used,
         "requested": requested}
        for h in hours(START, count)
    ]  # fmt: skip


def test_volume_claims_are_judged_one_by_one_when_the_detail_is_known(catalog: Catalog) -> None:
    # Two 100 GiB hot claims: `logs` holds 5 GiB, `db` 90 GiB; the namespace as a whole uses 95/200 = 47.5 %,
    # above the 30 % threshold — only the per-claim view finds the empty one.
    rows = steady("cs-miniapp", "storage", 95.0, START, 100, tier="hot", requested=200.0)
    rows += steady("cs-miniapp", "pods", 2.0, START, 100)
    volumes = pd.DataFrame(
        volume_rows("cs-miniapp", "logs", "hot", 5.0, 100.0, 100)
        + volume_rows("cs-miniapp", "db", "hot", 90.0, 100.0, 100)
    )
    assert idle_of(rows, catalog).empty
    flagged = only(charge(usage_frame(rows), catalog, OCT, volumes=volumes).idle)
    assert (flagged["pvc"], flagged["reason"], flagged["basis"]) == ("logs", "volumes-underused", "requests")
    assert (flagged["allocated"], flagged["used_avg"], flagged["utilization"]) == (100, 5, Decimal("0.05"))
    assert flagged["idle_cost"] == Decimal("11.71")  # 95 GiB × 100 h × 0.90 / 730 = 11.712…
    assert flagged["recommended_allocation"] == Decimal(10)  # 5 × 1.2 = 6 → 10Gi
    assert flagged["monthly_savings"] == Decimal("81.00")  # 90 GiB × 0.90


def test_idle_totals_count_a_namespace_quota_once_over_its_claims(catalog: Catalog) -> None:
    # Quota 1000 GiB hot, two empty 100 GiB claims: the quota's idle money (1000 − 2) already holds the claims'.
    rows = steady("cs-miniapp", "storage", 2.0, START, 730, tier="hot", requested=200.0, allocated=1000.0)
    rows += steady("cs-miniapp", "pods", 1.0, START, 730)
    volumes = pd.DataFrame(
        volume_rows("cs-miniapp", "a", "hot", 1.0, 100.0, 730) + volume_rows("cs-miniapp", "b", "hot", 1.0, 100.0, 730)
    )
    idle = charge(usage_frame(rows), catalog, OCT, volumes=volumes).idle
    assert sorted(zip(idle["basis"], idle["pvc"], strict=True)) == [("quota", ""), ("requests", "a"), ("requests", "b")]
    quota = idle[idle["basis"] == "quota"].iloc[0]
    assert quota["idle_cost"] == Decimal("898.20")  # 998 GiB-months × 0.90
    assert idle_totals(idle, "CNY")[0] == Decimal("898.20")


def test_an_allocation_below_a_nano_unit_is_not_judged_and_does_not_crash(catalog: Catalog) -> None:
    # A quota of a few bytes of storage (a typo in bytes for GiB) is > 0 as a float, 0 in exact nano GiB.
    rows = steady("di-api", "storage", 0.0, START, 48, tier="hot", allocated=2e-10)
    rows += steady("di-api", "cpu", 0.0, START, 48, allocated=4.0) + steady("di-api", "pods", 1.0, START, 48)
    idle = idle_of(rows, catalog)
    assert idle["resource"].tolist() == ["cpu"]
