"""The billing time zone (pool.yaml `billing.time_zone`): a month is the zone's calendar month, as UTC instants.

End to end: a scenario that runs across both edges of October 2026 in Asia/Shanghai (UTC+08:00) and of October
in UTC is served by a real Prometheus; `chargeback invoice --period 2026-10` with a Shanghai catalog must bill
what the scenario's closed form (`pool_demo.synthetic.expected_usage`) gives over the hours of
[2026-09-30T16:00Z, 2026-10-31T16:00Z), and the UTC catalog what it gives over October in UTC — the two differ,
so billing cannot pass by ignoring the zone. Around it: the period arithmetic (DST months of Europe/Berlin,
refused half-hour zones), the catalog's check of the field, and local days in the daily charts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.doctor import default_period
from chargeback.collect.prometheus import PrometheusSettings
from chargeback.collect.usage import storage_tiers
from chargeback.errors import LedgerError, PeriodError
from chargeback.exporter import ExporterSource, MonthToDateCollector
from chargeback.grouping import bins_of
from chargeback.ledger.close import close_month
from chargeback.period import Period, iso_utc
from chargeback.rate.north_star import period_query
from pool_catalog import CatalogError, load_catalog
from pool_catalog.models import Price
from pool_catalog.pricing import round_money
from pool_catalog.resources import spec_of
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import GIB, MIB, Container, Pod, Quota, Scenario, expected_usage, write_openmetrics
from tests.support.catalog_edit import copy_example, edit_yaml
from tests.support.prometheus import require_prometheus

SHANGHAI = "Asia/Shanghai"
UTC = dt.UTC


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{text}+00:00")


# ------------------------------------------------------------------ the period


def test_a_shanghai_month_is_its_local_month_as_utc_instants() -> None:
    period = Period.parse("2026-10", SHANGHAI)
    assert (iso_utc(period.start), iso_utc(period.end)) == ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    assert period.hours == 744 and period.display == "2026-10 (Asia/Shanghai)" and period.label == "2026-10"
    assert iso_utc(period.previous.start) == "2026-08-31T16:00:00Z"
    # The default stays UTC, to the instant.
    assert (Period.parse("2026-10").start, Period.parse("2026-10").end) == (
        utc("2026-10-01T00:00"),
        utc("2026-11-01T00:00"),
    )
    assert Period.parse("2026-10").display == "2026-10"
    # At 2026-09-30T20:00Z it is already October in Shanghai: four hours of it are to date.
    so_far = Period.month_to_date(utc("2026-09-30T20:30"), SHANGHAI)
    assert (so_far.label, so_far.hours, so_far.month_hours) == ("2026-10", 4, 744)
    with pytest.raises(PeriodError, match=r"no whole hour of 2026-10 \(Asia/Shanghai\)"):
        Period.month_to_date(utc("2026-09-30T16:40"), SHANGHAI)


def test_the_last_complete_month_is_the_zones() -> None:
    # 2026-10-31 20:00Z: still October in UTC, already November 1st 04:00 in Shanghai.
    now = utc("2026-10-31T20:00")
    assert default_period(now).label == "2026-09"
    assert default_period(now, SHANGHAI) == Period(2026, 10, time_zone=SHANGHAI)


def test_a_daylight_saving_month_has_the_hours_between_its_bounds() -> None:
    october = Period(2026, 10, time_zone="Europe/Berlin")  # summer time ends 2026-10-25 03:00 CEST
    assert (iso_utc(october.start), iso_utc(october.end)) == ("2026-09-30T22:00:00Z", "2026-10-31T23:00:00Z")
    assert october.hours == 745
    assert Period(2026, 3, time_zone="Europe/Berlin").hours == 743  # summer time begins 2026-03-29
    days = october.day_starts()
    assert len(days) == 31 and days[0] == (dt.date(2026, 10, 1), october.start)
    # Every hour of the month falls in its local day: 24 hours a day, 25 on the 25th.
    hours = pd.Series(pd.date_range(october.start, october.end, freq="h", inclusive="left"))
    edges = np.array([pd.Timestamp(first).as_unit("ns").value for _, first in days])
    per_day = np.bincount(bins_of(hours, edges), minlength=31)
    assert per_day[24] == 25 and set(np.delete(per_day, 24)) == {24}


def test_the_north_star_range_covers_the_zones_month() -> None:
    query, at = period_query("sum(increase(x[$__range]))", Period(2026, 10, time_zone="Europe/Berlin"), "2.42.0")
    assert query == f"sum(increase(x[{745 * 3600 * 1000 - 1}ms]))"  # 745 hours, closed range
    assert at == utc("2026-10-31T22:59:59.999")


def test_a_zone_whose_months_split_an_hour_is_refused() -> None:
    with pytest.raises(PeriodError, match=r"Asia/Kolkata is UTC\+05:30 .* begin at 18:30 UTC: usage is billed on"):
        Period(2026, 10, time_zone="Asia/Kolkata")
    with pytest.raises(PeriodError, match="'Mars/Olympus' is not a time zone: write an IANA name"):
        Period.parse("2026-10", "Mars/Olympus")


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("Asia/Shangai", "'Asia/Shangai' is not a time zone: write an IANA name such as Asia/Shanghai"),
        ("Asia/Kolkata", "Asia/Kolkata is UTC+05:30 at the start of 2000-01, so its month would begin at 18:30 UTC"),
    ],
)
def test_the_catalog_names_file_field_and_line_of_a_bad_zone(tmp_path: Path, zone: str, message: str) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "pool.yaml", lambda doc: doc.insert(0, "billing", {"time_zone": zone}))
    with pytest.raises(CatalogError) as raised:
        load_catalog(catalog)
    (finding,) = raised.value.findings
    assert finding.file.endswith("pool.yaml") and finding.line and finding.field == "billing.time_zone"
    assert message in str(raised.value)


# ------------------------------------------------------------------ end to end on a real Prometheus

APP = Container("app", cpu_cores=1.5, memory_bytes=2 * GIB, cpu_request=2, memory_request=4 * GIB)
WEB = Container("web", cpu_cores=1, memory_bytes=1 * GIB, cpu_request=1, memory_request=1 * GIB)
WORKER = Container("worker", cpu_cores=4, memory_bytes=8 * GIB, cpu_request=4, memory_request=8 * GIB)


def straddling_scenario() -> Scenario:
    """Cluster dc1 scraped 2026-09-30 12:00Z – 10-01 04:00Z and 10-31 12:00Z – 20:00Z, nothing in between.

    Shanghai's October is [09-30 16:00Z, 10-31 16:00Z), UTC's [10-01 00:00Z, 11-01 00:00Z): di-api's api-0 runs
    throughout (12 + 4 hours of Shanghai's October, 4 + 8 of UTC's); cs-miniapp's web-0 runs from Shanghai's
    October 1st 02:00 to 10-31 14:20Z; di-batch's etl-early only in September everywhere, etl-late only after
    Shanghai's October (in UTC's). Pods start and stop at :22, half-way between the cAdvisor scrapes."""
    return Scenario(
        start=utc("2026-09-30T12:00"),
        end=utc("2026-10-31T20:00"),
        gaps=[(utc("2026-10-01T04:00"), utc("2026-10-31T12:00"))],
        labels={"cluster": "dc1"},
        pods=[
            Pod("di-api", "api-0", (APP,), egress_bytes_per_second=1 * MIB),
            Pod("cs-miniapp", "web-0", (WEB,), start=utc("2026-09-30T18:00:22"), end=utc("2026-10-31T14:20:22")),
            Pod("di-batch", "etl-early", (WORKER,), end=utc("2026-09-30T15:20:22")),
            Pod("di-batch", "etl-late", (WORKER,), start=utc("2026-10-31T16:40:22")),
        ],
        quotas=[
            Quota(namespace, namespace, {"requests.cpu": 32, "requests.memory": 128 * GIB, "pods": 100})
            for namespace in ("di-api", "di-batch", "cs-miniapp")
        ],
    )


@pytest.fixture(scope="module")
def straddling(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Scenario]]:
    require_prometheus()
    workdir = tmp_path_factory.mktemp("time-zone-prometheus")
    scenario = straddling_scenario()
    write_openmetrics(workdir / "scenario.om", [scenario])
    backfill(workdir / "scenario.om", workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as server:
        yield server.url, scenario


def oracle(scenario: Scenario, catalog_dir: Path, period: Period) -> dict[tuple[str, str], Decimal]:
    """(namespace, resource) → amount billed for the closed-form use in the period's hours: a line per run of
    hours at one price (a rate version that keeps the line's price does not split it), each rounded once."""
    catalog = load_catalog(catalog_dir)
    hourly: dict[tuple[str, str, str], dict[dt.datetime, float]] = defaultdict(dict)
    for (hour, namespace, resource, tier), values in expected_usage(scenario, storage_tiers(catalog, "dc1")).items():
        if resource != "pods" and period.start <= hour < period.end:
            hourly[(namespace, resource, tier)][hour] = values["used"]
    amounts: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for (namespace, resource, tier), used in hourly.items():
        runs: list[tuple[Price, float]] = []  # (price, quantity) per run of hours at one price
        for hour in sorted(used):
            price = catalog.rates.version_at(hour).price_of(resource, tier)
            if runs and runs[-1][0] == price:
                runs[-1] = (price, runs[-1][1] + used[hour])
            else:
                runs.append((price, used[hour]))
        for price, quantity in runs:
            billed = (Decimal(repr(quantity)) / spec_of(resource).price_units[price.unit]).quantize(
                Decimal("1e-9"), rounding=ROUND_HALF_EVEN
            )
            amounts[(namespace, resource)] += round_money(billed * price.price, "CNY")
    return {key: amount for key, amount in amounts.items() if amount}


def bill(url: str, catalog: Path, out: Path) -> dict[str, dict]:
    """`chargeback invoice --period 2026-10` into `out`; the invoices as JSON by unit."""
    args = ["invoice", "--period", "2026-10", "--prometheus", url, "--catalog", str(catalog), "--out", str(out),
            "--cluster", "dc1", "--cluster-label", "cluster"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in (out / "invoices").glob("*.json")}


def billed(invoices: dict[str, dict]) -> dict[tuple[str, str], Decimal]:
    amounts: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for invoice in invoices.values():
        for section in invoice["namespaces"]:
            for line in section["lines"]:
                amounts[(section["namespace"], line["resource"])] += Decimal(line["amount"])
    return {key: amount for key, amount in amounts.items() if amount}


@pytest.mark.prometheus
def test_the_shanghai_month_bills_the_closed_form_of_its_local_month(
    straddling: tuple[str, Scenario], tmp_path: Path
) -> None:
    url, scenario = straddling
    shanghai, in_utc = copy_example(tmp_path / "shanghai"), copy_example(tmp_path / "utc")
    edit_yaml(shanghai / "pool.yaml", lambda doc: doc.insert(0, "billing", {"time_zone": SHANGHAI}))
    local, plain = bill(url, shanghai, tmp_path / "out-shanghai"), bill(url, in_utc, tmp_path / "out-utc")

    expected_local = oracle(scenario, shanghai, Period.parse("2026-10", SHANGHAI))
    expected_utc = oracle(scenario, in_utc, Period.parse("2026-10"))
    # Exact to the cent, line by line, in both zones; and the zones bill different months of the same data.
    assert billed(local) == expected_local
    assert billed(plain) == expected_utc
    assert expected_local != expected_utc
    assert ("di-batch", "cpu") in expected_utc and ("di-batch", "cpu") not in expected_local  # etl-late
    assert expected_local[("di-api", "cpu")] > expected_utc[("di-api", "cpu")]  # 16 hours against 12

    invoice = local["data-insight"]
    assert (invoice["period"], invoice["time_zone"]) == ("2026-10", SHANGHAI)
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    assert "time_zone" not in plain["data-insight"]  # UTC invoices keep their bytes

    # FOCUS: the billing period is the local month's instants; every charge period lies inside it.
    with (tmp_path / "out-shanghai" / "focus.csv").open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    assert {(r["BillingPeriodStart"], r["BillingPeriodEnd"]) for r in rows} == {
        ("2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z")
    }
    assert min(r["ChargePeriodStart"] for r in rows) == "2026-09-30T16:00:00Z"
    assert max(r["ChargePeriodEnd"] for r in rows) == "2026-10-31T16:00:00Z"

    # The invoice shows the month in its zone, and its daily chart has Shanghai's days.
    page = (tmp_path / "out-shanghai" / "invoices" / "community-services.html").read_text(encoding="utf-8")
    assert '2026-10 (Asia/Shanghai): <time datetime="2026-09-30T16:00:00Z">2026-09-30 16:00</time>' in page
    assert '<th scope="col">Hours (UTC)</th>' in page and "Asia/Shanghai days" in page and "UTC days" not in page
    assert "10-01</text>" in page and "09-30</text>" not in page


@pytest.mark.prometheus
def test_the_exporter_bills_the_shanghai_month_to_date(straddling: tuple[str, Scenario], tmp_path: Path) -> None:
    url, scenario = straddling
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "pool.yaml", lambda doc: doc.insert(0, "billing", {"time_zone": SHANGHAI}))
    source = ExporterSource(catalog, PrometheusSettings(url=url, retries=0), cluster="dc1", cluster_label="cluster")
    # 2026-10-01 03:30Z is 11:30 on October 1st in Shanghai: eleven hours of its October have passed (in UTC, three).
    collector = MonthToDateCollector(source, clock=lambda: utc("2026-10-01T03:30"))
    assert collector.refresh() and collector.snapshot is not None
    period = collector.snapshot.period
    assert (iso_utc(period.start), iso_utc(period.end), period.hours, period.month_hours) == (
        "2026-09-30T16:00:00Z", "2026-10-01T03:00:00Z", 11, 744
    )  # fmt: skip
    expected: dict[str, Decimal] = defaultdict(Decimal)
    owner = {"di-api": "data-insight", "di-batch": "data-insight", "cs-miniapp": "community-services"}
    for (namespace, _), amount in oracle(scenario, catalog, period).items():
        expected[owner[namespace]] += amount
    family = next(f for f in collector.collect() if f.name == "resource_pool_business_unit_month_to_date_cost")
    measured = {s.labels["business_unit"]: s.value for s in family.samples if s.value}
    assert measured == {unit: float(amount) for unit, amount in expected.items()}


@pytest.mark.prometheus
def test_the_shanghai_month_closes_when_it_is_over_there(straddling: tuple[str, Scenario], tmp_path: Path) -> None:
    url, _ = straddling
    shanghai, in_utc = copy_example(tmp_path / "shanghai"), copy_example(tmp_path / "utc")
    edit_yaml(shanghai / "pool.yaml", lambda doc: doc.insert(0, "billing", {"time_zone": SHANGHAI}))
    now = utc("2026-10-31T17:00")  # November 1st, 01:00 in Shanghai; October 31st in UTC
    where = {"cluster": "dc1", "cluster_label": "cluster", "now": now}
    with pytest.raises(LedgerError, match=r"2026-10 ends at 2026-11-01T00:00:00Z, after now \(2026-10-31T17:00:00Z\)"):
        close_month("2026-10", in_utc, url, tmp_path / "out-utc", tmp_path / "utc.db", **where)
    closed = close_month("2026-10", shanghai, url, tmp_path / "out", tmp_path / "shanghai.db", **where)
    assert (closed.outcome, closed.period) == ("issued", "2026-10")
    issued = json.loads((tmp_path / "out" / "invoices" / "data-insight.json").read_text(encoding="utf-8"))
    assert (issued["period_start"], issued["period_end"], issued["time_zone"]) == (
        "2026-09-30T16:00:00Z", "2026-10-31T16:00:00Z", SHANGHAI
    )  # fmt: skip
