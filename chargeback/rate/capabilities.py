"""Capability calls → money per (consumer namespace, capability, call class): pure functions.

Methods (rates.yaml `capabilities`, pool_catalog.models.CallMethod), each applied to the hours its
version is in force, so a change mid-month gives one line per version:

* per_call — billable calls / 1,000 × the class's price, rounded half-even to the minor unit per line.
  A provider calling its own capability is not charged; calls of unknown callers are priced but
  charged to nobody (`charged` false, unit `unallocated`): what the platform could not bill.
* cost_recovery — the provider namespace's own cost (its priced lines of the period, an input) is
  split across everyone who made billable calls, by calls, with largest-remainder rounding so the
  parts add up to the cost exactly. The parts of the provider's own calls and of unknown callers stay
  with the provider (`charged` false). A version in force for part of the period recovers that part's
  share of the cost (hours in force / hours of the period, rounded half-even).
* none — calls shown with amount zero.

Calls answered with a not-billable code (default 5xx) are carried as `not_billable_calls`, never priced.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from pool_catalog.models import CallMethod, CapabilityRate, CapabilityRateVersion, Catalog
from pool_catalog.pricing import minor_unit, round_money

from ..collect.calls import UNKNOWN_CALLER, check_calls_frame
from ..errors import RatingError
from ..period import Period
from .frames import check_frame, empty_frame
from .rating import UNALLOCATED, _scaled, allocate

DEFAULT_CLASS = "default"
"""Call class of per_call calls that no declared class matches."""

PER_THOUSAND = Decimal(1000)

CAPABILITY_LINE_SCHEMA = {
    "period": "str",
    "cluster": "str",
    "capability": "str",
    "method": "str",  # per_call, cost_recovery, none
    "provider_unit": "str",
    "provider_namespace": "str",
    "consumer_unit": "str",  # owner of consumer_namespace; `unallocated` for unknown or unowned callers
    "consumer_cost_center": "str",
    "consumer_namespace": "str",  # chargeback.collect.calls.UNKNOWN_CALLER for unknown callers
    "call_class": "str",  # per_call: the class (DEFAULT_CLASS if none matches); other methods: ""
    "calls": "int",  # billable calls
    "not_billable_calls": "int",  # calls answered with a not-billable code
    "unit_price": "decimal",  # per_call: price per 1,000 calls; other methods: 0
    "share": "decimal",  # cost_recovery: fraction of the billable calls (1e-9); per_call 1; none 0
    "recovered_cost": "decimal",  # cost_recovery: the provider cost split by this version; other methods: 0
    "amount": "decimal",
    "charged": "bool",  # whether `amount` moves to consumer_unit (false: provider's own, unknown caller, or 0)
    "declared": "bool",  # whether the consumer declares `consumes` of the capability (provider, unknown: true)
    "currency": "str",
    "rate_effective_from": "datetime-utc",
    "charge_period_start": "datetime-utc",
    "charge_period_end": "datetime-utc",
}
"""A rated capability line: one per (cluster, capability, method version, consumer namespace, call class)."""

CAPABILITY_LINE_ORDER = ["cluster", "capability", "rate_effective_from", "consumer_namespace", "call_class"]


def provider_costs(lines: pd.DataFrame) -> dict[tuple[str, str], Decimal]:
    """(cluster, namespace) → the namespace's own cost: its rated lines, without shares of shared namespaces."""
    own = lines[lines["shared_split"] == ""]
    return {
        (cluster, namespace): sum(group["amount"], Decimal(0))
        for (cluster, namespace), group in own.groupby(["cluster", "namespace"], sort=True)
    }


def per_call_amount(calls: int, price_per_thousand: Decimal, currency: str) -> Decimal:
    """calls / 1,000 × price, half-even to the currency's minor unit."""
    return round_money(Decimal(calls) / PER_THOUSAND * price_per_thousand, currency)


def recover(cost: Decimal, calls: Mapping[str, int], currency: str) -> dict[str, Decimal]:
    """Split `cost` across callers by their calls: largest remainder in minor units, parts sum to `cost`.

    Callers without calls get nothing; with no calls at all nothing is split (the provider keeps its cost)."""
    callers = [name for name in sorted(calls) if calls[name] > 0]
    if not callers or cost == 0:
        return dict.fromkeys(callers, Decimal(0).quantize(minor_unit(currency)))
    parts = allocate(cost, [Fraction(calls[name]) for name in callers], minor_unit(currency))
    return dict(zip(callers, parts, strict=True))


def _version_starts(rate: CapabilityRate) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(v.effective_from) for v in rate.versions]).as_unit("ns")


def rate_calls(
    calls: pd.DataFrame,
    catalog: Catalog,
    period: Period,
    costs: Mapping[tuple[str, str], Decimal],
) -> pd.DataFrame:
    """Rated capability lines of the period from the calls frame; `costs` are `provider_costs` of the rated lines
    (a provider namespace absent from them had no priced line, so nothing to recover).

    A capability without an entry in rates.yaml is rated as method `none` (the catalog check warns)."""
    check_calls_frame(calls, "capability rating (calls)")
    if calls.empty:
        return empty_frame(CAPABILITY_LINE_SCHEMA)
    rates = catalog.rates
    currency = rates.currency
    lines: list[dict] = []
    for (cluster, capability), frame in calls.groupby(["cluster", "capability"], sort=True):
        rate = rates.capability_rate(capability)
        if rate is None:
            versions = [CapabilityRateVersion(effective_from=period.start, method=CallMethod.NONE)]
            index = np.zeros(len(frame), dtype=np.int64)
        else:
            versions = list(rate.versions)
            index = _version_starts(rate).searchsorted(pd.DatetimeIndex(frame["hour"]).as_unit("ns"), side="right") - 1
            if (index < 0).any():
                first = frame["hour"][index < 0].min()
                raise RatingError(
                    f"rates.yaml capabilities entry {capability!r} has no version in force at {first.isoformat()} "
                    f"(calls in cluster {cluster}): its first version starts "
                    f"{versions[0].effective_from:%Y-%m-%d %H:%M}; add a version with an earlier effective_from"
                )
        provider = frame["provider_namespace"].iloc[0]
        for number in sorted(set(index.tolist())):
            version = versions[number]
            span = frame[index == number]
            lines += _version_lines(span, version, catalog, period, cluster, capability, provider, costs, currency)
    out = pd.DataFrame(lines, columns=list(CAPABILITY_LINE_SCHEMA))
    for column, kind in CAPABILITY_LINE_SCHEMA.items():
        if kind == "datetime-utc":
            out[column] = pd.to_datetime(out[column], utc=True).astype("datetime64[ns, UTC]")
        elif kind == "int":
            out[column] = out[column].astype("int64")
        elif kind == "bool":
            out[column] = out[column].astype(bool)
        else:
            out[column] = out[column].astype(object)
    out = out.sort_values(CAPABILITY_LINE_ORDER, kind="stable").reset_index(drop=True)
    return check_frame(out, CAPABILITY_LINE_SCHEMA, "capability rating (lines)")


def _version_lines(
    span: pd.DataFrame,
    version: CapabilityRateVersion,
    catalog: Catalog,
    period: Period,
    cluster: str,
    capability: str,
    provider: str,
    costs: Mapping[tuple[str, str], Decimal],
    currency: str,
) -> list[dict]:
    """The lines of one capability's calls in the hours one version is in force."""
    provider_unit = catalog.owner_of(provider, cluster)
    if provider_unit is None:
        raise RatingError(f"capability {capability!r}: provider namespace {provider!r} has no owner in the catalog")
    start = max(version.effective_from, period.start)
    later = catalog.rates.capability_rate(capability)
    following = [v.effective_from for v in (later.versions if later else []) if v.effective_from > start]
    end = min([period.end, *following])
    per_call = version.method is CallMethod.PER_CALL
    classes = span["class_value"].map(lambda v: c.name if (c := version.class_of(v)) else DEFAULT_CLASS)
    keyed = span.assign(call_class=classes if per_call else "")
    billable = keyed[keyed["billable"]].groupby(["consumer_namespace", "call_class"])["calls"].sum()
    failed = keyed[~keyed["billable"]].groupby(["consumer_namespace", "call_class"])["calls"].sum()
    hours = keyed.groupby(["consumer_namespace", "call_class"])["hour"].agg(["min", "max"])
    recovered, parts, total_calls = Decimal(0), {}, 0
    if version.method is CallMethod.COST_RECOVERY:
        cost = costs.get((cluster, provider), Decimal(0))
        in_force = Fraction(int((end - start).total_seconds()) // 3600, period.hours)
        recovered = cost if in_force == 1 else round_money(Decimal(in_force.numerator) * cost / in_force.denominator,
                                                           currency)  # fmt: skip
        by_consumer = {name: int(n) for (name, _cls), n in billable.items()}
        parts = recover(recovered, by_consumer, currency)
        total_calls = sum(by_consumer.values())
    lines = []
    for consumer, call_class in hours.index:
        count = int(billable.get((consumer, call_class), 0))
        unknown = consumer == UNKNOWN_CALLER
        own = consumer == provider
        owner = None if unknown else catalog.owner_of(consumer, cluster)
        charged = not (unknown or own or owner is None)
        if per_call:
            chosen = version.class_of(_class_value(keyed, consumer, call_class))
            price = chosen.price if chosen else version.price
            assert price is not None  # per_call versions are validated to carry a price
            amount, share = per_call_amount(count, price, currency), Decimal(1)
            if own:
                amount = Decimal(0).quantize(minor_unit(currency))
        elif version.method is CallMethod.COST_RECOVERY:
            price = Decimal(0)
            amount = parts.get(consumer, Decimal(0).quantize(minor_unit(currency)))
            share = _scaled(Decimal(1), Fraction(count, total_calls)) if total_calls else Decimal(0)
        else:
            price, amount, share = Decimal(0), Decimal(0).quantize(minor_unit(currency)), Decimal(0)
        declared = unknown or own or _declares(catalog, cluster, consumer, capability)
        lines.append(
            {
                "period": period.label,
                "cluster": cluster,
                "capability": capability,
                "method": version.method.value,
                "provider_unit": provider_unit.id,
                "provider_namespace": provider,
                "consumer_unit": owner.id if owner else UNALLOCATED,
                "consumer_cost_center": owner.cost_center if owner else "",
                "consumer_namespace": consumer,
                "call_class": call_class,
                "calls": count,
                "not_billable_calls": int(failed.get((consumer, call_class), 0)),
                "unit_price": price,
                "share": share,
                "recovered_cost": recovered,
                "amount": amount,
                "charged": charged and amount > 0,
                "declared": declared,
                "currency": currency,
                "rate_effective_from": version.effective_from,
                "charge_period_start": hours.loc[(consumer, call_class), "min"].to_pydatetime(),
                "charge_period_end": hours.loc[(consumer, call_class), "max"].to_pydatetime() + dt.timedelta(hours=1),
            }
        )
    return lines


def _class_value(frame: pd.DataFrame, consumer: str, call_class: str) -> str:
    """One class-label value of the (consumer, class) group: enough to find its class again."""
    rows = frame[(frame["consumer_namespace"] == consumer) & (frame["call_class"] == call_class)]
    return str(rows["class_value"].iloc[0])


def _declares(catalog: Catalog, cluster: str, namespace: str, capability: str) -> bool:
    for _unit, ns in catalog.namespaces(cluster):
        if ns.name == namespace:
            return capability in ns.consumes
    return False
