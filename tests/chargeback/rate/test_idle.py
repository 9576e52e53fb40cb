"""Idle allocations: flags, idle money (capacity held, what the unit pays) and safe right-sizing from hand-built
frames (example rate card: cpu 0.24/core-hour, memory 0.032/GiB-hour, cold storage 0.30 then 0.24 per GiB-month
from 2026-10-15; usage billing; idle.min_history_hours 168)."""

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
from pool_catalog.errors import CatalogError
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.usage_frames import hours, steady, usage_frame

OCT = Period.parse("2026-10")
START = OCT.start


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(EXAMPLE_CATALOG)


@pytest.fixture(scope="module")
def day_history(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The example catalog advising after a day of history (the hand-built frames below are 100 hours)."""
    root = copy_example(tmp_path_factory.mktemp("idle"))
    edit_yaml(root / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_history_hours", 24))
    return load_catalog(root)


def idle_of(rows: list[dict], catalog: Catalog, **kwargs: object) -> pd.DataFrame:
    return charge(usage_frame(rows), catalog, OCT, **kwargs).idle


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
    recommended = recommend(resource, Decimal(p95), Decimal(0), 0.2)
    assert recommended == Decimal(expected)
    assert recommended >= Decimal(p95)


def test_underused_quota_is_flagged_with_the_capacity_it_holds_and_no_bill_under_usage_billing(
    catalog: Catalog,
) -> None:
    rows = steady("di-api", "cpu", 2.0, START, OCT.hours, requested=2.0, allocated=24.0)
    rows += steady("di-api", "pods", 3.0, START, OCT.hours)
    flagged = only(idle_of(rows, catalog))
    assert flagged["business_unit"] == "data-insight" and flagged["reason"] == "quota-underused"
    assert (flagged["allocated"], flagged["used_avg"], flagged["used_peak"]) == (Decimal(24), Decimal(2), Decimal(2))
    assert flagged["utilization"] == Decimal("0.0833")
    assert flagged["idle_value"] == flagged["capacity_held"] == Decimal("3928.32")  # (24 − 2) cores × 744 h × 0.24
    assert flagged["unit_pays"] == Decimal("0.00")  # usage billing: the unit is billed its 2 cores, not the quota
    assert flagged["requests_peak"] == Decimal(2)
    assert flagged["recommended_allocation"] == Decimal("2.5")  # max(2 used, 2 requested) × 1.2 = 2.4 → 2.5 cores
    assert (
        flagged["advice_basis"]  # no 5-minute peak in these rows: the advice says what stood in for it
        == "p99 of hourly average cpu (no peak collected) 2 cores, floor = peak requests 2 cores, "
        "+20 % headroom"
    )


def test_under_request_billing_the_unit_pays_its_unused_requests_and_the_quota_holds_the_capacity(
    catalog: Catalog,
) -> None:
    rows = steady("di-api", "cpu", 1.0, START, OCT.hours, requested=8.0, allocated=24.0)
    rows += steady("di-api", "pods", 3.0, START, OCT.hours)
    idle = idle_of(rows, catalog, billing_mode="request").set_index("basis")
    # The unit is billed 8 requested cores an hour: 7 of them unused.
    assert idle.loc["requests", "unit_pays"] == idle.loc["requests", "idle_value"] == Decimal("1249.92")  # 7×744×0.24
    assert idle.loc["quota", "unit_pays"] == Decimal("0.00")  # no mode bills a quota
    # Capacity is counted once per allocation, on its quota: the requests row is information.
    assert idle.loc["quota", "capacity_held"] == Decimal("4106.88")  # 23 × 744 × 0.24
    assert idle.loc["requests", "capacity_held"] == Decimal("0.00")
    assert idle_totals(idle.reset_index(), "CNY") == (Decimal("1249.92"), Decimal("4106.88"))
    usage_idle = idle_of(rows, catalog).set_index("basis")
    assert (usage_idle["unit_pays"] == 0).all() and idle_totals(usage_idle.reset_index(), "CNY")[1] == Decimal(
        "4106.88"
    )


def test_a_bursty_namespace_is_sized_for_its_5_minute_peaks_not_its_hourly_average(catalog: Catalog) -> None:
    # A weekly bench run: 0.3 cores on average, 12 hours a month at 20 cores for 5-minute stretches.
    bursts = {START + dt.timedelta(hours=h) for h in range(60, 744, 62)}
    rows = [
        row
        for hour in hours(START, OCT.hours)
        for row in steady("es-testbed", "cpu", 0.3, hour, 1, allocated=48.0, used_peak=20.0 if hour in bursts else 0.4)
    ]
    rows += steady("es-testbed", "pods", 1.0, START, OCT.hours)
    flagged = only(idle_of(rows, catalog))
    assert flagged["used_avg"] == Decimal("0.3")
    assert flagged["used_peak"] > 10 * flagged["used_avg"]  # the 99th percentile of the hourly peaks is a burst
    assert flagged["used_peak"] == Decimal(20)  # 12 of 744 hours (1.6 %) burst: inside the top 1 %
    assert flagged["recommended_allocation"] == Decimal(24)  # 20 × 1.2
    assert flagged["advice_basis"] == (
        "p99 of hourly peak 5-minute CPU 20 cores, floor = peak requests 0 cores, +20 % headroom"
    )
    assert flagged["recommended_allocation"] > flagged["used_avg"] * Decimal("1.2")


def test_a_quota_is_never_advised_below_the_peak_of_the_pods_requests(catalog: Catalog) -> None:
    # Pods request 25 cores for the bench hours and use little of it: the quota must still admit them.
    rows = [
        row
        for h, hour in enumerate(hours(START, OCT.hours))
        for row in steady(
            "es-testbed",
            "cpu",
            0.2,
            hour,
            1,
            allocated=48.0,
            requested=1.0,
            requested_peak=25.0 if h % 168 == 60 else 1.0,
            used_peak=0.5,
        )
    ]
    rows += steady("es-testbed", "pods", 1.0, START, OCT.hours)
    idle = idle_of(rows, catalog).set_index("basis")
    quota = idle.loc["quota"]
    assert quota["requests_peak"] == Decimal(25)
    assert quota["recommended_allocation"] == Decimal(30)  # max(0.5 used, 25 requested) × 1.2
    assert "floor = peak requests 25 cores" in quota["advice_basis"]
    # The requests row is advice on the requests themselves: sized by use (a lower request is always admitted).
    assert idle.loc["requests", "requests_peak"] is None
    assert idle.loc["requests", "recommended_allocation"] == Decimal("0.6")  # 0.5 × 1.2


def test_memory_takes_the_highest_peak_and_a_short_history_gets_no_advice(catalog: Catalog) -> None:
    rows = steady("di-api", "memory", 4.0, START, 100, allocated=96.0, used_peak=6.0)
    rows += steady("di-api", "memory", 4.0, START + dt.timedelta(hours=100), 100, allocated=96.0, used_peak=30.0)
    rows += steady("di-api", "pods", 1.0, START, 200)
    flagged = only(idle_of(rows, catalog))  # 200 h ≥ 168 h
    assert flagged["used_peak"] == Decimal(30)  # every hour's peak, not a percentile: one OOM is one too many
    assert flagged["recommended_allocation"] == Decimal(48)  # 30 × 1.2 = 36 → 16Gi steps above 32
    short = only(idle_of(rows[:150] + steady("di-api", "pods", 1.0, START, 150), catalog))  # 150 h < 168 h
    assert short["recommended_allocation"] is None
    assert short["advice_basis"] == "no advice: 150 h measured, fewer than the 168 h rates.idle asks"
    assert short["capacity_held"] == Decimal("441.60")  # still flagged and counted: 92 GiB × 150 h × 0.032


def test_min_history_hours_out_of_range_names_the_file_and_field(tmp_path) -> None:
    root = copy_example(tmp_path)
    edit_yaml(root / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_history_hours", 0))
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    message = str(raised.value)
    assert "rates.yaml" in message and "min_history_hours" in message


def test_p95_drives_the_recommendation(day_history: Catalog) -> None:
    rows = steady("di-api", "cpu", 1.0, START, 90, allocated=8.0)
    rows += steady("di-api", "cpu", 3.0, START + dt.timedelta(hours=90), 10, allocated=8.0)
    rows += steady("di-api", "pods", 1.0, START, 100)
    flagged = only(idle_of(rows, day_history))
    assert flagged["used_avg"] == Decimal("1.2") and flagged["used_peak"] == Decimal(3)  # p99 of the hours
    assert flagged["utilization"] == Decimal("0.15")
    assert flagged["recommended_allocation"] == Decimal(4)  # 3 × 1.2 = 3.6 → 4 cores
    assert flagged["idle_value"] == Decimal("163.20")  # (8 × 100 − 120) core-h × 0.24


def test_well_used_allocations_and_short_lived_ones_are_not_flagged(catalog: Catalog) -> None:
    rows = steady("di-api", "cpu", 8.0, START, 48, requested=10.0, allocated=24.0)  # 33 % of quota, 80 % of requests
    rows += steady("di-batch", "cpu", 0.0, START, 23, allocated=96.0)  # idle, but only 23 h < min_hours 24
    rows += steady("di-api", "pods", 2.0, START, 48) + steady("di-batch", "pods", 1.0, START, 23)
    assert idle_of(rows, catalog).empty


def test_requests_and_volume_claims_are_judged_too(day_history: Catalog) -> None:
    rows = steady("cs-miniapp", "cpu", 0.5, START, 100, requested=4.0)
    rows += steady("cs-miniapp", "storage", 20.0, START, 100, tier="hot", requested=200.0)
    rows += steady("cs-miniapp", "pods", 2.0, START, 100)
    idle = idle_of(rows, day_history).set_index("resource")
    assert idle.loc["cpu", "reason"] == "requests-underused" and idle.loc["cpu", "basis"] == "requests"
    assert idle.loc["cpu", "idle_value"] == Decimal("84.00")  # 3.5 cores × 100 h × 0.24
    assert idle.loc["cpu", "capacity_held"] == Decimal("84.00")  # no quota: the requests hold the capacity
    assert idle.loc["cpu", "recommended_allocation"] == Decimal("0.6")
    assert idle.loc["storage", "reason"] == "volumes-underused"
    assert idle.loc["storage", "recommended_allocation"] == Decimal(30)  # 20 GiB × 1.2 → 30Gi
    assert idle.loc["storage", "idle_value"] == Decimal("22.19")  # 180 GiB × 100 h × 0.90 / 730 = 22.19…


def test_namespace_without_pods_and_idle_cost_across_a_price_change(catalog: Catalog) -> None:
    rows = steady("pf-credit", "cpu", 0.0, START, OCT.hours, allocated=16.0)
    rows += steady("pf-credit", "storage", 0.0, START, OCT.hours, tier="cold", allocated=1000.0)
    idle = idle_of(rows, catalog).set_index("resource")
    assert idle.loc["cpu", "reason"] == "no-running-pods"
    assert idle.loc["cpu", "recommended_allocation"] == Decimal(0)
    assert idle.loc["cpu", "capacity_held"] == Decimal("2856.96")  # 16 × 744 × 0.24
    assert idle.loc["storage", "reason"] == "quota-underused"  # volumes hold data without pods
    # 1000 GiB × (336 h × 0.30 + 408 h × 0.24) / 730 = 272.219…
    assert idle.loc["storage", "capacity_held"] == Decimal("272.22")


def volume_rows(namespace: str, pvc: str, tier: str, used: float, requested: float, count: int) -> list[dict]:
    return [
        {"hour": h, "cluster": "dc1", "namespace": namespace, "pvc": pvc, "tier": tier, "used": used,
         "requested": requested}
        for h in hours(START, count)
    ]  # fmt: skip


def test_volume_claims_are_judged_one_by_one_when_the_detail_is_known(day_history: Catalog) -> None:
    # Two 100 GiB hot claims: `logs` holds 5 GiB, `db` 90 GiB; the namespace as a whole uses 95/200 = 47.5 %,
    # above the 30 % threshold — only the per-claim view finds the empty one.
    rows = steady("cs-miniapp", "storage", 95.0, START, 100, tier="hot", requested=200.0)
    rows += steady("cs-miniapp", "pods", 2.0, START, 100)
    volumes = pd.DataFrame(
        volume_rows("cs-miniapp", "logs", "hot", 5.0, 100.0, 100)
        + volume_rows("cs-miniapp", "db", "hot", 90.0, 100.0, 100)
    )
    assert idle_of(rows, day_history).empty
    flagged = only(charge(usage_frame(rows), day_history, OCT, volumes=volumes).idle)
    assert (flagged["pvc"], flagged["reason"], flagged["basis"]) == ("logs", "volumes-underused", "requests")
    assert (flagged["allocated"], flagged["used_avg"], flagged["utilization"]) == (100, 5, Decimal("0.05"))
    assert flagged["idle_value"] == flagged["capacity_held"] == Decimal("11.71")  # 95 GiB × 100 h × 0.90 / 730
    assert flagged["recommended_allocation"] == Decimal(10)  # 5 × 1.2 = 6 → 10Gi


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
    assert quota["capacity_held"] == Decimal("898.20")  # 998 GiB-months × 0.90
    claims = idle[idle["basis"] == "requests"]
    assert (claims["capacity_held"] == 0).all() and (claims["idle_value"] > 0).all()  # information rows
    assert idle_totals(idle, "CNY") == (Decimal("0.00"), Decimal("898.20"))
    assert sum(idle["capacity_held"]) == Decimal("898.20")  # the CSV's column sums to the total as it is


def test_an_allocation_below_a_nano_unit_is_not_judged_and_does_not_crash(catalog: Catalog) -> None:
    # A quota of a few bytes of storage (a typo in bytes for GiB) is > 0 as a float, 0 in exact nano GiB.
    rows = steady("di-api", "storage", 0.0, START, 48, tier="hot", allocated=2e-10)
    rows += steady("di-api", "cpu", 0.0, START, 48, allocated=4.0) + steady("di-api", "pods", 1.0, START, 48)
    idle = idle_of(rows, catalog)
    assert idle["resource"].tolist() == ["cpu"]
