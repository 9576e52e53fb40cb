"""Prometheus answers → the hourly usage frame, in one place.

The usage frame is the contract between collection and rating. One row per
(hour, cluster, namespace, resource, tier); see `USAGE_SCHEMA` for the columns and
`check_usage_frame` for the rules every frame obeys.

Units of `used`, `requested` and `allocated` (per row, i.e. per hour):
  cpu core-hours · memory GiB-hours · storage GiB-hours · egress GiB (2^30 bytes) ·
  gpu gpu-hours · load_balancer lb-hours · pods pod-hours (not billed).
"""

from __future__ import annotations

import math

import pandas as pd

from infra.catalog.models import Resource

from .errors import UsageDataError

PODS = "pods"
"""Non-billable resource: running pod-hours, kept for reports and idle analysis."""

RESOURCES: tuple[str, ...] = (*(r.value for r in Resource), PODS)
"""Values of the `resource` column: the billable `Resource` values plus `pods`."""

USAGE_SCHEMA: dict[str, str] = {
    "hour": "datetime64[ns, UTC]",  # start of the hour
    "cluster": "object",  # str
    "namespace": "object",  # str
    "resource": "object",  # str, one of RESOURCES
    "tier": "object",  # str: storage tier ("" for other resources; raw StorageClass if no tier matches)
    "used": "float64",  # usage in the resource's usage unit for that hour; NaN only when coverage == 0
    "requested": "float64",  # request-hours in the same unit; NaN where meaningless (egress, pods)
    "allocated": "float64",  # quota-hours from kube_resourcequota{type="hard"}; NaN where no quota
    "coverage": "float64",  # 0..1 share of the hour covered by scrapes of the row's source
}
"""Column → dtype of the usage frame, in column order."""

USAGE_COLUMNS: tuple[str, ...] = tuple(USAGE_SCHEMA)
USAGE_KEY: tuple[str, ...] = ("hour", "cluster", "namespace", "resource", "tier")


def empty_usage_frame() -> pd.DataFrame:
    """A frame with the usage columns and dtypes and no rows."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in USAGE_SCHEMA.items()})


def check_usage_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return `frame` unchanged if it obeys the usage schema, else raise `UsageDataError` listing every breach."""
    problems: list[str] = []
    columns = list(frame.columns)
    if columns != list(USAGE_COLUMNS):
        missing = [c for c in USAGE_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in USAGE_SCHEMA]
        raise UsageDataError(
            f"usage frame columns are {columns}; expected {list(USAGE_COLUMNS)}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )
    for name, dtype in USAGE_SCHEMA.items():
        if str(frame[name].dtype) != dtype:
            problems.append(f"column {name!r} has dtype {frame[name].dtype}, expected {dtype}")
    if problems:
        raise UsageDataError("usage frame breaks its schema:\n  " + "\n  ".join(problems))
    if frame.empty:
        return frame

    def rows(mask: pd.Series) -> str:
        sample = frame.loc[mask, list(USAGE_KEY)].head(3).to_dict("records")
        return f"{int(mask.sum())} rows, e.g. {sample}"

    for name in ("cluster", "namespace", "resource", "tier"):
        not_text = ~frame[name].map(lambda v: isinstance(v, str))
        if not_text.any():
            problems.append(f"column {name!r} holds non-text values: {rows(not_text)}")
    if problems:
        raise UsageDataError("usage frame breaks its schema:\n  " + "\n  ".join(problems))

    hours = frame["hour"]
    off_hour = hours != hours.dt.floor("h")
    if off_hour.any():
        problems.append(f"hour is not the start of an hour: {rows(off_hour)}")
    unknown = ~frame["resource"].isin(RESOURCES)
    if unknown.any():
        problems.append(f"resource is not one of {', '.join(RESOURCES)}: {rows(unknown)}")
    tier_outside_storage = (frame["resource"] != Resource.STORAGE.value) & (frame["tier"] != "")
    if tier_outside_storage.any():
        problems.append(f"tier is set on a resource other than storage: {rows(tier_outside_storage)}")
    empty_names = (frame["namespace"] == "") | (frame["cluster"] == "")
    if empty_names.any():
        problems.append(f"cluster or namespace is empty: {rows(empty_names)}")
    coverage = frame["coverage"]
    bad_coverage = coverage.isna() | (coverage < 0) | (coverage > 1)
    if bad_coverage.any():
        problems.append(f"coverage is outside 0..1: {rows(bad_coverage)}")
    unknown_used = frame["used"].isna() & (coverage > 0)
    if unknown_used.any():
        problems.append(f"used is NaN although the hour was scraped (coverage > 0): {rows(unknown_used)}")
    for name in ("used", "requested", "allocated"):
        negative = frame[name] < 0
        if negative.any():
            problems.append(f"{name} is negative: {rows(negative)}")
        infinite = frame[name].map(lambda v: isinstance(v, float) and math.isinf(v))
        if infinite.any():
            problems.append(f"{name} is infinite: {rows(infinite)}")
    duplicated = frame.duplicated(list(USAGE_KEY), keep=False)
    if duplicated.any():
        problems.append(f"rows repeat the key {USAGE_KEY}: {rows(duplicated)}")
    if problems:
        raise UsageDataError("usage frame breaks its rules:\n  " + "\n  ".join(problems))
    return frame
