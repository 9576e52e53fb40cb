"""Declared column schemas of the frames passed between chargeback stages, checked at each hand-over.

A stage that receives a frame with a missing column or the wrong kind of values fails at once
with the stage's name, instead of producing a wrong invoice three steps later.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from pandas.api import types

from ..errors import RatingError

# Kinds a column may be declared as, and the check for each.
_KINDS = {
    "datetime-utc": lambda s: isinstance(s.dtype, pd.DatetimeTZDtype) and str(s.dtype.tz) == "UTC",
    "str": lambda s: (
        types.is_string_dtype(s.dtype)
        or types.infer_dtype(s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s, skipna=False)
        in ("string", "empty")
    ),
    "float": lambda s: types.is_float_dtype(s.dtype) or types.is_integer_dtype(s.dtype),
    "int": lambda s: types.is_integer_dtype(s.dtype),
    "decimal": lambda s: s.dtype == object and types.infer_dtype(s, skipna=False) in ("decimal", "empty"),
    "decimal-or-none": lambda s: s.dtype == object and types.infer_dtype(s, skipna=True) in ("decimal", "empty"),
    "bool": lambda s: types.is_bool_dtype(s.dtype),
}

Schema = Mapping[str, str]
"""Column name → kind (one of datetime-utc, str, float, int, decimal, decimal-or-none, bool), in output order."""


def check_frame(frame: pd.DataFrame, schema: Schema, stage: str) -> pd.DataFrame:
    """Return `frame` if it has every declared column with the declared kind; else raise RatingError."""
    problems = []
    for column, kind in schema.items():
        if column not in frame.columns:
            problems.append(f"column {column!r} is missing")
        elif len(frame) and not _KINDS[kind](frame[column]):
            problems.append(f"column {column!r} should hold {kind} values, has {frame[column].dtype}")
    if problems:
        raise RatingError(f"{stage}: the frame does not match its schema: " + "; ".join(problems))
    return frame


def empty_frame(schema: Schema) -> pd.DataFrame:
    """A frame with no rows and the declared columns."""
    return pd.DataFrame({column: pd.Series([], dtype=_EMPTY_DTYPES[kind]) for column, kind in schema.items()})


_EMPTY_DTYPES = {
    "datetime-utc": "datetime64[ns, UTC]",
    "str": object,
    "float": float,
    "int": "int64",
    "decimal": object,
    "decimal-or-none": object,
    "bool": bool,
}
