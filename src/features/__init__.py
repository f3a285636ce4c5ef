"""Point-in-time feature jobs, labels and rolling cutoffs (Ibis expressions; DuckDB by default).

Build expressions with :func:`build_features`, :func:`build_labels` and :func:`build_training_frame`
(backend-agnostic), or run them with :func:`compute_features` / :func:`write_features` (batch, out of
core on DuckDB; :func:`write_feature_chunks` to read them back a chunk of customers at a time) and
:func:`compute_features_frames` (a few customers held in memory). Every output
column is listed in :data:`churnclv.features.catalogue.FEATURES`.
"""

from churnclv.features.catalogue import FEATURES, LABELS, Feature, render_markdown
from churnclv.features.chunked import ColumnStack, FeatureChunks, write_feature_chunks
from churnclv.features.config import FeatureConfig
from churnclv.features.dates import AsOf, as_of_date
from churnclv.features.definitions import build_features, feature_columns
from churnclv.features.engine import (
    compute_features,
    compute_label_totals,
    compute_labels,
    compute_training_frame,
    count_customers,
    write_features,
    write_training_frame,
)
from churnclv.features.frames import compute_features_frames
from churnclv.features.inputs import FeatureTables, sample_customers
from churnclv.features.labels import build_labels, build_training_frame, rolling_cutoffs
from churnclv.features.sources import Source, connect, load_tables

__all__ = [
    "FEATURES",
    "LABELS",
    "AsOf",
    "ColumnStack",
    "Feature",
    "FeatureChunks",
    "FeatureConfig",
    "FeatureTables",
    "Source",
    "as_of_date",
    "build_features",
    "build_labels",
    "build_training_frame",
    "compute_features",
    "compute_features_frames",
    "compute_label_totals",
    "compute_labels",
    "compute_training_frame",
    "connect",
    "count_customers",
    "feature_columns",
    "load_tables",
    "render_markdown",
    "rolling_cutoffs",
    "sample_customers",
    "write_feature_chunks",
    "write_features",
    "write_training_frame",
]
