"""Capability calls billed end to end: a real Prometheus with the closed-form cluster, two Platform capability
namespaces running pods, and Istio call series (label sets of istio/proxy
testdata/metric/server_request_total.yaml.tmpl, see tests/chargeback/collect/test_calls.py) → `run_period` →
invoices, finance summary, CSV, FOCUS and the exporter's budget ratio, to the cent.

Calls in the 8 hours (each series grows by a fixed number of calls per 30 s scrape, 120 scrapes an hour):
identity (per_call 0.40 / 1,000): di-api 4,800, unknown callers 2,880; credit-scoring (per_call 2.00, bulk
0.80): di-api 1,920 + 960 bulk + 1,200 answered 503, es-testbed 960 (not declared); encryption
(cost_recovery): di-batch 3,840, cs-miniapp 960, pf-crypto itself 960, callers without namespace 1,920.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.calls import UNKNOWN_CALLER, calls_frame
from chargeback.collect.doctor import examine
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.exporter import snapshot_of
from chargeback.ledger.documents import (
    chargeback_lines,
    correction_lines,
    differences,
    month_in_force,
    note_number,
    note_total,
)
from chargeback.ledger.store import Document as LedgerDocument
from chargeback.ledger.store import Issue, Ledger
from chargeback.outputs.csv_tables import csv_records, csv_text
from chargeback.outputs.focus import (
    COLUMNS,
    COST_RECOVERY_METHOD,
    columns_of,
    correction_rows,
    focus_rows,
    relayout,
)
from chargeback.outputs.reports import report_files
from chargeback.period import Period
from chargeback.rate.capabilities import provider_costs
from chargeback.rate.documents import Invoice
from chargeback.rate.invoices import invoice_number
from chargeback.rate.result import Chargeback, charge
from chargeback.run import PeriodRun, run_period
from pool_catalog import load_catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import GIB, Container, Pod, closed_form_scenario, other_cluster_scenario, write_openmetrics
from tests.chargeback.collect.test_calls import ISTIO, counter
from tests.chargeback.outputs.test_focus_conformance import check_1_3_columns, check_columns, ratio_of
from tests.chargeback.rate.test_capabilities import row, with_rates
from tests.support.catalog_edit import EXAMPLE_CATALOG, copy_example, edit_yaml
from tests.support.focus_model import violations
from tests.support.prometheus import require_prometheus
from tests.support.usage_frames import steady, usage_frame

pytestmark = pytest.mark.prometheus

NOW = dt.datetime(2026, 10, 1, 8, 40, tzinfo=dt.UTC)
PERIOD = Period.month_to_date(NOW)  # 2026-10-01 00:00 – 08:00
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_prometheus()
    work = tmp_path_factory.mktemp("capability-billing")
    scenario = closed_form_scenario("dc1", with_unpriced_storage=False)
    # The providers run something, so cost_recovery has a cost to recover.
    scenario.pods += [
        Pod("pf-crypto", "kms-0", (Container("kms", 0.5, 1 * GIB, cpu_request=1, memory_request=2 * GIB),)),
        Pod("pf-identity", "identity-0", (Container("identity", 1.0, 2 * GIB, cpu_request=2, memory_request=4 * GIB),)),
    ]
    extra = [("istio_requests_total", "counter", "Requests.", labels, counter(rate)) for labels, rate in ISTIO]
    write_openmetrics(work / "scenario.om", [scenario, other_cluster_scenario("dc2")], extra)
    backfill(work / "scenario.om", work / "tsdb")
    with LocalPrometheus(work / "tsdb") as server:
        yield server.url


def bill(prometheus: str, catalog: Path) -> PeriodRun:
    return run_period(PERIOD, catalog, prometheus, cluster="dc1", cluster_label="cluster", now=NOW)


@pytest.fixture(scope="module")
def per_call(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Chargeback:
    return bill(prometheus, copy_example(tmp_path_factory.mktemp("catalog"))).chargeback


@pytest.fixture(scope="module")
def switched(prometheus: str, tmp_path_factory: pytest.TempPathFactory) -> Chargeback:
    """The same month with identity switched from per_call to cost_recovery in the rate card."""
    catalog = copy_example(tmp_path_factory.mktemp("switched"))

    def to_cost_recovery(rates: dict) -> None:
        entry = next(c for c in rates["capabilities"] if c["capability"] == "identity")
        entry["versions"] = [{"effective_from": "2026-01-01", "method": "cost_recovery"}]

    edit_yaml(catalog / "rates.yaml", to_cost_recovery)
    return bill(prometheus, catalog).chargeback


def invoices(chargeback: Chargeback) -> dict[str, Invoice]:
    return {inv.business_unit.id: inv for inv in chargeback.invoices}


def consumed(invoice: Invoice) -> dict[tuple[str, str, str], tuple[int, int, Decimal]]:
    assert invoice.capabilities_consumed is not None
    return {
        (line.capability, line.namespace, line.call_class): (line.calls, line.not_billable_calls, line.amount)
        for line in invoice.capabilities_consumed.lines
    }


def largest_remainder(cost: Decimal, weights: dict[str, int]) -> dict[str, Decimal]:
    """The oracle: exact shares floored to the cent, left-over cents to the largest remainders."""
    total = sum(weights.values())
    exact = {k: Fraction(cost) * w / total for k, w in weights.items()}
    floors = {k: (Decimal(v.numerator) / Decimal(v.denominator)).quantize(CENT, ROUND_FLOOR) for k, v in exact.items()}
    left = int((cost - sum(floors.values())) / CENT)
    for k in sorted(exact, key=lambda k: -(exact[k] - Fraction(floors[k])))[:left]:
        floors[k] += CENT
    return floors


def test_consumers_invoices_show_capabilities_consumed_to_the_cent(per_call: Chargeback) -> None:
    docs = invoices(per_call)
    crypto = provider_costs(per_call.lines)[("dc1", "pf-crypto")]
    assert crypto > 0
    parts = largest_remainder(crypto, {"di-batch": 3840, "cs-miniapp": 960, "pf-crypto": 960, UNKNOWN_CALLER: 1920})
    assert consumed(docs["data-insight"]) == {
        ("credit-scoring", "di-api", "bulk"): (960, 0, Decimal("0.77")),  # 0.768
        ("credit-scoring", "di-api", "default"): (1920, 1200, Decimal("3.84")),  # the 503 burst is not billed
        ("encryption", "di-batch", ""): (3840, 0, parts["di-batch"]),
        ("identity", "di-api", "default"): (4800, 0, Decimal("1.92")),
    }
    assert consumed(docs["community-services"]) == {("encryption", "cs-miniapp", ""): (960, 0, parts["cs-miniapp"])}
    edge = docs["edge-security"].capabilities_consumed
    assert edge is not None and [(line.capability, line.amount, line.declared) for line in edge.lines] == [
        ("credit-scoring", Decimal("1.92"), False)
    ]
    lines = {(line.capability, line.namespace): line for line in docs["data-insight"].capabilities_consumed.lines}
    assert lines[("identity", "di-api")].price_per_thousand == Decimal("0.40")
    assert lines[("identity", "di-api")].share is None
    assert lines[("encryption", "di-batch")].share == Decimal("0.500000000")
    assert lines[("encryption", "di-batch")].recovered_cost == crypto
    assert lines[("encryption", "di-batch")].price_per_thousand is None


def test_the_provider_is_credited_what_consumers_were_charged(per_call: Chargeback) -> None:
    docs = invoices(per_call)
    recovered = docs["platform"].recovered_from_consumers
    assert recovered is not None
    credits = {(line.capability, line.consumer_namespace, line.call_class): line for line in recovered.lines}
    charged = [line for inv in docs.values() if inv.capabilities_consumed for line in inv.capabilities_consumed.lines]
    assert sum(line.amount for line in charged) == -recovered.total > 0
    assert credits[("identity", "di-api", "default")].amount == Decimal("-1.92")
    # Shown, not billed: unknown callers (priced at 1.15 under per_call, charged to nobody) and the provider's own.
    unknown = credits[("identity", UNKNOWN_CALLER, "default")]
    assert (unknown.calls, unknown.amount, unknown.note) == (2880, Decimal("0.00"), unknown.note)
    assert "without a namespace" in unknown.note
    own = credits[("encryption", "pf-crypto", "")]
    assert (own.calls, own.amount) == (960, Decimal("0.00")) and "own calls" in own.note
    assert docs["platform"].capabilities_consumed is None  # Platform calls nobody else's capability


def test_invoice_total_is_resources_plus_consumed_minus_recovered_and_the_group_total_is_unchanged(
    per_call: Chargeback, switched: Chargeback
) -> None:
    for chargeback in (per_call, switched):
        docs = chargeback.invoices
        for inv in docs:
            resources = sum((ns.subtotal for ns in inv.namespaces), Decimal(0))
            extra = (inv.capabilities_consumed.total if inv.capabilities_consumed else 0) + (
                inv.recovered_from_consumers.total if inv.recovered_from_consumers else 0
            )
            assert inv.total == resources + extra, inv.business_unit.id
        # Money moves, it is never created: the group total is the infrastructure lines' total, exactly.
        assert sum(inv.total for inv in docs) == sum(chargeback.lines["amount"], Decimal(0))
        assert chargeback.finance_summary.total.actual == sum(chargeback.lines["amount"], Decimal(0))


def test_switching_identity_to_cost_recovery_moves_exactly_the_providers_cost(
    per_call: Chargeback, switched: Chargeback
) -> None:
    before, after = invoices(per_call), invoices(switched)
    identity = provider_costs(switched.lines)[("dc1", "pf-identity")]
    assert identity == provider_costs(per_call.lines)[("dc1", "pf-identity")] > 0
    parts = largest_remainder(identity, {"di-api": 4800, UNKNOWN_CALLER: 2880})
    di = consumed(after["data-insight"])
    assert di[("identity", "di-api", "")] == (4800, 0, parts["di-api"])
    # Data Insight pays its share of pf-identity's cost instead of 1.92 per-call; Platform is credited just that.
    moved = parts["di-api"] - Decimal("1.92")
    assert after["data-insight"].total - before["data-insight"].total == moved
    assert after["platform"].total - before["platform"].total == -moved
    for unit in ("community-services", "edge-security"):
        assert after[unit].total == before[unit].total
    # The consumers carry exactly the recovered cost but the unknown callers' share, which Platform keeps.
    lines = switched.capability_lines[switched.capability_lines["capability"] == "identity"]
    assert sum(lines["amount"], Decimal(0)) == identity
    assert sum(lines[lines["charged"]]["amount"], Decimal(0)) == identity - parts[UNKNOWN_CALLER]


def test_finance_summary_matrix_and_undeclared_callers(per_call: Chargeback) -> None:
    summary = per_call.finance_summary
    matrix = summary.capabilities
    assert matrix is not None
    assert matrix.capabilities == ["credit-scoring", "encryption", "identity"]
    cells = {(row.id, c.capability): (c.calls, c.amount) for row in matrix.units for c in row.cells}
    assert cells[("data-insight", "identity")] == (4800, Decimal("1.92"))
    assert cells[("data-insight", "credit-scoring")] == (2880, Decimal("4.61"))  # 3.84 + 0.77
    assert cells[("edge-security", "credit-scoring")] == (960, Decimal("1.92"))
    assert cells[("unallocated", "identity")] == (2880, Decimal("0.00"))  # unknown callers: counted, not billed
    recovered = invoices(per_call)["platform"].recovered_from_consumers
    assert recovered is not None and matrix.amount == -recovered.total
    assert matrix.calls == 4800 + 2880 + 1920 + 960 + 960 + 3840 + 960 + 960 + 1920
    assert [(c.cluster, c.namespace, c.unit, c.capability, c.calls) for c in summary.undeclared_callers or []] == [
        ("dc1", "es-testbed", "edge-security", "credit-scoring", 960)
    ]
    # The doctor's finding names the same caller and count.
    finding = next(f for f in per_call.findings if f.code == "undeclared-caller")
    assert "namespace es-testbed" in finding.message and "960 calls of capability credit-scoring" in finding.message


def test_reports_show_the_sections_and_the_capability_table(per_call: Chargeback) -> None:
    files = report_files(per_call)
    di = files["invoices/data-insight.html"]
    assert "<h2>Capabilities consumed</h2>" in di and "<h2>Recovered from consumers</h2>" not in di
    platform = files["invoices/platform.html"]
    assert "<h2>Recovered from consumers</h2>" in platform
    assert "callers without a namespace: counted, billed to nobody" in platform
    summary = files["finance-summary.html"]
    assert "<h2>Capabilities: calls and charges</h2>" in summary and "<h3>Undeclared callers</h3>" in summary
    # The invoice JSON is the model's dump and reads back as the same document.
    for unit, doc in invoices(per_call).items():
        assert Invoice.model_validate_json(files[f"invoices/{unit}.json"]) == doc
    table = csv_records(files["capability_lines.csv"])
    assert len(table) == len(per_call.capability_lines)
    row = next(r for r in table if r["consumer_namespace"] == "di-api" and r["capability"] == "identity")
    assert (row["calls"], row["amount"], row["charged"], row["method"]) == ("4800", "1.92", "true", "per_call")


def test_focus_rows_for_both_methods_add_up_per_invoice(per_call: Chargeback) -> None:
    rows = list(csv.DictReader(io.StringIO(csv_text(COLUMNS, focus_rows(per_call)))))
    check_columns(rows)
    for inv in per_call.invoices:
        billed = sum(Decimal(r["BilledCost"]) for r in rows if r["InvoiceId"] == inv.invoice_number)
        assert billed == inv.total, inv.business_unit.id
    assert sum(Decimal(r["BilledCost"]) for r in rows) == sum(per_call.lines["amount"], Decimal(0))

    identity = next(r for r in rows if r["ServiceName"] == "identity" and r["ChargeCategory"] == "Usage")
    assert (identity["ConsumedQuantity"], identity["ConsumedUnit"]) == ("4800", "Requests")
    assert (identity["PricingQuantity"], identity["PricingUnit"], identity["ListUnitPrice"]) == (
        "4.8",
        "1000 Requests",
        "0.40",
    )
    assert (identity["BilledCost"], identity["InvoiceId"], identity["ResourceId"]) == (
        "1.92",
        "RP-2026-10-data-insight",
        "dc1/pf-identity",
    )
    assert identity["AllocatedMethodId"] == ""

    recovery = [r for r in rows if r["ServiceName"] == "encryption" and r["ChargeCategory"] == "Usage"]
    assert {r["AllocatedMethodId"] for r in recovery} == {COST_RECOVERY_METHOD}
    assert {r["SubAccountId"] for r in recovery} == {"dc1/di-batch", "dc1/cs-miniapp"}
    assert {r["ResourceId"] for r in recovery} == {"dc1/pf-crypto"}
    # The provider keeps 960 own + 1,920 unknown of 7,680 calls: the charged ratios are 0.5 and 0.125.
    assert sorted(ratio_of(r) for r in recovery) == [Decimal("0.125"), Decimal("0.5")]
    assert json.loads(recovery[0]["Tags"])["namespace"] == "pf-crypto"  # the origin's Tags
    credits = [r for r in rows if r["ChargeCategory"] == "Credit"]
    assert {r["InvoiceId"] for r in credits} == {"RP-2026-10-platform"}
    charged = [r for r in rows if r["ChargeCategory"] == "Usage" and r["ServiceName"] in {"identity", "encryption"}]
    charged += [r for r in rows if r["ChargeCategory"] == "Usage" and r["ServiceName"] == "credit-scoring"]
    assert sum(Decimal(r["BilledCost"]) for r in credits) == -sum(Decimal(r["BilledCost"]) for r in charged)


def test_budget_ratio_counts_capability_spend(per_call: Chargeback) -> None:
    di = invoices(per_call)["data-insight"]
    assert di.capabilities_consumed is not None and di.capabilities_consumed.total > 0
    assert di.budget is not None
    resources = sum((ns.subtotal for ns in di.namespaces), Decimal(0))
    assert di.budget.used == (di.total / di.budget.monthly).quantize(Decimal("0.0001"))
    series = {
        (family.name.removeprefix("resource_pool_"), sample.labels["business_unit"]): sample.value
        for family in snapshot_of(per_call).families
        if family.name.endswith(("budget_burn_ratio", "forecast_budget_ratio"))
        for sample in family.samples
    }
    assert series[("budget_burn_ratio", "data-insight")] == float(di.total / di.budget.monthly)
    assert series[("budget_burn_ratio", "data-insight")] > float(resources / di.budget.monthly)
    projected = di.total * PERIOD.month_hours / PERIOD.hours
    assert series[("forecast_budget_ratio", "data-insight")] == float(projected / di.budget.monthly)


def test_calls_are_asked_of_prometheus_once(prometheus: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The doctor counts the calls for its checks and hands them to billing: one calls collection per cluster."""
    import chargeback.collect.doctor as doctor
    import chargeback.run as run

    seen: list[str] = []

    def counting(original):
        def collect(client, catalog, period, cluster, *args, **kwargs):
            seen.append(cluster)
            return original(client, catalog, period, cluster, *args, **kwargs)

        return collect

    monkeypatch.setattr(doctor, "collect_calls", counting(doctor.collect_calls))
    monkeypatch.setattr(run, "collect_calls", counting(run.collect_calls))
    chargeback = bill(prometheus, copy_example(tmp_path)).chargeback
    assert seen == ["dc1"]
    assert int(chargeback.capability_lines["calls"].sum()) == 4800 + 2880 + 1920 + 960 + 960 + 3840 + 960 + 960 + 1920


def test_a_month_with_capability_charges_closes_and_compares_identical(prometheus: str, tmp_path: Path) -> None:
    """`chargeback close` hashes the same FOCUS rows it writes (capability rows included) and records the
    invoice totals with their capability sections."""
    out = tmp_path / "reports" / "2026-10"
    ledger = str(tmp_path / "ledger.db")
    args = ["close", "--period", "2026-10", "--prometheus", prometheus, "--out", str(out), "--ledger", ledger]
    closed = CliRunner(env={"COLUMNS": "250"}).invoke(app, args)
    assert closed.exit_code == 0, closed.output
    invoice = json.loads((out / "invoices" / "platform.json").read_text(encoding="utf-8"))
    assert Decimal(invoice["recovered_from_consumers"]["total"]) < 0
    written = (out / "focus.csv").read_text(encoding="utf-8")
    focus = list(csv.DictReader(io.StringIO(written)))
    assert any(r["ChargeCategory"] == "Credit" for r in focus)
    assert violations(written) == []  # the file close writes, capability rows included, against FOCUS 1.4
    identity = {r["ServiceName"]: (r["ServiceCategory"], r["ServiceSubcategory"]) for r in focus}["identity"]
    assert identity == ("Identity", "Identity and Access Management")  # as rates.yaml declares it
    with Ledger(ledger) as book:
        (issue,) = book.issues()
    totals = {d.business_unit: Decimal(d.total) for d in issue.documents}
    assert totals["platform"] == Decimal(invoice["total"])
    compare = ["invoice", "--period", "2026-10", "--prometheus", prometheus, "--out", str(out), "--ledger", ledger]
    compared = CliRunner(env={"COLUMNS": "250"}).invoke(app, compare)
    assert compared.exit_code == 0, compared.output
    assert "recomputed figures: identical" in compared.output


def test_close_with_focus_1_3_writes_the_1_3_layout_and_the_ledger_keeps_1_4(prometheus: str, tmp_path: Path) -> None:
    out, ledger = tmp_path / "reports" / "2026-10", str(tmp_path / "ledger.db")
    args = ["close", "--period", "2026-10", "--prometheus", prometheus, "--out", str(out), "--ledger", ledger]
    closed = CliRunner().invoke(app, [*args, "--focus-version", "1.3"])
    assert closed.exit_code == 0, closed.output
    written = (out / "focus.csv").read_text(encoding="utf-8")
    assert written.partition("\n")[0].split(",") == list(columns_of("1.3"))
    check_1_3_columns(list(csv.DictReader(io.StringIO(written))))
    exported = CliRunner().invoke(app, ["ledger", "export", "--ledger", ledger])
    assert exported.exit_code == 0 and violations(exported.output) == []
    assert relayout(exported.output, "1.3") == written
    restored = tmp_path / "restored"
    files = ["ledger", "export", "--ledger", ledger, "--format", "files", "--focus-version", "1.3"]
    assert CliRunner().invoke(app, [*files, "--out", str(restored)]).exit_code == 0
    assert (restored / "2026-10" / "focus.csv").read_text(encoding="utf-8") == written
    wrong = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*args, "--focus-version", "1.2"])
    assert wrong.exit_code == 2 and "'1.2' is not one of '1.4', '1.3'" in wrong.output


def test_invoice_with_focus_1_3_writes_the_same_rows_in_the_1_3_layout(prometheus: str, tmp_path: Path) -> None:
    out = tmp_path / "2026-10"
    args = ["invoice", "--period", "2026-10", "--prometheus", prometheus, "--out", str(out), "--focus-version", "1.3"]
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, args)
    assert result.exit_code == 0, result.output
    written = (out / "focus.csv").read_text(encoding="utf-8")
    assert written.partition("\n")[0].split(",") == list(columns_of("1.3"))
    check_1_3_columns(list(csv.DictReader(io.StringIO(written))))
    assert violations(relayout(written, "1.4")) == []


def test_a_capability_change_after_close_is_corrected_like_any_line(per_call: Chargeback, switched: Chargeback) -> None:
    """Issued per_call, recomputed with identity as cost_recovery: the correction notes re-bill exactly the moved
    money on both sides, and their FOCUS rows meet the column rules."""
    documents = tuple(
        LedgerDocument(invoice_number(per_call, unit), "invoice", unit, None, "CNY", "0", "{}", tuple(lines))
        for unit, lines in chargeback_lines(per_call).items()
    )
    for doc in documents:  # a unit's ledger lines add up to its invoice total, capability sections included
        assert sum(Decimal(line["amount"]) for line in doc.lines) == invoices(per_call)[doc.business_unit].total
    issue = Issue("2026-10", 0, "original", "2026-10", "", {}, "2026-11-01T00:00:00Z", "t", documents)
    in_force = month_in_force([issue])
    changes = differences(in_force, chargeback_lines(switched))
    assert {c.key[2] for c in changes} == {"capability:identity", "recovered:identity"}
    before, after = invoices(per_call), invoices(switched)
    rows = []
    for unit in sorted({c.business_unit for c in changes}):
        lines = correction_lines([c for c in changes if c.business_unit == unit])
        assert note_total(lines, "CNY") == after[unit].total - before[unit].total != 0
        number = note_number(in_force[unit].invoice or "", 1)
        rows += correction_rows(switched.catalog, PERIOD, Period(2026, 12), unit, number, lines, "CNY", "usage")
    parsed = list(csv.DictReader(io.StringIO(csv_text(COLUMNS, rows))))
    check_columns(parsed)
    assert {r["ChargeCategory"] for r in parsed if r["BillingAccountId"] == "platform"} == {"Credit"}
    assert sum(Decimal(r["BilledCost"]) for r in parsed) == 0  # moved between units, none created


def test_a_partial_answer_to_the_calls_queries_refuses_the_bill() -> None:
    """Billing rates the calls the doctor counted, so a store missing from their answer is an error finding."""
    october = Period.parse("2026-10")
    first_hour = october.start.timestamp() + 1800

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/status/buildinfo":
            return httpx.Response(404, json={"status": "error", "error": "not found"})
        query = request.url.params.get("query", "")
        result = []
        if request.url.path == "/api/v1/query_range" and "series:" in query:
            metric = {"doctor_probe": "series:kube_pod_status_phase", "job": "kube-state-metrics"}
            result = [{"metric": metric, "values": [[first_hour, "3"]]}]
        body: dict = {"status": "success", "data": {"resultType": "matrix", "result": result}}
        if "istio_requests_total" in query:
            body["warnings"] = ["No StoreAPIs matched for this query: store 10.0.0.7:10901 is down"]
        return httpx.Response(200, json=body)

    catalog = load_catalog(EXAMPLE_CATALOG)
    settings = PrometheusSettings(url="http://thanos.example", retries=0)
    with PrometheusClient(settings, transport=httpx.MockTransport(answer)) as client:
        diagnosis = examine(client, catalog, october, ["dc1"], now=dt.datetime(2026, 11, 2, tzinfo=dt.UTC))
    partial = [f for f in diagnosis.findings if f.code == "partial-response"]
    assert [f.severity for f in partial] == ["error"]
    assert "store 10.0.0.7:10901 is down" in partial[0].message
    assert "dc1" in diagnosis.calls


def test_method_none_is_shown_on_both_invoices_and_billed_to_nobody() -> None:
    """Pure: a capability rated `none` shows its calls at 0.00 to the consumer, with the reason to the provider,
    a zero-cost FOCUS usage row and no credit; a period without calls keeps the documents as they were."""
    october = Period.parse("2026-10")
    catalog = with_rates(
        load_catalog(EXAMPLE_CATALOG),
        {"capability": "credit-scoring", "versions": [{"effective_from": "2026-01-01", "method": "none"}]},
    )
    usage = usage_frame(steady("pf-credit", "cpu", 1.0, october.start, october.hours))
    calls = calls_frame([row(5, "di-api", "pf-credit", "credit-scoring", 2500)])
    billed = charge(usage, catalog, october, calls=calls)
    docs = invoices(billed)
    line = docs["data-insight"].capabilities_consumed.lines[0]  # type: ignore[union-attr]
    assert (line.method, line.calls, line.amount, line.price_per_thousand) == ("none", 2500, Decimal("0.00"), None)
    credit = docs["platform"].recovered_from_consumers.lines[0]  # type: ignore[union-attr]
    assert (credit.amount, credit.note) == (Decimal("0.00"), "method none: shown, not billed")
    assert docs["data-insight"].total == Decimal("0.00")
    rows = [r for r in focus_rows(billed) if r["ServiceName"] == "credit-scoring"]
    assert [(r["ChargeCategory"], r["BilledCost"], r["ConsumedQuantity"]) for r in rows] == [("Usage", "0.00", "2500")]
    plain = charge(usage, catalog, october)
    assert all(inv.capabilities_consumed is None and inv.recovered_from_consumers is None for inv in plain.invoices)
    assert "capability_lines.csv" not in report_files(plain)
