"""churnclv: churn, customer lifetime value and growth-potential tiers, point in time.

``import churnclv as cc`` gives the short, stable API (each name is loaded on first use, so the
import itself stays fast and loads neither pandas nor LightGBM):

====================================  =======================================================================
name                                  what it is
====================================  =======================================================================
``ChurnCLV``                          the scikit-learn-style estimator: ``fit`` on a training frame,
                                      ``predict`` the score frame, ``score`` = churn ROC AUC, ``save``/``load``
``Scorer``, ``ScorerConfig``          the scorer behind it (what every scoring path loads) and its settings
``BTYDModel``                         BG/NBD, Pareto/NBD or MBG/NBD with Gamma-Gamma, wrapping ``lifetimes``
``FeatureConfig``                     the feature windows, event types and purchase rule
``compute_features``                  features as of a date, one row per customer known then
``compute_labels``                    what happened in ``(cutoff, cutoff + horizon]``: churned, purchases, spend
``compute_training_frame``            features at rolling cutoffs joined with their labels
``rolling_cutoffs``                   the cutoff dates a training frame uses
``generate_world``, ``WorldConfig``   a synthetic shop with a known truth (``churnclv generate``)
``datasets``                          real data: ``datasets.cdnow()``, ``datasets.tables(world)``
``metrics``                           churn, purchases and spend metrics (truth first, prediction second)
``plots``                             the diagnostics kit (:mod:`churnclv.diagnostics`): ``ax=`` in, Axes out
``ChurnclvError``                     the base of every error churnclv raises on purpose
``__version__``                       the package version
====================================  =======================================================================

Data are a folder of clean tables or a dict of frames (``{"transactions": ..., "events": ...,
"customers": ...}``); every function that touches time takes the as-of date explicitly.

Nothing else happens at import time: no logging set-up, no global pandas or warnings state. One
exception: ``OMP_WAIT_POLICY`` is set to ``PASSIVE`` when the environment does not set it, before
LightGBM loads OpenMP. Spinning OpenMP threads made a LightGBM fit of 250k rows on a shared 2-core
machine 3-12x slower on two threads than on one (15-64 s against 5 s); passive, two threads took
2.9 s (``bench/omp_wait.py``).
"""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms, most of this import)
if TYPE_CHECKING:  # what the lazy table below resolves to, for type checkers and IDEs
    from typing import Any

    from churnclv import datasets, metrics
    from churnclv import diagnostics as plots
    from churnclv.errors import ChurnclvError
    from churnclv.features.config import FeatureConfig
    from churnclv.features.engine import compute_features, compute_labels, compute_training_frame
    from churnclv.features.labels import rolling_cutoffs
    from churnclv.generate import generate_world
    from churnclv.generator.world import WorldConfig
    from churnclv.models.btyd import BTYDModel
    from churnclv.models.estimator import ChurnCLV
    from churnclv.models.scorer import Scorer
    from churnclv.models.scorer_config import ScorerConfig

__version__ = "0.1.0"

# public name -> (module, attribute in it; None: the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "ChurnCLV": ("churnclv.models.estimator", "ChurnCLV"),
    "Scorer": ("churnclv.models.scorer", "Scorer"),
    "ScorerConfig": ("churnclv.models.scorer_config", "ScorerConfig"),
    "BTYDModel": ("churnclv.models.btyd", "BTYDModel"),
    "FeatureConfig": ("churnclv.features.config", "FeatureConfig"),
    "compute_features": ("churnclv.features.engine", "compute_features"),
    "compute_labels": ("churnclv.features.engine", "compute_labels"),
    "compute_training_frame": ("churnclv.features.engine", "compute_training_frame"),
    "rolling_cutoffs": ("churnclv.features.labels", "rolling_cutoffs"),
    "generate_world": ("churnclv.generate", "generate_world"),
    "WorldConfig": ("churnclv.generator.world", "WorldConfig"),
    "datasets": ("churnclv.datasets", None),
    "metrics": ("churnclv.metrics", None),
    "plots": ("churnclv.diagnostics", None),
    "ChurnclvError": ("churnclv.errors", "ChurnclvError"),
}

__all__ = [  # the lazy table's names (a test keeps the two in step)
    "BTYDModel",
    "ChurnCLV",
    "ChurnclvError",
    "FeatureConfig",
    "Scorer",
    "ScorerConfig",
    "WorldConfig",
    "__version__",
    "compute_features",
    "compute_labels",
    "compute_training_frame",
    "datasets",
    "generate_world",
    "metrics",
    "plots",
    "rolling_cutoffs",
]


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562) and keep it, so the next lookup is a plain one."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'churnclv' has no attribute {name!r}") from None
    loaded = importlib.import_module(module)
    value = loaded if attribute is None else getattr(loaded, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The public names (what tab completion offers), loaded or not."""
    return sorted(__all__)
