"""`pool request --history`: a unit's measured month read from its issued invoice, as a typed `UnitHistory`.

The invoice JSON is chargeback's published contract (`chargeback/outputs/schemas/invoice.schema.json`), so
it is read with the model it was written from (`chargeback.rate.documents.Invoice`, the one import of
chargeback that infra is allowed, see tests/test_layout.py) and reduced here, at the edge, to what the
estimate needs. A file that is missing, unreadable, not JSON, not an invoice, or the invoice of another
unit or catalog is a RequestError naming the file and how to fix it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from pydantic import ValidationError

from chargeback.rate.documents import Invoice, Section
from pool_catalog import Catalog
from pool_catalog.estimate import MeasuredSection, ResourceKey, UnitHistory
from pool_catalog.files import field_path
from pool_catalog.models import BusinessUnit
from pool_catalog.resources import UnknownResourceError, spec_of

from ..errors import RequestError

_HOW = (
    "give --history the output folder of a `chargeback invoice` run (e.g. out/demo/2026-10) or one unit's "
    "invoices/<unit>.json"
)


def invoice_file(path: Path, unit: str) -> Path:
    """The unit's invoice under `path`: the file itself, or <path>/invoices/<unit>.json, or <path>/<unit>.json."""
    if path.is_file():
        return path
    if not path.exists():
        raise RequestError(f"--history {path}: no such file or folder; {_HOW}")
    for candidate in (path / "invoices" / f"{unit}.json", path / f"{unit}.json"):
        if candidate.is_file():
            return candidate
    raise RequestError(f"--history {path}: holds no invoice of unit {unit!r} (invoices/{unit}.json); {_HOW}")


def read_history(path: Path, catalog: Catalog, unit: BusinessUnit) -> UnitHistory:
    """The measured month of `unit` from the invoice at (or under) `path`; raises RequestError."""
    file = invoice_file(path, unit.id)
    try:
        data = json.loads(file.read_bytes())
    except OSError as e:
        raise RequestError(f"--history {file}: cannot be read ({e.strerror or e}); {_HOW}") from e
    except UnicodeDecodeError as e:
        raise RequestError(f"--history {file}: is not UTF-8 text; {_HOW}") from e
    except json.JSONDecodeError as e:
        raise RequestError(
            f"--history {file}: is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); {_HOW}"
        ) from e
    try:
        invoice = Invoice.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{field_path(tuple(err['loc'])) or '(top)'}: {err['msg']}" for err in e.errors()[:3])
        raise RequestError(f"--history {file}: is not an invoice document ({problems}); {_HOW}") from e
    _same_unit_and_catalog(file, invoice, catalog, unit)
    own, shared = [], []
    for section in invoice.namespaces:
        (shared if section.shared_split else own).append(_measured(file, section))
    consumed = invoice.capabilities_consumed.total if invoice.capabilities_consumed else Decimal(0)
    recovered = invoice.recovered_from_consumers.total if invoice.recovered_from_consumers else Decimal(0)
    if invoice.coverage.hours_in_period <= 0:
        raise RequestError(f"--history {file}: coverage.hours_in_period must be positive; {_HOW}")
    return UnitHistory(
        str(file), invoice.period, invoice.coverage.hours_in_period, tuple(own), tuple(shared), consumed + recovered
    )


def _same_unit_and_catalog(file: Path, invoice: Invoice, catalog: Catalog, unit: BusinessUnit) -> None:
    if invoice.business_unit.id != unit.id:
        raise RequestError(
            f"--history {file}: is the invoice of unit {invoice.business_unit.id!r}, not {unit.id!r}; "
            f"give {unit.id}'s invoice (invoices/{unit.id}.json) or its run's folder"
        )
    rates = catalog.rates
    theirs = (invoice.currency, invoice.issuer.name, invoice.business_unit.cost_center)
    ours = (rates.currency, rates.issuer.name, unit.cost_center)
    if theirs != ours:
        what = ", ".join(
            f"{name} {a!r} (catalog: {b!r})"
            for name, a, b in zip(("currency", "issuer", "cost center"), theirs, ours, strict=True)
            if a != b
        )
        raise RequestError(
            f"--history {file}: was issued from another catalog ({what}); give an invoice of the catalog "
            f"at {catalog.root}"
        )


def _measured(file: Path, section: Section) -> MeasuredSection:
    """The section's billed quantities per (resource, tier), in each resource's usage unit."""
    quantities: dict[ResourceKey, Decimal] = {}
    for index, line in enumerate(section.lines):
        where = f"--history {file}: namespace {section.namespace!r} line {index + 1}"
        try:
            spec = spec_of(line.resource)
        except UnknownResourceError as e:
            raise RequestError(f"{where}: {e}; the invoice is not of this catalog's resources") from e
        per_unit = spec.price_units.get(line.unit)
        if per_unit is None:
            raise RequestError(
                f"{where}: unit {line.unit!r} is not a unit of {spec.name} (one of {', '.join(spec.price_units)})"
            )
        key = (spec.name, line.tier)
        quantities[key] = quantities.get(key, Decimal(0)) + line.billed_quantity * per_unit
    return MeasuredSection(section.cluster, section.namespace, section.coverage.hours_seen, quantities)
