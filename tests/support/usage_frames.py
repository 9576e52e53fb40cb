"""Hand-built usage frames with closed-form quantities, for rating, idle and output tests."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

import pandas as pd

from chargeback.collect.usage import USAGE_SCHEMA, check_usage_frame

NAN = math.nan


def hours(start: dt.datetime, count: int) -> list[dt.datetime]:
    return [start + dt.timedelta(hours=i) for i in range(count)]


def row(
    hour: dt.datetime,
    namespace: str,
    resource: str,
    used: float,
    *,
    requested: float = NAN,
    allocated: float = NAN,
    tier: str = "",
    cluster: str = "dc1",
    coverage: float = 1.0,
    used_peak: float = NAN,
    requested_peak: float = NAN,
) -> dict:
    return {
        "hour": hour,
        "cluster": cluster,
        "namespace": namespace,
        "resource": resource,
        "tier": tier,
        "used": used,
        "requested": requested,
        "allocated": allocated,
        "coverage": coverage,
        "used_peak": used_peak,
        "requested_peak": requested_peak,
    }


def steady(
    namespace: str,
    resource: str,
    used: float,
    start: dt.datetime,
    count: int,
    **kwargs: object,
) -> list[dict]:
    """The same hourly quantity for `count` hours from `start`."""
    return [row(h, namespace, resource, used, **kwargs) for h in hours(start, count)]


def usage_frame(rows: Iterable[dict]) -> pd.DataFrame:
    """A usage frame with the collection schema's columns and dtypes, checked like a collected one."""
    records = list(rows)
    frame = pd.DataFrame(records, columns=list(USAGE_SCHEMA))
    frame["hour"] = pd.to_datetime(frame["hour"], utc=True).astype("datetime64[ns, UTC]")
    for name, dtype in USAGE_SCHEMA.items():
        if name != "hour":
            frame[name] = frame[name].astype(dtype)
    return check_usage_frame(frame)
