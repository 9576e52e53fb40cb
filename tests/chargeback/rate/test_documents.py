"""The typed documents: the invoice model writes the invoice JSON byte for byte, reads it back, and its
published JSON Schema is the model's and accepts every golden invoice."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from chargeback.rate import invoices as invoices_module
from chargeback.rate.documents import SCHEMA_FILE, Invoice, invoice_schema
from chargeback.rate.result import charge
from pool_catalog import load_catalog
from tests.chargeback.outputs.test_outputs import OCT, month_rows
from tests.support.catalog_edit import EXAMPLE_CATALOG
from tests.support.usage_frames import usage_frame

GOLDEN_INVOICES = sorted(
    (Path(__file__).resolve().parents[2] / "golden" / "chargeback-2026-10" / "invoices").glob("*.json")
)


def test_published_schema_is_the_models() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == invoice_schema(), (
        f"{SCHEMA_FILE} differs from the Invoice model: regenerate it with "
        "`.venv/bin/python -m chargeback.rate.documents` and commit it"
    )


def test_golden_invoices_validate_against_the_schema_and_round_trip_byte_for_byte() -> None:
    assert len(GOLDEN_INVOICES) == 5
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    for path in GOLDEN_INVOICES:
        content = path.read_text(encoding="utf-8")
        validator.validate(json.loads(content))
        assert Invoice.model_validate_json(content).to_json() == content, path.name


def test_schema_refuses_what_the_model_refuses() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    document = json.loads(GOLDEN_INVOICES[0].read_text(encoding="utf-8"))
    for damaged in (
        {**document, "total": 12.5},  # money as a float: readers would round it
        {**document, "total": "12,50"},
        {**document, "surprise": 1},
        {key: value for key, value in document.items() if key != "business_unit"},
    ):
        assert not validator.is_valid(damaged)
        with pytest.raises(ValidationError):
            Invoice.model_validate_json(json.dumps(damaged))


def test_money_is_decimal_in_the_model_and_fixed_point_text_in_json() -> None:
    invoice = Invoice.model_validate_json(GOLDEN_INVOICES[0].read_text(encoding="utf-8"))
    assert isinstance(invoice.total, Decimal)
    tiny = invoice.model_copy(update={"total": Decimal("0E-9")})
    assert json.loads(tiny.to_json())["total"] == "0.000000000"


def test_documents_are_built_once_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    from chargeback.outputs.reports import report_files

    calls = []
    build = invoices_module.build_invoices

    def counted(chargeback):
        calls.append(chargeback)
        return build(chargeback)

    monkeypatch.setattr(invoices_module, "build_invoices", counted)
    chargeback = charge(usage_frame(month_rows()), load_catalog(EXAMPLE_CATALOG), OCT)
    first = report_files(chargeback)
    assert report_files(chargeback) == first
    assert chargeback.finance_summary.units[0].actual == chargeback.invoices[0].total
    assert len(calls) == 1
