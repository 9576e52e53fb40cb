"""The documents of a period as typed models: the invoice (its sections, lines, coverage, idle summary)
and the finance summary.

Money and quantities are Decimal in the model and fixed-point text in JSON ('0E-9' is written
'0.000000000', never a float), so the model's own JSON dump is the invoice file, byte for byte, and
history reads those files back with the same model. Keys that older invoices never had (estimates,
north_star, data_findings, issue, capabilities_consumed, recovered_from_consumers; the summary's
capabilities and undeclared_callers) are left out of the JSON when absent, so a run without them gives
the same bytes as before they existed. `chargeback/outputs/schemas/invoice.schema.json` is this
module's Invoice, published (`python -m chargeback.rate.documents` rewrites it).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
)

from pool_catalog.models import Issuer


def text(value: Decimal) -> str:
    """A Decimal as fixed-point text, without exponent ('0E-9' → '0.000000000')."""
    return format(value, "f")


DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"


def _decimal(value: object) -> object:
    """Decimal as built, or fixed-point text as written; a JSON number (a float to most readers) is refused."""
    if isinstance(value, str):
        if not re.fullmatch(DECIMAL_PATTERN, value):
            raise ValueError(f'{value!r} is not fixed-point decimal text such as "12.50"')
        return Decimal(value)
    if value is None or isinstance(value, Decimal):
        return value
    raise ValueError(f'{value!r} must be fixed-point decimal text such as "12.50", not a JSON number')


Number = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    PlainSerializer(text, return_type=str),
    WithJsonSchema({"type": "string", "pattern": DECIMAL_PATTERN, "description": "Fixed-point decimal text."}),
]
"""Money, a quantity or a share: Decimal in Python, fixed-point text in JSON."""
OptionalNumber = Annotated[
    Decimal | None,
    BeforeValidator(_decimal),
    PlainSerializer(lambda v: None if v is None else text(v), return_type=str | None),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": DECIMAL_PATTERN}, {"type": "null"}],
            "description": "Fixed-point decimal text, or null.",
        }
    ),
]
SCHEMA_FILE = Path(__file__).resolve().parent.parent / "outputs" / "schemas" / "invoice.schema.json"


class Document(BaseModel):
    """A part of a document: immutable, no unknown keys (a misspelt field in a file is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    omit_when_none: ClassVar[frozenset[str]] = frozenset()
    """Fields written only when present (keys added after invoices were first published)."""

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        for name in self.omit_when_none:
            if data.get(name, 0) is None:
                del data[name]
        return data


class UnitRef(Document):
    id: str
    display_name: str
    cost_center: str


class ResourceAmount(Document):
    resource: str
    tier: str
    amount: Number


class Budget(Document):
    monthly: Number
    used: OptionalNumber
    """Share of the budget the total uses (None: a budget of 0)."""
    alert_at: Number


class InvoiceCoverage(Document):
    hours_in_period: int
    complete: bool
    incomplete_namespaces: list[str]


class NamespaceCoverage(Document):
    """hours_seen: hours Prometheus had the namespace; hours_covered: how much of those scrapes covered."""

    hours_in_period: int
    hours_seen: int
    hours_covered: Number
    share: Number
    complete: bool


class Line(Document):
    """A rated line as an invoice (and a ledger line) shows it."""

    resource: str
    tier: str
    rate_effective_from: str
    charge_period_start: str
    charge_period_end: str
    usage_quantity: Number
    usage_unit: str
    billed_quantity: Number
    unit: str
    unit_price: Number
    amount: Number


class Estimate(Document):
    """A figure of a section that is an estimate or a gap."""

    resource: str
    tier: str
    kind: str
    hours: int
    detail: str
    text: str


class Section(Document):
    """One namespace of an invoice: its lines, subtotal and coverage."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset({"estimates"})
    cluster: str
    namespace: str
    shared_split: str
    share: OptionalNumber
    subtotal: Number
    coverage: NamespaceCoverage
    lines: list[Line]
    estimates: list[Estimate] | None = None


class IdleAllocation(Document):
    cluster: str
    namespace: str
    resource: str
    tier: str
    pvc: str
    basis: str
    unit: str
    allocated: Number
    used_avg: Number
    used_peak: Number = Field(description="Use level the advice rests on (peak, or CPU's p99 of hourly peaks).")
    requests_peak: OptionalNumber = Field(description="Peak of the pods' requests: a quota's floor (quota rows).")
    utilization: Number
    idle_value: Number = Field(description="The unused part at the rate card, for the period (every row).")
    capacity_held: Number = Field(
        description="Pool capacity held idle, at the rate card: idle_value on the allocation's binding row "
        "(its quota if flagged, else its requests), 0 on the other row of the same allocation."
    )
    unit_pays: Number = Field(description="What the unit is billed for the unused part (0 under usage billing).")
    recommended_allocation: OptionalNumber = Field(description="Safe right-size; null: no advice (short history).")
    advice_basis: str = Field(description="How the advice was found, or why there is none.")
    reason: str
    reason_text: str


class IdleSummary(Document):
    """Idle money of a unit, each allocation counted once: what the unit pays for it, and the pool's capacity
    it holds (worth this at the rate card, borne by the pool, not billed under usage billing)."""

    unit_pays: Number
    capacity_held: Number
    allocations: list[IdleAllocation]


class NorthStar(Document):
    name: str
    unit: str
    query: str
    volume: OptionalNumber
    cost_per_unit: OptionalNumber


class DataFinding(Document):
    severity: str
    code: str
    cluster: str
    message: str
    fix: str
    namespaces: list[str]


class IssueStamp(Document):
    """The ledger issue an invoice belongs to (`chargeback close`), printed as its fingerprint."""

    period: str
    sequence: int
    kind: str
    billing_period: str
    content_hash: str
    short_hash: str
    issued_at: str
    issued_by: str
    fingerprint: dict[str, Any]


class CapabilityConsumed(Document):
    """Calls of one of the unit's namespaces to a capability another namespace provides, and what they cost."""

    cluster: str
    capability: str
    provider_unit: str
    provider_namespace: str
    namespace: str
    call_class: str
    method: str
    """per_call, cost_recovery or none (rates.yaml capabilities)."""
    calls: int
    """Billable calls."""
    not_billable_calls: int
    """Calls answered with a not-billable code (default 5xx): never charged."""
    price_per_thousand: OptionalNumber
    """per_call: the price per 1,000 calls; else null."""
    share: OptionalNumber
    """cost_recovery: this namespace's share of the capability's billable calls; else null."""
    recovered_cost: OptionalNumber
    """cost_recovery: the provider namespace's cost split across the callers; else null."""
    amount: Number
    rate_effective_from: str
    charge_period_start: str
    charge_period_end: str
    declared: bool
    """Whether the namespace declares `consumes` of the capability (false: a doctor finding)."""


class CapabilitiesConsumed(Document):
    """The unit's capability calls: `total` is added to the invoice total."""

    total: Number
    lines: list[CapabilityConsumed]


class CapabilityRecovered(Document):
    """What the callers of a capability the unit provides were charged, credited to the provider."""

    cluster: str
    capability: str
    provider_namespace: str
    consumer_unit: str
    consumer_namespace: str
    call_class: str
    method: str
    calls: int
    not_billable_calls: int
    amount: Number
    """The credit: minus what the consumer was charged; 0 when nobody was (see `note`)."""
    note: str
    """Why nothing moved when nothing did (own calls, unknown caller, unowned caller, method none); else ""."""


class CapabilitiesRecovered(Document):
    """Credits for the unit's capabilities: `total` (zero or negative) is added to the invoice total."""

    total: Number
    lines: list[CapabilityRecovered]


class Invoice(Document):
    """The invoice of one business unit for one period (or the statement of unallocated namespaces).

    total = the namespaces' subtotals + capabilities_consumed.total + recovered_from_consumers.total."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset(
        {"time_zone", "north_star", "data_findings", "issue", "capabilities_consumed", "recovered_from_consumers"}
    )
    invoice_number: str
    period: str
    period_start: str
    period_end: str
    time_zone: str | None = None
    """The billing time zone whose month `period` is (period_start/end are its bounds in UTC); absent: UTC."""
    issuer: Issuer
    business_unit: UnitRef
    currency: str
    billing_mode: str
    rate_versions: list[str]
    total: Number
    by_resource: list[ResourceAmount]
    budget: Budget | None
    coverage: InvoiceCoverage
    namespaces: list[Section]
    idle: IdleSummary
    capabilities_consumed: CapabilitiesConsumed | None = None
    """Absent when the unit's namespaces made no capability calls."""
    recovered_from_consumers: CapabilitiesRecovered | None = None
    """Absent when nobody called the unit's capabilities."""
    north_star: NorthStar | None = None
    data_findings: list[DataFinding] | None = None
    issue: IssueStamp | None = None

    def to_json(self) -> str:
        """The invoice file: the model's JSON dump with the writer's settings (2-space indent, UTF-8 kept)."""
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


class SummaryUnit(Document):
    id: str
    display_name: str
    cost_center: str
    invoice_number: str
    budget: OptionalNumber
    actual: Number
    budget_used: OptionalNumber
    over_budget: bool
    at_alert: bool
    share_of_pool: OptionalNumber
    idle_unit_pays: Number
    idle_capacity_held: Number
    coverage_complete: bool
    north_star: NorthStar | None


class SharedUnit(Document):
    id: str
    amount: Number


class SharedNamespace(Document):
    """How a shared namespace's cost was split."""

    cluster: str
    namespace: str
    split: str
    amount: Number
    units: list[SharedUnit]


class SummaryTotal(Document):
    actual: Number
    budget: Number
    budget_used: OptionalNumber
    idle_unit_pays: Number
    idle_capacity_held: Number


class CapabilityCell(Document):
    """Calls of one capability and the amount charged for them."""

    capability: str
    calls: int
    amount: Number


class CapabilityRow(Document):
    """One consumer unit's calls per capability (`unallocated`: unknown callers and unowned namespaces)."""

    id: str
    cells: list[CapabilityCell]
    calls: int
    amount: Number


class CapabilityMatrix(Document):
    """Units × capabilities: billable calls and the amount charged; `totals` per capability."""

    capabilities: list[str]
    units: list[CapabilityRow]
    totals: list[CapabilityCell]
    calls: int
    amount: Number


class UndeclaredCaller(Document):
    """A namespace that called a capability it does not declare in `consumes` (doctor: undeclared-caller)."""

    cluster: str
    namespace: str
    unit: str
    capability: str
    calls: int
    """Every call, billable or not."""


class FinanceSummary(Document):
    """All units side by side: budget vs actual, share of the pool, idle money, capability use."""

    omit_when_none: ClassVar[frozenset[str]] = frozenset(
        {"time_zone", "data_findings", "capabilities", "undeclared_callers"}
    )
    period: str
    period_start: str
    period_end: str
    time_zone: str | None = None
    """The billing time zone whose month `period` is; absent: UTC."""
    issuer: Issuer
    currency: str
    billing_mode: str
    units: list[SummaryUnit]
    shared_namespaces: list[SharedNamespace]
    total: SummaryTotal
    capabilities: CapabilityMatrix | None = None
    """Absent when no capability calls were counted."""
    undeclared_callers: list[UndeclaredCaller] | None = None
    data_findings: list[DataFinding] | None = None


def invoice_schema() -> str:
    """The published JSON Schema of the invoice document, as the file holds it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Invoice.model_json_schema()}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # rewrite the published schema after changing the models
    SCHEMA_FILE.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_FILE.write_text(invoice_schema(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")
