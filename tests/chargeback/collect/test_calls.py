"""Capability calls counted by a real Prometheus: a closed-form scenario backfilled with promtool.

Every series is scraped every 30 s for 8 hours from 2026-10-01 00:00 UTC and grows by a fixed number
of calls at each scrape of an hour, so an hour holds exactly 120 × that number of calls whatever the
server's range semantics (Prometheus 2 or 3). Planted: a counter reset (a restarted proxy), a burst of
503s, a namespace calling a capability it does not declare, callers without a namespace, and every
Istio call reported by both proxies. Money is checked to the cent in both methods.

Label sets are Istio's own (istio/proxy testdata/metric/server_request_total.yaml.tmpl: reporter,
source_workload, source_workload_namespace, source_principal, destination_workload,
destination_workload_namespace, destination_service, destination_service_name,
destination_service_namespace, request_protocol, response_code, response_flags,
connection_security_policy) and Linkerd's (linkerd.io/2/reference/proxy-metrics: response_total with
direction, authority, dst_namespace, dst_service, status_code, classification; `namespace` from the
scrape's pod).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from chargeback.cli import app
from chargeback.collect.calls import UNKNOWN_CALLER, calls_query, collect_calls
from chargeback.collect.doctor import check_calls
from chargeback.collect.prometheus import PrometheusClient, PrometheusSettings
from chargeback.collect.promql import LabelMatcher
from chargeback.period import Period
from chargeback.rate.capabilities import rate_calls
from pool_catalog import load_catalog
from pool_catalog.models import CallCounting, CapabilityRate, Catalog
from pool_demo.local_prometheus import LocalPrometheus, backfill
from pool_demo.synthetic import OpenMetricsWriter
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.prometheus import require_prometheus, serve_scenario

pytestmark = pytest.mark.prometheus

OCTOBER = Period.parse("2026-10")
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
HOURS = 8
STEP = 30  # seconds between scrapes: 120 per hour
RESET_AT = START + dt.timedelta(hours=3, minutes=30)


def counter(per_scrape: dict[int, int] | int, reset_at: dt.datetime | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples of a counter that grows by `per_scrape[hour]` calls at each scrape of that hour; with `reset_at`
    the process restarts there and counts from zero again."""
    times, values, total = [], [], 0
    for index in range(HOURS * 3600 // STEP):
        moment = START + dt.timedelta(seconds=index * STEP)
        hour = index * STEP // 3600
        step = per_scrape if isinstance(per_scrape, int) else per_scrape.get(hour, 0)
        total = step if reset_at is not None and moment == reset_at else total + step
        times.append(moment.timestamp())
        values.append(float(total))
    return np.asarray(times), np.asarray(values)


def istio(consumer: str, provider: str, service: str, code: str = "200", reporter: str = "destination") -> dict:
    known = consumer not in ("unknown", "")
    return {
        "cluster": "dc1",
        "reporter": reporter,
        "source_workload": f"{consumer}-app" if known else "unknown",
        "source_workload_namespace": consumer,
        "source_principal": f"spiffe://cluster.local/ns/{consumer}/sa/default" if known else "unknown",
        "destination_workload": f"{service}-v1",
        "destination_workload_namespace": provider,
        "destination_service": f"{service}.{provider}.svc.cluster.local",
        "destination_service_name": service,
        "destination_service_namespace": provider,
        "request_protocol": "http",
        "response_code": code,
        "response_flags": "-",
        "connection_security_policy": "mutual_tls" if known else "none",
        "pod": f"{service}-v1-7f4669bdd9-dg7vn",
    }


# (labels, calls per scrape): the Istio series, each reported by the server's proxy.
ISTIO = [
    (istio("di-api", "pf-identity", "identity"), 5),
    (istio("unknown", "pf-identity", "identity"), 3),  # a caller without sidecar
    (istio("di-api", "pf-credit", "credit-scoring"), 2),
    (istio("di-api", "pf-credit", "credit-scoring-bulk"), 1),
    (istio("di-api", "pf-credit", "credit-scoring", code="503"), {5: 10}),  # the provider's failures, hour 5
    (istio("es-testbed", "pf-credit", "credit-scoring"), 1),  # does not declare credit-scoring
    (istio("di-batch", "pf-crypto", "kms"), 4),
    (istio("cs-miniapp", "pf-crypto", "kms"), 1),
    (istio("pf-crypto", "pf-crypto", "kms"), 1),  # the provider's own calls
    (istio("", "pf-crypto", "kms"), 2),  # caller namespace empty
]

LINKERD = [
    # Outbound (the caller's proxy): `namespace` is the caller's, dst_namespace the provider's.
    ({"cluster": "dc1", "direction": "outbound", "namespace": "di-api", "dst_namespace": "pf-identity",
      "dst_service": "identity", "authority": "identity.pf-identity.svc.cluster.local:8443", "tls": "true",
      "status_code": "200", "classification": "success"}, 7),
    ({"cluster": "dc1", "direction": "outbound", "namespace": "di-api", "dst_namespace": "pf-identity",
      "dst_service": "identity", "authority": "identity.pf-identity.svc.cluster.local:8443", "tls": "true",
      "status_code": "502", "classification": "failure"}, 1),
    # Inbound (the server's proxy) reports the same calls again, without the caller's namespace.
    ({"cluster": "dc1", "direction": "inbound", "namespace": "pf-identity", "authority": "identity:8443",
      "tls": "true", "status_code": "200", "classification": "success"}, 7),
]  # fmt: skip

APP = [
    # The provider's own counter, scraped from its pods (namespace = the provider), with a caller label.
    ({"cluster": "dc1", "namespace": "pf-credit", "caller_namespace": "di-api", "endpoint": "score", "code": "200"}, 6),
    ({"cluster": "dc1", "namespace": "pf-credit", "caller_namespace": "di-api", "endpoint": "score", "code": "500"}, 2),
]

LINKERD_CONTRACT = CallCounting(
    metric="response_total", matchers={"direction": "outbound"}, consumer_label="namespace",
    provider_label="dst_namespace", class_label="dst_service", code_label="status_code",
)  # fmt: skip
APP_CONTRACT = CallCounting(
    metric="credit_score_requests_total", matchers={}, consumer_label="caller_namespace",
    provider_label="namespace", class_label="endpoint", code_label="code",
)  # fmt: skip


@pytest.fixture(scope="module")
def calls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_prometheus()
    workdir = tmp_path_factory.mktemp("calls")
    source = workdir / "calls.om"
    with OpenMetricsWriter(source) as writer:
        for labels, rate in ISTIO:
            reset = RESET_AT if labels["source_workload_namespace"] == "di-api" and labels["response_code"] == "200" \
                and labels["destination_service_name"] == "identity" else None  # fmt: skip
            writer.write_series("istio_requests_total", "counter", "Requests.", labels, counter(rate, reset))
            if labels["source_workload_namespace"] not in ("unknown", ""):
                # The client's proxy reports the same calls (both ends have a sidecar).
                source_report = {**labels, "reporter": "source", "pod": f"{labels['source_workload']}-5d9c8b7f6-x2x4q"}
                writer.write_series("istio_requests_total", "counter", "Requests.", source_report, counter(rate, reset))
        for labels, rate in LINKERD:
            writer.write_series("response_total", "counter", "Responses.", labels, counter(rate))
        for labels, rate in APP:
            writer.write_series("credit_score_requests_total", "counter", "Scores.", labels, counter(rate))
    backfill(source, workdir / "tsdb")
    with LocalPrometheus(workdir / "tsdb") as server:
        yield server.url


def collect(url: str, catalog: Catalog) -> pd.DataFrame:
    with PrometheusClient(PrometheusSettings(url=url)) as client:
        return collect_calls(client, catalog, OCTOBER, "dc1", [LabelMatcher("cluster", "dc1")])


def with_contract(catalog: Catalog, counting: CallCounting) -> Catalog:
    return catalog.model_copy(update={"rates": catalog.rates.model_copy(update={"call_counting": counting})})


def totals(calls: pd.DataFrame) -> dict[tuple[str, str, str, bool], int]:
    grouped = calls.groupby(["consumer_namespace", "capability", "class_value", "billable"])["calls"].sum()
    return {key: int(value) for key, value in grouped.items()}


def test_istio_calls_are_counted_exactly_once_per_call(calls_prometheus: str) -> None:
    calls = collect(calls_prometheus, load_catalog(EXAMPLE_CATALOG))
    per_hour = 120
    assert totals(calls) == {
        # The reset at 03:30 costs no call, and the source proxy's reports are not counted again.
        ("di-api", "identity", "identity", True): HOURS * per_hour * 5,
        (UNKNOWN_CALLER, "identity", "identity", True): HOURS * per_hour * 3,
        ("di-api", "credit-scoring", "credit-scoring", True): HOURS * per_hour * 2,
        ("di-api", "credit-scoring", "credit-scoring-bulk", True): HOURS * per_hour * 1,
        ("di-api", "credit-scoring", "credit-scoring", False): per_hour * 10,  # the 503 burst, hour 5 only
        ("es-testbed", "credit-scoring", "credit-scoring", True): HOURS * per_hour,
        ("di-batch", "encryption", "kms", True): HOURS * per_hour * 4,
        ("cs-miniapp", "encryption", "kms", True): HOURS * per_hour,
        ("pf-crypto", "encryption", "kms", True): HOURS * per_hour,
        (UNKNOWN_CALLER, "encryption", "kms", True): HOURS * per_hour * 2,  # "" is an unknown caller too
    }
    identity = calls[(calls["consumer_namespace"] == "di-api") & (calls["capability"] == "identity")]
    assert identity["calls"].tolist() == [600] * HOURS  # every hour, the reset hour included
    burst = calls[~calls["billable"]]
    assert burst["hour"].tolist() == [pd.Timestamp(START + dt.timedelta(hours=5))]


def test_money_to_the_cent_in_both_methods(calls_prometheus: str) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    calls = collect(calls_prometheus, catalog)
    lines = rate_calls(calls, catalog, OCTOBER, {("dc1", "pf-crypto"): Decimal("1234.57")})
    got = {
        (row.capability, row.consumer_namespace, row.call_class): (row.calls, row.amount, row.charged, row.declared)
        for row in lines.itertuples()
    }
    assert got == {
        # identity, per_call 0.40 per 1,000: 4,800 calls → 1.92; the unknown caller's 2,880 → 1.152 → 1.15, unbilled
        ("identity", "di-api", "default"): (4800, Decimal("1.92"), True, True),
        ("identity", UNKNOWN_CALLER, "default"): (2880, Decimal("1.15"), False, True),
        # credit-scoring, per_call 2.00 (default) and 0.80 (bulk); the 1,200 503s are not billed
        ("credit-scoring", "di-api", "default"): (1920, Decimal("3.84"), True, True),
        ("credit-scoring", "di-api", "bulk"): (960, Decimal("0.77"), True, True),  # 0.768
        ("credit-scoring", "es-testbed", "default"): (960, Decimal("1.92"), True, False),
        # encryption, cost_recovery of 1,234.57 by 3,840 : 960 : 960 : 1,920 calls (1/2, 1/8, 1/8, 1/4):
        # 617.285 / 154.32125 / 154.32125 / 308.6425 → floors of cents leave one cent, to the largest remainder
        ("encryption", "di-batch", ""): (3840, Decimal("617.29"), True, True),
        ("encryption", "cs-miniapp", ""): (960, Decimal("154.32"), True, True),
        ("encryption", "pf-crypto", ""): (960, Decimal("154.32"), False, True),  # the provider keeps its own share
        ("encryption", UNKNOWN_CALLER, ""): (1920, Decimal("308.64"), False, True),
    }
    failed = lines[(lines["capability"] == "credit-scoring") & (lines["call_class"] == "default")]
    assert failed.set_index("consumer_namespace")["not_billable_calls"].to_dict() == {"di-api": 1200, "es-testbed": 0}
    encryption = lines[lines["capability"] == "encryption"]
    assert sum(encryption["amount"]) == Decimal("1234.57")
    assert sum(encryption.loc[encryption["charged"], "amount"]) == Decimal("771.61")


def test_undeclared_and_unknown_callers_are_findings(calls_prometheus: str) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    findings = check_calls(collect(calls_prometheus, catalog), catalog, "dc1")
    assert [(f.severity, f.code, f.namespaces) for f in findings] == [
        ("warning", "undeclared-caller", ("es-testbed",)),
        ("warning", "unknown-callers", ("pf-crypto",)),
        ("warning", "unknown-callers", ("pf-identity",)),
    ]
    undeclared = findings[0]
    assert "namespace es-testbed (business-units/edge-security.yaml) made 960 calls of capability credit-scoring" in (
        undeclared.message
    )
    assert "declare `consumes: [credit-scoring]` on namespace es-testbed" in undeclared.fix
    assert "NetworkPolicy allow-capability-credit-scoring in pf-credit" in undeclared.fix
    assert "2,880 calls of identity (pf-identity) came from callers without a namespace" in findings[2].message


def test_linkerd_outbound_response_total(calls_prometheus: str) -> None:
    catalog = with_contract(load_catalog(EXAMPLE_CATALOG), LINKERD_CONTRACT)
    assert totals(collect(calls_prometheus, catalog)) == {
        ("di-api", "identity", "identity", True): HOURS * 120 * 7,  # the inbound reports are not counted
        ("di-api", "identity", "identity", False): HOURS * 120,  # 502
    }


def test_application_counter_with_a_caller_label(calls_prometheus: str) -> None:
    catalog = with_contract(load_catalog(EXAMPLE_CATALOG), APP_CONTRACT)
    assert totals(collect(calls_prometheus, catalog)) == {
        ("di-api", "credit-scoring", "score", True): HOURS * 120 * 6,
        ("di-api", "credit-scoring", "score", False): HOURS * 120 * 2,
    }


def test_query_counts_one_reporter_and_leaves_5xx_out() -> None:
    query = calls_query(CallCounting(), ["pf-identity", "pf-crypto"], "1h", billable=True)
    assert query == (
        "sum by (source_workload_namespace, destination_workload_namespace, destination_service_name) "
        '(increase(istio_requests_total{reporter="destination",destination_workload_namespace=~"pf-crypto|pf-identity",'
        'response_code!~"5.."}[1h]))'
    )


def test_chargeback_doctor_lists_the_undeclared_caller(tmp_path_factory: pytest.TempPathFactory) -> None:
    """`chargeback doctor` on the closed-form cluster with the Istio calls beside it: the undeclared caller is
    named with its namespace, capability, calls and fix."""
    extra = []
    for labels, rate in ISTIO:
        extra.append(("istio_requests_total", "counter", "Requests.", labels, counter(rate)))
    server = serve_scenario(tmp_path_factory.mktemp("doctor-calls"), extra=extra)
    scenario = next(server)
    try:
        args = ["doctor", "--prometheus", scenario.url, "--catalog", str(EXAMPLE_CATALOG), "--period", "2026-10",
                "--cluster", "dc1", "--cluster-label", "cluster"]  # fmt: skip
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.startswith("cluster dc1 — 2026-10 warning (3) undeclared-caller:")  # no markup printed raw
    assert (
        "undeclared-caller: namespace es-testbed (business-units/edge-security.yaml) made 960 calls of capability "
        "credit-scoring (pf-credit) without declaring `consumes: [credit-scoring]`"
    ) in text
    assert "fix: declare `consumes: [credit-scoring]` on namespace es-testbed if the calls are meant" in text
    assert "unknown-callers: 2,880 calls of identity (pf-identity) came from callers without a namespace" in text


def test_switching_identity_to_cost_recovery_moves_exactly_the_providers_cost(calls_prometheus: str) -> None:
    catalog = load_catalog(EXAMPLE_CATALOG)
    calls = collect(calls_prometheus, catalog)
    costs = {("dc1", "pf-identity"): Decimal("999.99"), ("dc1", "pf-crypto"): Decimal("1234.57")}
    before = rate_calls(calls, catalog, OCTOBER, costs)
    recovery = CapabilityRate(
        capability="identity", versions=[{"effective_from": "2026-01-01", "method": "cost_recovery"}]
    )
    switched_rates = [recovery if r.capability == "identity" else r for r in catalog.rates.capabilities]
    switched = catalog.model_copy(update={"rates": catalog.rates.model_copy(update={"capabilities": switched_rates})})
    after = rate_calls(calls, switched, OCTOBER, costs)
    identity = after[after["capability"] == "identity"].set_index("consumer_namespace")
    # 4,800 : 2,880 calls (5/8, 3/8 of 999.99 = 624.99375 / 374.99625): the odd cent goes to the larger remainder
    assert identity["amount"].to_dict() == {"di-api": Decimal("624.99"), UNKNOWN_CALLER: Decimal("375.00")}
    assert identity["charged"].to_dict() == {"di-api": True, UNKNOWN_CALLER: False}
    assert sum(identity["amount"]) == Decimal("999.99")
    # Nothing else moved.
    others = before[before["capability"] != "identity"].reset_index(drop=True)
    assert others.equals(after[after["capability"] != "identity"].reset_index(drop=True))
