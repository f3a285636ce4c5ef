""":class:`ChurnCLV`, the scikit-learn-style front of :class:`~churnclv.models.scorer.Scorer`.

Every :class:`~churnclv.models.scorer_config.ScorerConfig` field is a keyword of ``__init__``, so
``get_params``, ``set_params`` and :func:`sklearn.base.clone` see the hyperparameters that the
scorer keeps in one frozen config. The estimator adds no model of its own: ``fit`` builds a
``Scorer`` and fits it, ``predict`` is ``Scorer.score``, and ``save``/``load`` write and read the
scorer's own folder (JSON plus LightGBM model text, never a pickle), so the batch job, the HTTP
service and MLflow read what it saves.

scikit-learn's common checks (:mod:`sklearn.utils.estimator_checks`) feed numeric arrays; this
estimator reads point-in-time frames with named columns (``customer_id``, ``cutoff``, the features
and three labels), so most of them cannot apply. ``tests/models/test_estimator.py`` tests the
contract instead and names the checks that do not apply, with the reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from churnclv.config import ConfigError
from churnclv.errors import ChurnclvError
from churnclv.metrics import churn_metrics
from churnclv.models.btyd_summary import REQUIRED_COLUMNS
from churnclv.models.scorer import LABEL_COLUMNS, Scorer, as_of_day
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.seasonality import LevelWindow
from churnclv.models.tier_config import load_tier_config
from churnclv.models.tier_policy import TierPolicy

__all__ = ["ChurnCLV", "EstimatorInputError"]

# The one set of defaults is ScorerConfig's; the signature below reads them from it.
_D = ScorerConfig()
SCORER_PARAMS = tuple(f.name for f in dataclasses.fields(ScorerConfig))


class EstimatorInputError(ChurnclvError, ValueError):
    """A frame given to :class:`ChurnCLV` misses what the call needs; the message names the column,
    the rule and the fix."""


class ChurnCLV(BaseEstimator):
    """Churn, purchases, spend, CLV and growth-potential tiers as of a date, scikit-learn style.

    BG/NBD (Fader, Hardie and Lee 2005) or Pareto/NBD with Gamma-Gamma spend (Fader, Hardie and Lee
    2005b) fitted on the as-of snapshot, optionally LightGBM models on rolling cutoffs (``gbm``) or on
    the features plus the BTYD outputs (``hybrid``), blended, and a tier policy fitted on the training
    population. The parameters are those of :class:`~churnclv.models.scorer_config.ScorerConfig`
    (documented there, with the measurements behind each default) plus ``tiers``; they are stored as
    given and checked by :meth:`fit` (:meth:`scorer_config` checks them without fitting).

    Parameters
    ----------
    horizon_days : int
        The scoring horizon H: ``p_churn`` is P(no purchase in ``(as_of, as_of + H]``); the
        training frame's labels must use the same horizon (or ``label_horizon_days``).
    clv_months, annual_discount_rate
        CLV over this many months, discounted at this yearly rate.
    churn_model, purchases_model, spend_model : {"btyd", "gbm", "hybrid"}
        The model of each quantity.
    btyd_model : {"bgnbd", "pareto", "mbgnbd"}
        The BTYD purchase model; ``btyd_penalizer`` its L2 penalty.
    gbm_rounds, gbm_learning_rate, gbm_num_leaves, gbm_min_data_in_leaf, gbm_feature_fraction, \
gbm_bagging_fraction, gbm_lambda_l2, gbm_max_depth, gbm_refit_full, train_threads, seed
        LightGBM's settings (early stopping picks the rounds up to ``gbm_rounds``).
    calibration : {"platt", "isotonic"}
        The churn classifier's calibration.
    top_reasons : int
        Reasons per customer.
    churn_btyd_weight : float in [0, 1]
        The weight of BTYD's churn log-odds blended with the learned model's.
    churn_recalibrate : bool
        Recalibrate that blend on BTYD's churn probabilities at the snapshot (BTYD's level).
    label_horizon_days : int, optional
        The learned models' label horizon when shorter than ``horizon_days``.
    learned_totals : {"auto", "btyd", "learned"}
        Whether learned purchases and spend are scaled to BTYD's totals (``"btyd"``) or kept at their
        own level (``"learned"``); ``"auto"`` is chosen on the backtest by ``churnclv train`` and is
        BTYD's level here (no backtest). A season levelled on its last closed window sets it anyway.
    order_value : {"backtest", "fixed"}
        ``"backtest"``: ``churnclv train`` sets ``order_value_factor`` from its backtest; here (no
        backtest) the factor is used as given, as with ``"fixed"``.
    order_value_factor : float
        The factor on Gamma-Gamma's expected order values (so on spend and CLV); 1: as fitted.
    seasonality, clv_intervals : bool
        A yearly season (needs ``daily=`` in :meth:`fit`); the CLV intervals.
    tiers : TierConfig, dict, path, TierPolicy, None or False
        The tier policy's configuration (None: the shipped defaults; False: no tiers).

    Attributes
    ----------
    scorer_ : Scorer
        The fitted scorer: what ``save`` writes and every scoring path loads.
    config_ : ScorerConfig
        The validated parameters the scorer was fitted with.

    Examples
    --------
    >>> import churnclv as cc
    >>> data = cc.datasets.cdnow("sample")  # doctest: +SKIP
    >>> train = cc.compute_training_frame(data, "1997-09-30", 90, n_cutoffs=3)  # doctest: +SKIP
    >>> model = cc.ChurnCLV(gbm_rounds=100).fit(train)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        horizon_days: int = _D.horizon_days,
        clv_months: int = _D.clv_months,
        annual_discount_rate: float = _D.annual_discount_rate,
        churn_model: str = _D.churn_model,
        purchases_model: str = _D.purchases_model,
        spend_model: str = _D.spend_model,
        btyd_model: str = _D.btyd_model,
        btyd_penalizer: float = _D.btyd_penalizer,
        gbm_rounds: int = _D.gbm_rounds,
        gbm_learning_rate: float = _D.gbm_learning_rate,
        gbm_num_leaves: int = _D.gbm_num_leaves,
        gbm_min_data_in_leaf: int = _D.gbm_min_data_in_leaf,
        gbm_feature_fraction: float = _D.gbm_feature_fraction,
        gbm_bagging_fraction: float = _D.gbm_bagging_fraction,
        gbm_lambda_l2: float = _D.gbm_lambda_l2,
        gbm_max_depth: int = _D.gbm_max_depth,
        calibration: str = _D.calibration,
        top_reasons: int = _D.top_reasons,
        seed: int = _D.seed,
        train_threads: int = _D.train_threads,
        gbm_refit_full: bool = _D.gbm_refit_full,
        churn_btyd_weight: float = _D.churn_btyd_weight,
        churn_recalibrate: bool = _D.churn_recalibrate,
        label_horizon_days: int | None = _D.label_horizon_days,
        learned_totals: str = _D.learned_totals,
        order_value: str = _D.order_value,
        order_value_factor: float = _D.order_value_factor,
        seasonality: bool = _D.seasonality,
        clv_intervals: bool = _D.clv_intervals,
        tiers: Any = None,
    ) -> None:
        self.horizon_days = horizon_days
        self.clv_months = clv_months
        self.annual_discount_rate = annual_discount_rate
        self.churn_model = churn_model
        self.purchases_model = purchases_model
        self.spend_model = spend_model
        self.btyd_model = btyd_model
        self.btyd_penalizer = btyd_penalizer
        self.gbm_rounds = gbm_rounds
        self.gbm_learning_rate = gbm_learning_rate
        self.gbm_num_leaves = gbm_num_leaves
        self.gbm_min_data_in_leaf = gbm_min_data_in_leaf
        self.gbm_feature_fraction = gbm_feature_fraction
        self.gbm_bagging_fraction = gbm_bagging_fraction
        self.gbm_lambda_l2 = gbm_lambda_l2
        self.gbm_max_depth = gbm_max_depth
        self.calibration = calibration
        self.top_reasons = top_reasons
        self.seed = seed
        self.train_threads = train_threads
        self.gbm_refit_full = gbm_refit_full
        self.churn_btyd_weight = churn_btyd_weight
        self.churn_recalibrate = churn_recalibrate
        self.label_horizon_days = label_horizon_days
        self.learned_totals = learned_totals
        self.order_value = order_value
        self.order_value_factor = order_value_factor
        self.seasonality = seasonality
        self.clv_intervals = clv_intervals
        self.tiers = tiers

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # the labels are columns of the training frame
        tags.input_tags.two_d_array = False  # a DataFrame with named columns, not a numeric array
        tags.input_tags.string = True  # customer_id
        tags.input_tags.allow_nan = True  # features of customers with no history yet
        return tags

    # ------------------------------------------------------------------ parameters

    def scorer_config(self) -> ScorerConfig:
        """The parameters as a validated :class:`ScorerConfig` (what a training run's ``[scorer]``
        section holds; ``RunConfig(scorer=model.scorer_config())`` trains with them).

        Raises
        ------
        churnclv.config.ConfigError
            A parameter breaks its rule; the message names it, the rule and the fix.
        """
        try:
            return ScorerConfig(**{name: getattr(self, name) for name in SCORER_PARAMS})
        except ConfigError as exc:
            raise ConfigError(f"{type(self).__name__} parameter {str(exc).removeprefix('[scorer] ')}") from None

    @classmethod
    def from_scorer(cls, scorer: Scorer) -> ChurnCLV:
        """A fitted estimator around a fitted :class:`Scorer` (one loaded from MLflow or a folder),
        its parameters read back from the scorer's configuration and tier policy."""
        if not hasattr(scorer, "btyd_"):
            raise NotFittedError(f"{cls.__name__}.from_scorer needs a fitted Scorer: call fit or Scorer.load first")
        config = scorer.config_
        tiers: Any = False if scorer.tiers_ is None else scorer.tiers_.tier_config
        if tiers == load_tier_config(None):
            tiers = None  # the shipped defaults, as the parameter's default says them
        est = cls(**{name: getattr(config, name) for name in SCORER_PARAMS}, tiers=tiers)
        est.scorer_ = scorer
        est.config_ = config
        return est

    # ------------------------------------------------------------------ fit

    def fit(
        self,
        X: pd.DataFrame,
        y: Any = None,
        *,
        snapshot: pd.DataFrame | None = None,
        as_of: Any = None,
        daily: pd.DataFrame | None = None,
        level_window: LevelWindow | None = None,
    ) -> ChurnCLV:
        """Fit BTYD, the learned models and the tier policy.

        Parameters
        ----------
        X : DataFrame
            The training frame: features at rolling cutoffs with the labels ``churned``,
            ``purchases`` and ``spend`` over ``horizon_days`` (or ``label_horizon_days``) after each
            ``cutoff`` (:func:`churnclv.features.compute_training_frame`).
        y : ignored
            Not used, present for scikit-learn's API: the three labels are columns of ``X``.
        snapshot : DataFrame, optional
            Features as of the training as-of (:func:`churnclv.features.compute_features`), on which
            BTYD and the tier policy are fitted. Default: ``X``'s rows at its latest cutoff (BTYD is
            then fitted as of that cutoff, with less history than the data may hold).
        as_of : date-like
            The date ``snapshot`` is as of; required with ``snapshot``, else the latest cutoff.
        daily, level_window
            The base's purchases per day up to as-of and the last closed window, for the yearly season
            (see :meth:`Scorer.fit`).

        Returns
        -------
        ChurnCLV
            self, fitted.
        """
        _require_frame(
            self, "fit", X, ("customer_id", "cutoff", *LABEL_COLUMNS), "build it with compute_training_frame"
        )
        as_of = as_of_day(as_of)
        given = snapshot is not None
        if snapshot is None:
            cutoffs = pd.to_datetime(X["cutoff"])
            last = cutoffs.max()
            if as_of is not None and as_of != last:
                raise EstimatorInputError(
                    f"{type(self).__name__}.fit: as_of={as_of.date()} but no snapshot was given: "
                    f"pass snapshot=compute_features(data, as_of), or leave as_of unset to fit BTYD at the latest "
                    f"cutoff ({last.date()})"
                )
            snapshot = X.loc[cutoffs == last].drop(columns=["cutoff", *LABEL_COLUMNS]).reset_index(drop=True)
            as_of = last
        elif as_of is None:
            raise EstimatorInputError(
                f"{type(self).__name__}.fit: snapshot was given without as_of: pass the date its features are as of"
            )
        config = self.scorer_config()
        # without a snapshot, BTYD is fitted at the latest cutoff, before its labels: no date to check
        self._check_dates(X, snapshot if given else None, as_of if given else None, config.label_horizon)
        tiers = clone(self.tiers) if isinstance(self.tiers, TierPolicy) else self.tiers  # fit never mutates a param
        scorer = Scorer(config=config, tiers=tiers).fit(
            X, snapshot, as_of=as_of, daily=daily, level_window=level_window
        )
        flat = scorer.unsplit_targets()
        if flat:  # no backtest here to pass over a constant model, as training's would
            targets = " and ".join([", ".join(flat[:-1]), flat[-1]] if len(flat) > 1 else flat)
            raise EstimatorInputError(
                f"{type(self).__name__}.fit: the LightGBM {targets} model{'s' if len(flat) > 1 else ''} made no "
                f"split on {len(X)} training rows (a leaf needs gbm_min_data_in_leaf={config.gbm_min_data_in_leaf} "
                "rows), so every customer would get the same prediction; lower gbm_min_data_in_leaf, add customers "
                f"or cutoffs, or set {', '.join(t + '_model=' + repr('btyd') for t in flat)}"
            )
        self.scorer_ = scorer
        self.config_ = config
        return self

    # ------------------------------------------------------------------ predict, score

    def _check_dates(
        self, X: pd.DataFrame, snapshot: pd.DataFrame | None, as_of: pd.Timestamp | None, horizon: int
    ) -> None:
        """Refuse inputs that disagree on dates: labels over another horizon than the model's, labels
        running past ``as_of`` (the future leaking into a model fitted as of it), a snapshot of
        another date (``compute_features`` and ``compute_training_frame`` record theirs in ``attrs``)."""
        name = f"{type(self).__name__}.fit"
        labelled = X.attrs.get("horizon_days")
        if labelled is not None and int(labelled) != horizon:
            raise EstimatorInputError(
                f"{name}: X holds labels over {labelled} days but the model predicts {horizon} days "
                f"(horizon_days, or label_horizon_days): build X with compute_training_frame(data, as_of, "
                f"{horizon}), or set horizon_days={labelled}"
            )
        if snapshot is None or as_of is None:
            return
        window_end = pd.to_datetime(X["cutoff"]).max() + pd.Timedelta(days=horizon)
        if window_end > as_of:
            raise EstimatorInputError(
                f"{name}: X's labels run to {window_end.date()}, after as_of={as_of.date()}: a model fitted "
                f"as of {as_of.date()} would learn from what happened after it; build X with "
                f"compute_training_frame(data, '{as_of.date()}', {horizon}), or pass a later as_of"
            )
        dated = snapshot.attrs.get("as_of")
        if dated is not None and pd.Timestamp(dated) != as_of:
            raise EstimatorInputError(
                f"{name}: snapshot holds features as of {dated}, not as_of={as_of.date()}: pass "
                f"snapshot=compute_features(data, '{as_of.date()}'), or as_of='{dated}'"
            )

    def predict(
        self,
        X: pd.DataFrame,
        *,
        as_of: Any = None,
        prev: pd.Series | pd.DataFrame | None = None,
        reasons: bool = True,
    ) -> pd.DataFrame:
        """The score frame of a feature frame (one row per customer, row order kept).

        Parameters
        ----------
        X : DataFrame
            Features as of ``as_of`` (:func:`churnclv.features.compute_features`).
        as_of : date-like
            The date the features are as of: the scoring window is ``(as_of, as_of + horizon_days]``.
            Required (a keyword so that an unfitted estimator says so first).
        prev, reasons
            Last scoring's tiers (for hysteresis) and whether to write the reasons (see
            :meth:`Scorer.score`).

        Returns
        -------
        DataFrame
            ``customer_id, p_churn, p_alive, expected_purchases, expected_spend, clv``, intervals,
            next-purchase timing, marketing fields, ``growth_score, tier, tier_level, stage, action,
            reasons`` (:data:`churnclv.models.scorer.SCORE_COLUMNS`).
        """
        check_is_fitted(self, "scorer_")
        _require_frame(self, "predict", X, ("customer_id", *REQUIRED_COLUMNS), "build it with compute_features")
        if as_of is None:
            raise EstimatorInputError(
                f"{type(self).__name__}.predict: pass as_of, the date the features are as of "
                "(the scoring window starts there)"
            )
        day, dated = as_of_day(as_of), X.attrs.get("as_of")
        if "cutoff" in X.columns:  # rows of a training frame: each is as of its cutoff
            cutoffs = pd.to_datetime(X["cutoff"]).drop_duplicates()
            dated = None if cutoffs.eq(day).all() else str(cutoffs[cutoffs.ne(day)].min().date())
        if day is not None and dated is not None and pd.Timestamp(dated) != day:
            raise EstimatorInputError(
                f"{type(self).__name__}.predict: X holds features as of {dated}, not as_of={day.date()}: the "
                f"scoring window, next-purchase dates and season would be those of another date; pass "
                f"X=compute_features(data, '{day.date()}'), or as_of='{dated}'"
            )
        return self.scorer_.score(X, as_of=as_of, prev=prev, reasons=reasons)

    def score(self, X: pd.DataFrame, y: Any = None, *, as_of: Any = None) -> float:
        """Churn ROC AUC on labelled rows (higher is better, as scikit-learn's ``score`` expects).

        Parameters
        ----------
        X : DataFrame
            Features with, unless ``y`` is given, the label ``churned``: a training frame of later
            cutoffs (each cutoff's rows are scored as of that cutoff), or features as of ``as_of``
            joined with :func:`churnclv.features.compute_labels`.
        y : array-like of bool, optional
            Churned within ``horizon_days`` after the as-of, row-aligned with ``X``.
        as_of : date-like
            The date the features are as of; required when ``X`` has no ``cutoff`` column.

        Returns
        -------
        float
            ROC AUC of ``p_churn`` against ``churned`` (0.5: chance).
        """
        check_is_fitted(self, "scorer_")
        name = type(self).__name__
        if y is None:
            _require_frame(self, "score", X, ("churned",), "join the labels (compute_labels) or pass y")
            y = X["churned"]
        truth = np.asarray(y, dtype=float)
        if len(truth) != len(X):
            raise EstimatorInputError(f"{name}.score: X has {len(X)} rows but y has {len(truth)}; pass aligned rows")
        if len(np.unique(truth)) != 2:
            raise EstimatorInputError(
                f"{name}.score: the labels hold one class only; ROC AUC needs churners and non-churners"
            )
        p_churn = np.empty(len(X))
        if as_of is None and "cutoff" not in X.columns:
            raise EstimatorInputError(
                f"{name}.score: X has no cutoff column: pass as_of, the date its features are as of"
            )
        dates = pd.Series(as_of_day(as_of), index=X.index) if as_of is not None else pd.to_datetime(X["cutoff"])
        rows = np.arange(len(X))
        for date, at in pd.Series(rows, index=X.index).groupby(dates.to_numpy()):
            part = X.iloc[at.to_numpy()]
            p_churn[at.to_numpy()] = self.predict(part, as_of=date, reasons=False)["p_churn"].to_numpy()
        return churn_metrics(truth, p_churn)["churn_auc"]

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path | str) -> Path:
        """Write the fitted scorer to a folder (:meth:`Scorer.save`: ``scorer.json`` plus LightGBM
        model text); the batch job, the HTTP service and :meth:`load` read it."""
        check_is_fitted(self, "scorer_")
        return self.scorer_.save(path)

    @classmethod
    def load(cls, path: Path | str) -> ChurnCLV:
        """Read a folder written by :meth:`save` (or by a training run) as a fitted estimator."""
        return cls.from_scorer(Scorer.load(path))


def _require_frame(est: ChurnCLV, method: str, X: Any, columns: tuple[str, ...], fix: str) -> None:
    """Refuse what is not a DataFrame with ``columns``, naming the method, the columns and the fix."""
    name = f"{type(est).__name__}.{method}"
    if not isinstance(X, pd.DataFrame):
        raise EstimatorInputError(
            f"{name}: X must be a pandas DataFrame with named columns, got {type(X).__name__}; {fix}"
        )
    missing = [c for c in columns if c not in X.columns]
    if missing:
        raise EstimatorInputError(f"{name}: X is missing columns {missing}; {fix}")
