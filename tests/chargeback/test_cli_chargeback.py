"""`chargeback invoice` and `chargeback idle` end to end: synthetic scenario → real Prometheus → reports,
checked to the cent against the scenario's closed-form usage; and every user error is one message with
exit status 2, never a traceback."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.usage import storage_tiers
from chargeback.errors import ChargebackError
from chargeback.run import clusters_to_collect
from pool_catalog import load_catalog
from pool_catalog.numbers import format_money
from pool_catalog.pricing import round_money
from pool_catalog.resources import spec_of
from pool_demo.local_prometheus import free_port
from pool_demo.synthetic import (
    Scenario,
    expected_usage,
)
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml, two_cluster_catalog
from tests.support.prometheus import ScenarioServer, invoice_args

UNITS = ("community-services", "data-insight", "edge-security", "platform", "unallocated")
OWNER = {"di-api": "data-insight", "di-batch": "data-insight", "cs-miniapp": "community-services"}
OWNER |= {"sandbox-x": "unallocated"}
WITH_REQUEST = {"cpu", "memory", "gpu", "storage", "load_balancer"}

runner = CliRunner()


def expected_amounts(scenario: Scenario, mode: str) -> dict[tuple[str, str, str], Decimal]:
    """(namespace, resource, tier) → amount at the 2026-01-01 prices, from the scenario's closed form."""
    catalog = load_catalog(EXAMPLE_CATALOG)
    version = catalog.rates.sorted_versions()[0]
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    for (_, namespace, resource, tier), values in expected_usage(scenario, storage_tiers(catalog, "dc1")).items():
        if resource == "pods":
            continue
        billed = values["used"]
        if mode == "request" and resource in WITH_REQUEST:
            billed = values["requested"]
        totals[(namespace, resource, tier)] += billed
    amounts = {}
    for (namespace, resource, tier), quantity in totals.items():
        price = version.price_of(resource, tier)
        billed = (Decimal(repr(float(quantity))) / spec_of(resource).price_units[price.unit]).quantize(
            Decimal("1e-9"), rounding=ROUND_HALF_EVEN
        )
        amounts[(namespace, resource, tier)] = round_money(billed * price.price, "CNY")
    return amounts


@pytest.mark.prometheus
@pytest.mark.parametrize("mode", ["usage", "request"])
def test_invoice_end_to_end_matches_closed_form(priced_prometheus: ScenarioServer, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "2026-10"
    result = runner.invoke(app, invoice_args(priced_prometheus.url, out, "--billing-mode", mode))
    assert result.exit_code == 0, result.output
    assert "wrote 15 files" in result.output
    expected = expected_amounts(priced_prometheus.scenario, mode)
    invoices = {unit: json.loads((out / "invoices" / f"{unit}.json").read_text(encoding="utf-8")) for unit in UNITS}
    measured: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for invoice in invoices.values():
        assert invoice["billing_mode"] == mode
        lines = [line for ns in invoice["namespaces"] for line in ns["lines"]]
        assert Decimal(invoice["total"]) == sum((Decimal(line["amount"]) for line in lines), Decimal(0))
        for ns in invoice["namespaces"]:
            for line in ns["lines"]:
                measured[(ns["namespace"], line["resource"], line["tier"])] += Decimal(line["amount"])
    # Own namespaces: every (namespace, resource, tier) to the cent on its owner's invoice.
    for key, amount in expected.items():
        namespace = key[0]
        if namespace in OWNER:
            assert measured[key] == amount, key
            owner_lines = [ns for ns in invoices[OWNER[namespace]]["namespaces"] if ns["namespace"] == namespace]
            assert owner_lines, namespace
    # The shared ingress-nginx is split between the units, losing no cent.
    for key in [k for k in expected if k[0] == "ingress-nginx"]:
        assert measured[key] == expected[key], key
    pool_total = sum((Decimal(i["total"]) for i in invoices.values()), Decimal(0))
    assert pool_total == sum(expected.values(), Decimal(0))
    assert json.loads((out / "invoices" / "data-insight.json").read_text(encoding="utf-8"))["coverage"][
        "complete"
    ] is False  # fmt: skip


@pytest.mark.prometheus
def test_rerun_over_the_same_prometheus_is_byte_identical(priced_prometheus: ScenarioServer, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert runner.invoke(app, invoice_args(priced_prometheus.url, first)).exit_code == 0
    assert runner.invoke(app, invoice_args(priced_prometheus.url, second)).exit_code == 0

    def published(out: Path) -> list[Path]:
        return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and ".reports" not in p.parts)

    files = published(first)
    assert files == published(second)
    for relative in [*files, Path(".reports/current/manifest.json")]:
        assert (first / relative).read_bytes() == (second / relative).read_bytes(), relative


@pytest.mark.prometheus
def test_unknown_storage_class_stops_the_run_and_writes_nothing(
    scenario_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    out = tmp_path / "reports"
    result = runner.invoke(app, invoice_args(scenario_prometheus.url, out))
    assert result.exit_code == 2
    assert "namespace 'sandbox-x' (cluster dc1) has volumes of storage class 'local-path'" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.prometheus
def test_idle_prints_flagged_allocations(priced_prometheus: ScenarioServer, tmp_path: Path) -> None:
    catalog = copy_example(tmp_path)
    edit_yaml(catalog / "rates.yaml", lambda doc: doc["idle"].__setitem__("min_hours", 4))
    # fmt: off
    result = runner.invoke(
        app,
        ["idle", "--period", "2026-10", "--prometheus", priced_prometheus.url, "--catalog", str(catalog),
         "--cluster", "dc1", "--cluster-label", "cluster"],
        env={"COLUMNS": "250"},
    )
    # fmt: on
    assert result.exit_code == 0, result.output
    assert "di-batch" in result.output and "quota mostly unused" in result.output
    assert "hold pool capacity worth CNY" in result.output
    assert "the units pay CNY 0.00 of it (usage billing)" in result.output  # nothing billed for idle quota
    # Eight hours of history: fewer than rates.idle.min_history_hours, so no advice is given.
    assert "no advice: " in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "period '2026-13' has month 13"),
        (["--period", "Oct"], "write it as YYYY-MM"),
        (["--catalog", "/nonexistent/catalog"], "/nonexistent/catalog"),
        (["--header", "no-equals-sign"], "--header 'no-equals-sign' is not K=V"),
        (["--prometheus", "ftp://127.0.0.1"], "is not an http(s) URL"),
        (["--cluster", "dc9"], "--cluster 'dc9' is not in pool.yaml"),
        (["--bearer-token-file", "/nonexistent/token"], "--bearer-token-file"),
        (
            ["--basic-auth-user", "finance", "--basic-auth-password-file", "/nonexistent/pw"],
            "--basic-auth-password-file",
        ),
        (["--ca-bundle", "/nonexistent/ca.pem"], "point --ca-bundle at a PEM file"),
        (["--timeout", "0"], "timeout"),
        (["--chunk-hours", "0"], "--chunk-hours 0: give a positive number of hours"),
    ],
)
def test_user_errors_exit_2_without_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    base = {"--period": "2026-10", "--prometheus": f"http://127.0.0.1:{free_port()}", "--catalog": str(EXAMPLE_CATALOG)}
    flags = dict(base)
    extra = []
    for flag, value in zip(args[::2], args[1::2], strict=True):
        if flag in flags:
            flags[flag] = value
        else:
            extra += [flag, value]
    command = ["invoice", *[x for pair in flags.items() for x in pair], "--out", str(tmp_path / "out"), *extra]
    result = runner.invoke(app, command, terminal_width=250)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_unreachable_prometheus_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(
        app,
        ["idle", "--period", "2026-10", "--prometheus", url, "--catalog", str(EXAMPLE_CATALOG)],
        terminal_width=250,
    )
    assert result.exit_code == 2
    assert url in result.output and "Traceback" not in result.output


def test_several_clusters_need_a_cluster_label(tmp_path: Path) -> None:
    catalog = load_catalog(two_cluster_catalog(tmp_path))
    with pytest.raises(ChargebackError, match=r"pool.yaml has 2 clusters \(dc1, dc2\): pass --cluster-label"):
        clusters_to_collect(catalog, None, None)
    assert clusters_to_collect(catalog, None, "cluster") == ["dc1", "dc2"]
    assert clusters_to_collect(catalog, "dc2", None) == ["dc2"]


@pytest.mark.prometheus
def test_one_prometheus_with_two_clusters(priced_prometheus: ScenarioServer, tmp_path: Path) -> None:
    """dc2 runs a namespace named di-api too; the catalog's di-api lives in dc1, so dc2's goes to unallocated."""
    catalog = two_cluster_catalog(tmp_path)
    both, single = tmp_path / "both", tmp_path / "single"
    base = ["invoice", "--period", "2026-10", "--prometheus", priced_prometheus.url, "--catalog", str(catalog)]
    base += ["--cluster-label", "cluster"]
    assert runner.invoke(app, [*base, "--out", str(both)]).exit_code == 0
    assert runner.invoke(app, [*base, "--out", str(single), "--cluster", "dc1"]).exit_code == 0

    def invoice(directory: Path, unit: str) -> dict:
        return json.loads((directory / "invoices" / f"{unit}.json").read_text(encoding="utf-8"))

    assert invoice(both, "data-insight")["total"] == invoice(single, "data-insight")["total"]
    unallocated = {(ns["cluster"], ns["namespace"]) for ns in invoice(both, "unallocated")["namespaces"]}
    assert unallocated == {("dc1", "sandbox-x"), ("dc2", "di-api")}
    # 100 cores for the 7 scraped hours at 0.24: the decoy is billed, to nobody's unit.
    dc2 = next(ns for ns in invoice(both, "unallocated")["namespaces"] if ns["cluster"] == "dc2")
    assert any(line["resource"] == "cpu" and Decimal(line["amount"]) > 100 for line in dc2["lines"])


@pytest.mark.prometheus
def test_invoice_table_writes_amounts_like_the_reports_and_csv_keeps_machine_text(
    priced_prometheus: ScenarioServer, tmp_path: Path
) -> None:
    """The terminal table's totals read as on the HTML invoices (thousands separated, the currency's places);
    `--format csv` prints the invoice JSON's own text, which a spreadsheet or script reads as a number."""
    table = runner.invoke(app, invoice_args(priced_prometheus.url, tmp_path / "a"))
    assert table.exit_code == 0, table.output
    as_csv = runner.invoke(app, [*invoice_args(priced_prometheus.url, tmp_path / "b"), "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    rows = {row["Business unit"]: row for row in csv.DictReader(io.StringIO(as_csv.stdout))}
    totals = []
    for unit in UNITS:
        invoice = json.loads((tmp_path / "a" / "invoices" / f"{unit}.json").read_text(encoding="utf-8"))
        name, total = invoice["business_unit"]["display_name"], invoice["total"]
        totals.append(Decimal(total))
        assert rows[name]["Total (CNY)"] == total  # machine text: no separator
        html = (tmp_path / "a" / "invoices" / f"{unit}.html").read_text(encoding="utf-8")
        assert format_money(total, "CNY") in html
        line = next(line for line in table.stdout.splitlines() if invoice["invoice_number"] in line)
        assert f" {format_money(total, 'CNY')} " in f" {line} "
    pool_total = sum(totals, Decimal(0))
    assert format_money(pool_total, "CNY") in next(line for line in table.stdout.splitlines() if "Pool total" in line)
    assert rows["Pool total"]["Total (CNY)"] == str(pool_total)
