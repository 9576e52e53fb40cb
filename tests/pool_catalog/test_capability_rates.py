"""rates.yaml `capabilities` and `call_counting`: the example's methods load, and each mistake is an error
naming the file, the field with its line, and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pool_catalog import CatalogError, Severity, load_catalog
from pool_catalog.models import CallMethod
from tests.support.catalog_edit import copy_example, edit_yaml


def test_example_capabilities_and_default_contract() -> None:
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "catalog")
    methods = {r.capability: r.versions[0].method for r in catalog.rates.capabilities}
    assert methods == {
        "identity": CallMethod.PER_CALL,
        "encryption": CallMethod.COST_RECOVERY,
        "credit-scoring": CallMethod.PER_CALL,
    }
    credit = catalog.rates.capability_rate("credit-scoring").versions[0]
    assert credit.class_of("credit-scoring-bulk").name == "bulk" and credit.class_of("credit-scoring") is None
    counting = catalog.rates.call_counting
    assert (counting.metric, counting.matchers, counting.not_billable_codes) == (
        "istio_requests_total",
        {"reporter": "destination"},
        "5..",
    )


def errors_after(tmp_path: Path, change: Any, file: str = "rates.yaml") -> list:
    root = copy_example(tmp_path)
    edit_yaml(root / file, change)
    with pytest.raises(CatalogError) as raised:
        load_catalog(root)
    return [f for f in raised.value.findings if f.severity is Severity.ERROR]


def test_unknown_capability_names_the_field_and_the_known_ones(tmp_path: Path) -> None:
    def rename(doc: Any) -> None:
        doc["capabilities"][1]["capability"] = "encrypt"

    (finding,) = errors_after(tmp_path, rename)
    assert finding.file.endswith("rates.yaml") and finding.field == "capabilities[1].capability"
    assert finding.line is not None
    assert "unknown capability 'encrypt'" in finding.message
    assert "use one of: credit-scoring, encryption, identity" in finding.hint


def test_per_call_without_a_price(tmp_path: Path) -> None:
    def drop_price(doc: Any) -> None:
        del doc["capabilities"][0]["versions"][0]["price"]

    (finding,) = errors_after(tmp_path, drop_price)
    assert finding.field.startswith("capabilities[0].versions[0]")
    assert "method per_call needs `price:` (per 1,000 calls of the default class)" in finding.message


def test_cost_recovery_takes_no_price_and_methods_are_known(tmp_path: Path) -> None:
    def bad(doc: Any) -> None:
        doc["capabilities"][1]["versions"][0]["price"] = "1.00"
        doc["capabilities"][2]["versions"][0]["method"] = "per_request"

    findings = errors_after(tmp_path, bad)
    assert {f.field.split(".")[0] for f in findings} == {"capabilities[1]", "capabilities[2]"}
    text = " ".join(f.message for f in findings)
    assert "method cost_recovery takes no price or classes" in text
    assert "Input should be 'per_call', 'cost_recovery' or 'none'" in text


def test_consumes_of_a_capability_nobody_exposes(tmp_path: Path) -> None:
    def consume(doc: Any) -> None:
        doc["namespaces"][0]["consumes"].append("geo-lookup")

    (finding,) = errors_after(tmp_path, consume, "business-units/data-insight.yaml")
    assert finding.field == "namespaces[0].consumes[2]" and finding.line is not None
    assert "unknown capability 'geo-lookup'" in finding.message


def test_bad_contract_label_and_code_pattern(tmp_path: Path) -> None:
    def contract(doc: Any) -> None:
        doc["call_counting"]["consumer_label"] = "source-namespace"
        doc["call_counting"]["not_billable_codes"] = "5(("

    findings = errors_after(tmp_path, contract)
    assert {f.field for f in findings} == {"call_counting.consumer_label", "call_counting.not_billable_codes"}


def test_capability_without_method_is_a_warning(tmp_path: Path) -> None:
    root = copy_example(tmp_path)

    def drop(doc: Any) -> None:
        del doc["capabilities"][1]

    edit_yaml(root / "rates.yaml", drop)
    catalog = load_catalog(root)
    (warning,) = [w for w in catalog.warnings if "encryption" in w.message]
    assert "has no billing method: its calls are shown, not charged" in warning.message
