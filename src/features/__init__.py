"""Point-in-time feature jobs, labels and rolling cutoffs (Ibis expressions; DuckDB by default).

Build expressions with :func:`build_features`, :func:`build_labels` and :func:`build_training_frame`
(backend-agnostic), or run them with :func:`compute_features` / :func:`write_features` (batch, out of
core on DuckDB) and :func:`compute_features_frames` (a few customers held in memory). Every output
column is listed in :data:`churnclv.features.catalogue.FEATURES`.
"""

from churnclv.features.catalogue import FEATURES, LABELS, Feature, render_markdown
from churnclv.features.definitions import (
    AsOf,
    FeatureConfig,
    FeatureTables,
    as_of_date,
    build_features,
    build_labels,
    build_training_frame,
    feature_columns,
    rolling_cutoffs,
    sample_customers,
)
from churnclv.features.engine import (
    Source,
    compute_features,
    compute_features_frames,
    compute_labels,
    compute_training_frame,
    connect,
    count_customers,
    load_tables,
    write_features,
    write_training_frame,
)

__all__ = [
    "FEATURES",
    "LABELS",
    "AsOf",
    "Feature",
    "FeatureConfig",
    "FeatureTables",
    "Source",
    "as_of_date",
    "build_features",
    "build_labels",
    "build_training_frame",
    "compute_features",
    "compute_features_frames",
    "compute_labels",
    "compute_training_frame",
    "connect",
    "count_customers",
    "feature_columns",
    "load_tables",
    "render_markdown",
    "rolling_cutoffs",
    "sample_customers",
    "write_features",
    "write_training_frame",
]
