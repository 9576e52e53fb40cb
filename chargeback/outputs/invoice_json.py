"""invoices/<unit>.json: each invoice as the model's own JSON dump, the stable contract of a run (history
reads it back with the same model; its JSON Schema is published in `schemas/invoice.schema.json`)."""

from __future__ import annotations

from .formats import Format, Inputs, register


def _files(inputs: Inputs) -> dict[str, str]:
    return {f"invoices/{invoice.business_unit.id}.json": invoice.to_json() for invoice in inputs.invoices}


register(Format("json", "invoices/<unit>.json", ("invoices",), render=_files))
