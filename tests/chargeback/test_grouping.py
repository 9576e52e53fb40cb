"""chargeback.grouping gives what pandas' groupby gives (same groups, same order, same sums and p95 to the bit),
whichever way it numbers the groups: a table of possible keys, binary search or sorting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chargeback import grouping
from chargeback.grouping import fold, group_rows


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    # Categories deliberately unsorted: the groups must still come out in text order.
    namespace = pd.Categorical(
        rng.choice(["team-b", "team-a", "zeta", "alpha"], rows), categories=["zeta", "team-b", "alpha", "team-a"]
    )
    return pd.DataFrame(
        {
            "namespace": namespace,
            "shared": rng.choice([True, False], rows),
            "version": rng.integers(3, 6, rows).astype(np.int16),
            "pvc": rng.choice(["", "data", "logs"], rows).astype(object),
            "nano": rng.integers(0, 10**12, rows),
            "used": np.round(rng.random(rows) * rng.choice([1e-3, 1, 1e3], rows), 4),
        }
    )


KEYS = ["namespace", "shared", "version", "pvc"]


@pytest.mark.parametrize("lookup_limit", [2**26, 1], ids=["table of keys", "sorting"])
@pytest.mark.parametrize("rows", [1, 7, 5000])
def test_groups_equal_pandas_groupby(monkeypatch: pytest.MonkeyPatch, lookup_limit: int, rows: int) -> None:
    monkeypatch.setattr(grouping, "_LOOKUP_LIMIT", lookup_limit)
    frame = _frame(rows, seed=rows)
    groups = group_rows({key: frame[key] for key in KEYS})
    # pandas orders a categorical by its categories; grouping orders by the values, as for text
    expected = frame.astype({"namespace": object}).groupby(KEYS, sort=True)
    assert list(zip(*(groups.keys[k] for k in KEYS), strict=True)) == list(expected.size().index)
    assert groups.size().tolist() == expected.size().tolist()
    assert groups.sum(frame["nano"].to_numpy()).tolist() == expected["nano"].sum().tolist()  # exact integers
    every_row = np.arange(rows)
    assert groups.min_rows(every_row, frame["nano"].to_numpy()).tolist() == expected["nano"].min().tolist()
    assert groups.max_rows(every_row, frame["nano"].to_numpy()).tolist() == expected["nano"].max().tolist()
    assert groups.max(frame["nano"].to_numpy()).tolist() == expected["nano"].max().tolist()
    assert np.array_equal(groups.quantile(frame["used"].to_numpy(), 0.95), expected["used"].quantile(0.95).to_numpy())


def test_many_rows_few_keys_number_rows_through_the_table() -> None:
    frame = _frame(50_000, seed=3)
    groups = group_rows({"namespace": frame["namespace"], "version": frame["version"]})
    assert groups.codes.dtype == np.int32  # 4 bytes a row, not pandas' 8 per key column
    assert groups.keys["namespace"].tolist() == ["alpha"] * 3 + ["team-a"] * 3 + ["team-b"] * 3 + ["zeta"] * 3


def test_folded_keys_order_as_the_columns_do() -> None:
    folded = fold({"hour": np.array([2, 0, 1, 2]), "namespace": pd.Categorical(["b", "a", "a", "a"])})
    assert np.argsort(folded.values, kind="stable").tolist() == [1, 2, 3, 0]
    assert folded.values[0] != folded.values[3]


def test_a_missing_key_is_refused() -> None:
    with pytest.raises(ValueError, match="missing values"):
        group_rows({"namespace": pd.Categorical(["a", None])})
