"""Price a quota at the rate card: what a namespace or unit costs per month if it used all of it.

Used by catalog checks (budget warning), stack outputs, `pool request` and the policy pack, so
every place quotes the same figure. Egress is not bounded by a quota and so is not included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from .models import HOURS_PER_MONTH, BusinessUnit, Namespace, Quota, RateCard, RateVersion
from .numbers import minor_unit
from .resources import spec_of, specs


class MissingPriceError(LookupError):
    """The rate card has no price for a resource that is allocated or used."""


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-even rounding to the currency's minor unit, as on an invoice line."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def rate_version_for(rates: RateCard, when: dt.datetime | None = None) -> RateVersion:
    """The version in force at `when` (default: now); before the first version, the first."""
    when = when or dt.datetime.now(dt.UTC)
    return rates.version_at(when) or rates.sorted_versions()[0]


def hourly_price(version: RateVersion, resource: str, tier: str | None = None) -> Decimal:
    """Price of one usage unit (core-hour, GiB-hour, GiB, …); raises MissingPriceError."""
    spec = spec_of(resource)
    price = version.price_of(resource, tier)
    if price is None:
        what = f"{spec.name} tier {tier!r}" if spec.per_tier else spec.name
        raise MissingPriceError(
            f"rates.yaml version effective {version.effective_from:%Y-%m-%d %H:%M} has no price for {what}"
        )
    return price.price / spec.price_units[price.unit]


@dataclass(frozen=True)
class QuotaCost:
    """Full-quota monthly cost of one namespace, per (resource, tier)."""

    lines: dict[tuple[str, str], Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.lines.values(), Decimal(0))


def quota_monthly_cost(quota: Quota, version: RateVersion) -> QuotaCost:
    """Cost of holding `quota` fully for a 730-hour month at `version`'s prices (unrounded).

    Every resource a quota bounds, in table order, then storage per tier; a resource the quota model
    requires (cpu, memory) has its line even at zero, the others only when granted."""
    hours = HOURS_PER_MONTH
    lines: dict[tuple[str, str], Decimal] = {}
    tiered = []
    for spec in specs():
        if spec.quota is None:
            continue
        if spec.per_tier:
            tiered.append(spec)
            continue
        amount = quota.amount(spec)
        field = Quota.model_fields.get(spec.quota.field)
        if amount or (field is not None and field.is_required()):
            lines[(spec.name, "")] = amount / spec.quota.per_unit * hours * hourly_price(version, spec.name)
    for spec in tiered:
        for tier, size in sorted(getattr(quota, spec.quota.field).items()):
            if size:
                lines[(spec.name, tier)] = size / spec.quota.per_unit * hours * hourly_price(version, spec.name, tier)
    return QuotaCost(lines)


def namespace_monthly_cost(namespace: Namespace, version: RateVersion) -> Decimal:
    return quota_monthly_cost(namespace.quota, version).total


def unit_monthly_cost(unit: BusinessUnit, version: RateVersion) -> Decimal:
    """Full-quota monthly cost of every namespace of `unit` (unrounded)."""
    return sum((namespace_monthly_cost(ns, version) for ns in unit.namespaces), Decimal(0))
