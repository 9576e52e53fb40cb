"""Group a month of hourly rows by a few key columns without pandas' per-key index arrays.

A month of a large pool is millions of rows. `DataFrame.groupby` over six or eight key columns builds an
int64 array per key before combining them, several times the frame's own size. Here the keys' codes are
folded into one integer per row (mixed radix over each column's sorted values, 32 bits when they fit),
numbered once, and summed with exact integer arithmetic; group numbers follow the keys' sorted order, as
`groupby(sort=True)` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

Column = pd.Series | pd.Categorical | np.ndarray
"""A key column: a Series, or (cheaper for a subset of rows: no index) a Categorical or an array."""

HOUR_NS = 3600 * 10**9
"""An hour in nanoseconds (the usage frame's step)."""

_RADIX_LIMIT = 2**62
"""Largest product of the key columns' distinct counts (int64 with room to spare)."""
_LOOKUP_LIMIT = 2**26
"""Up to this many possible keys (a byte each) groups are numbered through a table of them, else by sorting."""


@dataclass(frozen=True)
class Groups:
    """Which group each row is in, and the groups' keys in sorted order."""

    codes: np.ndarray
    """Group number per row (int32 or int64), 0 … len(keys) − 1."""
    keys: pd.DataFrame
    """One row per group: the key columns' values, sorted lexicographically; the index is the group number."""

    def __len__(self) -> int:
        return len(self.keys)

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Per-group sum of an integer (exact) or float array."""
        out = np.zeros(len(self), dtype=values.dtype)
        np.add.at(out, self.codes, values)
        return out

    def sum_rows(self, rows: np.ndarray, values_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Per-group sum of `values_of(positions)`, asked a slice of `rows` at a time (`rows`: the frame
        positions of the grouped rows, in order): the values of millions of rows are never all made at once."""
        out = np.zeros(len(self), dtype=np.int64)
        for part in row_slices(len(rows)):
            values = values_of(rows[part])
            if out.dtype != values.dtype:
                out = out.astype(values.dtype)
            np.add.at(out, self.codes[part], values)
        return out

    def min_rows(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per-group least of `values[rows]` (integers), a slice of `rows` at a time."""
        return self._reduce_rows(rows, values, np.minimum, np.iinfo(values.dtype).max)

    def max_rows(self, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Per-group greatest of `values[rows]` (integers), a slice of `rows` at a time."""
        return self._reduce_rows(rows, values, np.maximum, np.iinfo(values.dtype).min)

    def _reduce_rows(self, rows: np.ndarray, values: np.ndarray, ufunc: np.ufunc, start: int) -> np.ndarray:
        out = np.full(len(self), start, dtype=values.dtype)
        for part in row_slices(len(rows)):
            ufunc.at(out, self.codes[part], values[rows[part]])
        return out

    def size(self) -> np.ndarray:
        return np.bincount(self.codes, minlength=len(self)).astype(np.int64)

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


def _sorted_codes(values: Column) -> tuple[np.ndarray, pd.Index]:
    """Codes into the column's distinct values, numbered in sorted order."""
    if isinstance(values, pd.Series):
        values = values.array if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()
    if isinstance(values, pd.Categorical):
        codes, categories = values.codes, values.categories
        if (codes < 0).any():
            raise ValueError("a key column has missing values: it cannot be a group key")
        if categories.is_monotonic_increasing:
            return codes, categories
        order = np.argsort(categories.to_numpy(), kind="stable")
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        return rank[codes], categories.take(order)
    values = np.asarray(values)
    if values.dtype.kind in "iu" and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low < _LOOKUP_LIMIT:
            # Small whole numbers (hours, versions, group numbers) are their own codes: no hashing.
            codes = values.astype(np.int32, copy=False) if low == 0 else (values - low).astype(np.int32)
            return codes, pd.Index(np.arange(low, high + 1, dtype=values.dtype))
    codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError("a key column has missing values: it cannot be a group key")
    return codes, pd.Index(uniques)


@dataclass(frozen=True)
class Folded:
    """Every row's key columns as one integer: equal keys give equal integers, and integer order is the
    keys' lexicographic order."""

    values: np.ndarray
    """One int32 (or int64 for many keys) per row."""
    levels: list[tuple[str, pd.Index]]
    """Each key column's distinct values, in sorted order (the digits of the folded integer)."""
    radix: int
    """How many keys are possible: the product of the columns' distinct counts."""


def fold(columns: Mapping[str, Column]) -> Folded:
    """The key columns folded into one integer per row (columns of equal length, no missing values)."""
    levels = [(name, *_sorted_codes(values)) for name, values in columns.items()]
    if not levels:
        raise ValueError("a key needs at least one column")
    sizes = [max(len(distinct), 1) for _, _, distinct in levels]
    radix = int(np.prod(sizes, dtype=object))
    if radix >= _RADIX_LIMIT:
        raise ValueError(f"too many distinct keys to group by {', '.join(columns)}")
    folded = np.zeros(len(levels[0][1]), dtype=np.int32 if radix < 2**31 else np.int64)
    for (_, codes, _), size in zip(levels, sizes, strict=True):
        folded *= size
        folded += codes
    return Folded(folded, [(name, distinct) for name, _, distinct in levels], radix)


def group_rows(columns: Mapping[str, Column]) -> Groups:
    """The groups of rows that share every key column's value (columns of equal length, no missing values)."""
    folded = fold(columns)
    rows = len(folded.values)
    if folded.radix <= _LOOKUP_LIMIT:
        # Mark the keys present in a table of every possible key (a byte each), then number the rows through a
        # table of group numbers (when it is smaller than the rows) or by binary search: no hashing, no sort.
        present = np.zeros(folded.radix, dtype=bool)
        present[folded.values] = True
        uniques = np.flatnonzero(present).astype(folded.values.dtype)
        if folded.radix <= 2 * rows:
            number = np.cumsum(present, dtype=np.int32)
            number -= 1
            del present
            group_codes = number[folded.values]
            del number
        else:
            del present
            group_codes = np.searchsorted(uniques, folded.values)
    else:
        uniques, group_codes = np.unique(folded.values, return_inverse=True)
    rest = np.asarray(uniques, dtype=np.int64)
    keys: dict[str, np.ndarray] = {}
    for name, distinct in reversed(folded.levels):
        size = max(len(distinct), 1)
        keys[name] = np.asarray(distinct.take(rest % size))
        rest = rest // size
    return Groups(codes=group_codes, keys=pd.DataFrame({name: keys[name] for name, _ in folded.levels}))


def take_columns(frame: pd.DataFrame, rows: np.ndarray, columns: Sequence[str]) -> dict[str, Column]:
    """`columns` of `frame` at the positions `rows`, as arrays: a Series taken at `rows` would carry an index
    as large as the column itself (categoricals stay categorical, datetimes keep their time zone)."""
    taken: dict[str, Column] = {}
    for name in columns:
        column = frame[name]
        if isinstance(column.dtype, (pd.CategoricalDtype, pd.DatetimeTZDtype)):
            taken[name] = column.array.take(rows)
        else:
            taken[name] = column.to_numpy()[rows]
    return taken


def row_slices(rows: int, size: int = 1 << 20) -> Iterator[slice]:
    """Consecutive slices of `rows` rows, `size` at a time: arithmetic on millions of rows at once would hold
    several row-sized temporaries at the same moment."""
    for start in range(0, rows, size):
        yield slice(start, min(start + size, rows))


def bins_of(times: Column, edges: np.ndarray) -> np.ndarray:
    """The number of the bin holding each of `times`, bins starting at `edges` (ascending epoch nanoseconds):
    for steps of unequal length, such as local days across a daylight-saving change. 32-bit, a slice at a time."""
    nanoseconds = pd.DatetimeIndex(times).as_unit("ns").asi8
    number = np.empty(len(nanoseconds), dtype=np.int32)
    for part in row_slices(len(nanoseconds)):
        number[part] = np.searchsorted(edges, nanoseconds[part], side="right") - 1
    return number


def steps_since(times: Column, start: int, step: int) -> np.ndarray:
    """Whole `step`s (nanoseconds: an hour, a day) from `start` (epoch nanoseconds) to each of `times`, as
    32-bit numbers computed a slice at a time: a small key for `group_rows` instead of 64-bit times."""
    nanoseconds = pd.DatetimeIndex(times).as_unit("ns").asi8
    number = np.empty(len(nanoseconds), dtype=np.int32)
    for part in row_slices(len(nanoseconds)):
        number[part] = (nanoseconds[part] - start) // step
    return number
