"""Group a month of hourly rows by a few key columns without pandas' per-key index arrays.

A month of a large pool is millions of rows. `DataFrame.groupby` over six or eight key columns builds an
int64 array per key before combining them, several times the frame's own size. Here the keys' codes are
folded into one int64 per row (mixed radix over each column's sorted values), numbered once, and summed
with exact integer arithmetic; group numbers follow the keys' sorted order, as `groupby(sort=True)` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

_RADIX_LIMIT = 2**62
"""Largest product of the key columns' distinct counts (int64 with room to spare)."""


@dataclass(frozen=True)
class Groups:
    """Which group each row is in, and the groups' keys in sorted order."""

    codes: np.ndarray
    """Group number per row (int64), 0 … len(keys) − 1."""
    keys: pd.DataFrame
    """One row per group: the key columns' values, sorted lexicographically; the index is the group number."""

    def __len__(self) -> int:
        return len(self.keys)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-group sum of an integer (exact) or float array."""
        out = np.zeros(len(self), dtype=values.dtype)
        np.add.at(out, self.codes, values)
        return out

    def size(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self)).astype(np.int64)

    def min(self, values: np.ndarray) -> np.ndarray:
        out = np.full(len(self), np.iinfo(values.dtype).max, dtype=values.dtype)
        np.minimum.at(out, self.codes, values)
        return out

    def max(self, values: np.ndarray) -> np.ndarray:
        out = np.full(len(self), np.iinfo(values.dtype).min, dtype=values.dtype)
        np.maximum.at(out, self.codes, values)
        return out

    def quantile(self, values: np.ndarray, q: float) -> np.ndarray:
        """Per-group quantile with linear interpolation, as `groupby(...).quantile(q)` computes it
        (`values` without NaN)."""
        order = np.lexsort((values, self.codes))
        ordered = values[order]
        del order
        counts = self.size()
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        position = q * (counts - 1).astype(float)
        low = np.floor(position).astype(np.int64)
        fraction = position % 1
        high = np.minimum(low + 1, counts - 1)
        below, above = ordered[starts + low], ordered[starts + high]
        return below + (above - below) * fraction


def _sorted_codes(values: pd.Series | np.ndarray) -> tuple[np.ndarray, pd.Index]:
    """Codes into the column's distinct values, numbered in sorted order."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        categories = values.cat.categories
        if (codes < 0).any():
            raise ValueError(f"column {values.name!r} has missing values: it cannot be a group key")
        if categories.is_monotonic_increasing:
            return codes, categories
        order = np.argsort(categories.to_numpy(), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[codes], categories.take(order)
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError("a key column has missing values: it cannot be a group key")
    return codes, pd.Index(uniques)


def group_rows(columns: Mapping[str, pd.Series | np.ndarray]) -> Groups:
    """The groups of rows that share every key column's value (columns of equal length, no missing values)."""
    combined: np.ndarray | None = None
    levels: list[tuple[str, pd.Index]] = []
    radix = 1
    for name, values in columns.items():
        codes, distinct = _sorted_codes(values)
        size = max(len(distinct), 1)
        radix *= size
        if radix >= _RADIX_LIMIT:
            raise ValueError(f"too many distinct keys to group by {', '.join(columns)}")
        if combined is None:
            combined = codes.astype(np.int64)
        else:
            combined *= size
            combined += codes
        levels.append((name, distinct))
    if combined is None:
        raise ValueError("group_rows needs at least one key column")
    group_codes, uniques = pd.factorize(combined, sort=True)
    del combined
    rest = np.asarray(uniques, dtype=np.int64)
    keys: dict[str, pd.Index] = {}
    for name, distinct in reversed(levels):
        size = max(len(distinct), 1)
        keys[name] = distinct.take(rest % size)
        rest = rest // size
    frame = pd.DataFrame({name: np.asarray(keys[name]) for name, _ in levels})
    return Groups(codes=group_codes.astype(np.int64, copy=False), keys=frame)
