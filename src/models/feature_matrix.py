"""Feature layout of the GBM models: which columns are features, and the float matrix LightGBM reads.

Every column of ``X`` except the identifiers in ``exclude`` is a feature (unless ``features`` names
them). Numeric, nullable-numeric and boolean columns are numeric features (nulls are missing values,
which LightGBM routes natively); string, object-of-strings and pandas ``category`` columns are
categorical features. The levels seen in training are kept by the model, and every frame is mapped
onto exactly those levels, so one customer scored alone gets the same codes as in a batch; an unseen
level is treated as missing, never an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnclv.errors import ChurnclvError

__all__ = ["FeatureColumnsError", "FeatureLayout", "category_levels", "check_columns", "select_features", "to_matrix"]

# Up to this many rows, features are read row-wise (see _matrix_rows).
_ROW_PATH_MAX_ROWS = 64


class FeatureColumnsError(ChurnclvError, ValueError):
    """A model's input frame misses, repeats or mislabels feature columns; the message names them and the fix."""


@dataclass(frozen=True)
class FeatureLayout:
    """Positions and category lookups derived from a model's ``feature_names_`` and ``categories_``."""

    numeric_names: list[str]
    numeric_j: list[int]
    categorical_names: list[str]
    categorical_j: list[int]
    lookups: dict[str, dict[str, float]]
    indexes: dict[str, pd.Index]

    @classmethod
    def from_categories(cls, names: list[str], cats: dict[str, list[str]]) -> FeatureLayout:
        """Layout of a model fitted on ``names`` with categorical levels ``cats``."""
        return cls(
            numeric_names=[c for c in names if c not in cats],
            numeric_j=[j for j, c in enumerate(names) if c not in cats],
            categorical_names=[c for c in names if c in cats],
            categorical_j=[j for j, c in enumerate(names) if c in cats],
            lookups={c: {v: float(i) for i, v in enumerate(cats[c])} for c in cats},
            indexes={c: pd.Index(cats[c], dtype=object) for c in cats},
        )


def select_features(
    X: pd.DataFrame,
    name: str,
    *,
    features: Sequence[str] | None,
    categorical: Sequence[str] | None,
    exclude: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Decide which columns are features and which of those are categorical.

    ``name`` is the estimator's class name, for the error messages; ``exclude`` includes the id column.
    """
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{name}.fit expects X as a pandas DataFrame with named feature columns, got {type(X).__name__}"
        )
    excluded = set(exclude)
    if features is not None:
        features = list(features)
        missing = [c for c in features if c not in X.columns]
        if missing:
            raise FeatureColumnsError(
                f"X is missing columns {missing} listed in {name}(features=...); "
                "add them to X or remove them from features"
            )
    else:
        features = [c for c in X.columns if c not in excluded]
    not_str = [c for c in features if not isinstance(c, str)]
    if not_str:
        raise TypeError(
            f"feature column names must be strings (they are saved as JSON), got {not_str}; "
            "rename them, e.g. X.columns = X.columns.map(str)"
        )
    if len(set(features)) != len(features):
        dup = sorted({c for c in features if features.count(c) > 1})
        raise FeatureColumnsError(f"X has duplicated feature columns {dup}; give each column one name")
    if not features:
        raise FeatureColumnsError(
            f"X has no feature columns: every column is in exclude={sorted(excluded)}; "
            "pass at least one numeric or categorical feature"
        )
    explicit = None if categorical is None else list(categorical)
    if explicit is not None:
        unknown = [c for c in explicit if c not in features]
        if unknown:
            raise FeatureColumnsError(
                f"categorical columns {unknown} are not features of X; add them to X or remove them from categorical"
            )
    chosen: list[str] = []
    for col in features:
        kind = _column_kind(X[col])
        if kind == "datetime":
            raise TypeError(
                f"column {col!r} has dtype {X[col].dtype}, which {name} cannot use as a "
                "feature; turn it into a number (e.g. days since as_of) or add it to exclude"
            )
        if explicit is not None:
            if col in explicit:
                chosen.append(col)
            elif kind == "categorical":
                raise TypeError(
                    f"column {col!r} holds strings but is not in categorical={explicit}; "
                    "add it to categorical, convert it to numbers, or add it to exclude"
                )
        elif kind == "categorical":
            chosen.append(col)
    return features, chosen


def check_columns(X: pd.DataFrame, name: str, feature_names: list[str]) -> None:
    """Raise naming the estimator and the columns unless X has every fitted feature column, once."""
    if not isinstance(X, pd.DataFrame):
        raise TypeError(
            f"{name} expects X as a pandas DataFrame with the columns {feature_names}, got {type(X).__name__}"
        )
    missing = [c for c in feature_names if c not in X.columns]
    if missing:
        raise FeatureColumnsError(
            f"X is missing columns {missing} that {name} was fitted with; "
            f"pass every column in feature_names_ (extra columns are ignored)"
        )
    if not X.columns.is_unique:
        dup = sorted({str(c) for c in X.columns[X.columns.duplicated()]})
        raise FeatureColumnsError(f"X has duplicated columns {dup}; give each column one name")


def to_matrix(X: pd.DataFrame, name: str, feature_names: list[str], lay: FeatureLayout) -> np.ndarray:
    """Float matrix in ``feature_names`` order; categorical levels become training codes."""
    if len(X) <= _ROW_PATH_MAX_ROWS:
        out = _matrix_rows(X, feature_names, lay)
        if out is not None:
            return out
    out = np.empty((len(X), len(feature_names)), dtype=np.float64, order="F")
    for j, col in enumerate(feature_names):
        s = X[col]
        if col in lay.lookups:
            out[:, j] = _category_codes(s, lay.indexes[col])
        else:
            try:
                out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"column {col!r} must be numeric (it was numeric when "
                    f"{name} was fitted) but has dtype {s.dtype} with "
                    f"values that are not numbers; convert it with pd.to_numeric"
                ) from exc
    return out


def _matrix_rows(X: pd.DataFrame, feature_names: list[str], lay: FeatureLayout) -> np.ndarray | None:
    """Same matrix as the column path for a few rows, built from one object array.

    Pulling ~30 Series out of a one-row frame costs ~0.5 ms, 25x the prediction itself;
    one ``to_numpy`` of the frame costs ~20 us. Returns None when a value needs the column
    path (which also raises the clear error for text in a numeric column).
    """
    pos = {c: i for i, c in enumerate(X.columns)}
    obj = X.to_numpy(dtype=object)
    out = np.empty((len(X), len(feature_names)), dtype=np.float64)
    if lay.numeric_j:
        vals = obj[:, [pos[c] for c in lay.numeric_names]]
        vals[pd.isna(vals)] = np.nan
        try:
            out[:, lay.numeric_j] = vals.astype(np.float64)
        except (TypeError, ValueError):
            return None
    for j, col in zip(lay.categorical_j, lay.categorical_names, strict=True):
        lookup = lay.lookups[col]
        out[:, j] = [np.nan if _is_missing(v) else lookup.get(str(v), np.nan) for v in obj[:, pos[col]]]
    return out


def _column_kind(s: pd.Series) -> str:
    """'numeric', 'categorical' or 'datetime' for a feature column."""
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(s, skipna=True)
        if inferred in ("integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"):
            return "numeric"
        if inferred in ("datetime", "datetime64", "date", "timedelta", "time"):
            return "datetime"
        return "categorical"
    return "categorical"


def _as_strings(s: pd.Series) -> pd.Series:
    # One canonical text form for levels in fit and predict, so 'north' and a category 'north'
    # (or 3 and '3') map to the same code; nulls stay null.
    return s.astype("string")


def category_levels(s: pd.Series) -> list[str]:
    """Sorted levels of a categorical column, as text; their positions are the training codes."""
    return sorted(_as_strings(s).dropna().unique().tolist())


def _category_codes(s: pd.Series, levels: pd.Index) -> np.ndarray:
    codes = levels.get_indexer(_as_strings(s).to_numpy(dtype=object, na_value=None))
    out: np.ndarray = codes.astype(np.float64)
    out[codes < 0] = np.nan  # unseen level or null: missing, as LightGBM treats it
    return out


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and bool(np.isnan(v))
