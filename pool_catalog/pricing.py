"""Price a quota at the rate card: what a namespace or unit costs per month if it used all of it.

Used by catalog checks (budget warning), stack outputs, `pool request` and the policy pack, so
every place quotes the same figure. Egress is not bounded by a quota and so is not included.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from .models import (
    HOURS_PER_MONTH,
    PRICE_UNITS,
    BusinessUnit,
    Namespace,
    Quota,
    RateCard,
    RateVersion,
    Resource,
)
from .quantities import GIB

# ISO 4217 currencies without a minor unit; every other code is taken to have cents.
_ZERO_DECIMAL_CURRENCIES = {
    "BIF",
    "CLP",
    "DJF",
    "GNF",
    "ISK",
    "JPY",
    "KMF",
    "KRW",
    "PYG",
    "RWF",
    "UGX",
    "VND",
    "VUV",
    "XAF",
    "XOF",
    "XPF",
}


class MissingPriceError(LookupError):
    """The rate card has no price for a resource that is allocated or used."""


def minor_unit(currency: str) -> Decimal:
    """Smallest amount of `currency` that appears on an invoice (0.01, or 1 for JPY…)."""
    return Decimal(1) if currency in _ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Half-even rounding to the currency's minor unit, as on an invoice line."""
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_EVEN)


def rate_version_for(rates: RateCard, when: dt.datetime | None = None) -> RateVersion:
    """The version in force at `when` (default: now); before the first version, the first."""
    when = when or dt.datetime.now(dt.UTC)
    return rates.version_at(when) or rates.sorted_versions()[0]


def hourly_price(version: RateVersion, resource: Resource, tier: str | None = None) -> Decimal:
    """Price of one usage unit (core-hour, GiB-hour, GiB, …); raises MissingPriceError."""
    price = version.price_of(resource, tier)
    if price is None:
        what = f"storage tier {tier!r}" if resource is Resource.STORAGE else resource.value
        raise MissingPriceError(
            f"rates.yaml version effective {version.effective_from:%Y-%m-%d %H:%M} has no price for {what}"
        )
    return price.price / PRICE_UNITS[resource][price.unit]


@dataclass(frozen=True)
class QuotaCost:
    """Full-quota monthly cost of one namespace, per (resource, tier)."""

    lines: dict[tuple[Resource, str], Decimal]

    @property
    def total(self) -> Decimal:
        return sum(self.lines.values(), Decimal(0))


def quota_monthly_cost(quota: Quota, version: RateVersion) -> QuotaCost:
    """Cost of holding `quota` fully for a 730-hour month at `version`'s prices (unrounded)."""
    hours = HOURS_PER_MONTH
    lines: dict[tuple[Resource, str], Decimal] = {
        (Resource.CPU, ""): quota.cpu * hours * hourly_price(version, Resource.CPU),
        (Resource.MEMORY, ""): quota.memory / GIB * hours * hourly_price(version, Resource.MEMORY),
    }
    if quota.gpu:
        lines[(Resource.GPU, "")] = quota.gpu * hours * hourly_price(version, Resource.GPU)
    if quota.load_balancers:
        lines[(Resource.LOAD_BALANCER, "")] = (
            quota.load_balancers * hours * hourly_price(version, Resource.LOAD_BALANCER)
        )
    for tier, size in sorted(quota.storage.items()):
        if size:
            lines[(Resource.STORAGE, tier)] = size / GIB * hours * hourly_price(version, Resource.STORAGE, tier)
    return QuotaCost(lines)


def namespace_monthly_cost(namespace: Namespace, version: RateVersion) -> Decimal:
    return quota_monthly_cost(namespace.quota, version).total


def unit_monthly_cost(unit: BusinessUnit, version: RateVersion) -> Decimal:
    """Full-quota monthly cost of every namespace of `unit` (unrounded)."""
    return sum((namespace_monthly_cost(ns, version) for ns in unit.namespaces), Decimal(0))
