"""check_usage_frame: the contract between collection and rating refuses broken frames by name."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest

from chargeback.collect.usage import USAGE_SCHEMA, check_usage_frame, empty_usage_frame
from chargeback.errors import UsageDataError

H0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def frame(**changes: object) -> pd.DataFrame:
    row = {
        "hour": H0,
        "cluster": "dc1",
        "namespace": "di-api",
        "resource": "cpu",
        "tier": "",
        "used": 1.0,
        "requested": 2.0,
        "allocated": 24.0,
        "coverage": 1.0,
        "used_peak": 3.5,
        "requested_peak": 2.5,
    }
    row.update(changes)
    result = pd.DataFrame([row])
    result["hour"] = pd.to_datetime(result["hour"], utc=True).astype("datetime64[ns, UTC]")
    return result.astype({name: dtype for name, dtype in USAGE_SCHEMA.items() if name != "hour"})


def test_a_good_frame_and_an_empty_one_pass() -> None:
    check_usage_frame(frame())
    check_usage_frame(frame(resource="storage", tier="hot"))
    check_usage_frame(frame(used=math.nan, requested=math.nan, allocated=math.nan, coverage=0.0, used_peak=math.nan))
    check_usage_frame(empty_usage_frame())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hour": H0 + dt.timedelta(minutes=30)}, "hour is not the start of an hour"),
        ({"resource": "bandwidth"}, "resource is not one of cpu, memory, storage, egress, gpu, load_balancer, pods"),
        ({"tier": "hot"}, "tier is set on a resource other than storage"),
        ({"namespace": ""}, "cluster or namespace is empty"),
        ({"coverage": 1.5}, "coverage is outside 0..1"),
        ({"used": math.nan}, r"used is NaN although the hour was scraped"),
        ({"used": -1.0}, "used is negative"),
        ({"allocated": math.inf}, "allocated is infinite"),
        ({"used_peak": -0.5}, "used_peak is negative"),
        ({"requested_peak": math.inf}, "requested_peak is infinite"),
        ({"used": math.nan, "coverage": 0.0}, r"used_peak is set where used is unknown"),
    ],
)
def test_broken_rows_are_named(changes: dict, message: str) -> None:
    with pytest.raises(UsageDataError, match=message) as raised:
        check_usage_frame(frame(**changes))
    assert "di-api" in str(raised.value) or "namespace" in message or "''" in str(raised.value)


def test_wrong_columns_and_dtypes_are_named() -> None:
    with pytest.raises(UsageDataError, match=r"missing \['coverage'\]"):
        check_usage_frame(frame().drop(columns="coverage"))
    with pytest.raises(UsageDataError, match="column 'used' has dtype object, expected float64"):
        check_usage_frame(frame().astype({"used": object}))


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(UsageDataError, match="rows repeat the key"):
        check_usage_frame(pd.concat([frame(), frame()], ignore_index=True))
