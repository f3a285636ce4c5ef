"""One scorer for every path: batch, HTTP and notebook scoring call :meth:`Scorer.score`.

A :class:`Scorer` holds the chosen models (BTYD always, for ``p_alive`` and the CLV time profile;
LightGBM churn, purchases and spend models when chosen), the tier policy, and its configuration. It
maps a feature frame (one row per customer, as of a date, from :mod:`churnclv.features`) to scores.

It saves to a folder without pickling code: ``scorer.json`` (configuration, BTYD parameters, tier
policy, metadata) and one LightGBM model text file per booster (:mod:`churnclv.models.scorer_files`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lightgbm.basic import LightGBMError
from sklearn.exceptions import NotFittedError

from churnclv.features import ColumnStack, FeatureChunks, FeatureConfig, as_of_date
from churnclv.models.blending import (
    blend_logodds,
    churn_probability,
    clv_fallback_ratio,
    clv_from_spend,
    coherent_totals,
    floored_total_factor,
    soft_platt,
    total_factor,
)
from churnclv.models.btyd import BTYDModel
from churnclv.models.explanations import drivers
from churnclv.models.gbm import GBMChurnClassifier, GBMCountRegressor, GBMSpendRegressor
from churnclv.models.inputs import stable_floats
from churnclv.models.intervals import INTERVAL_COLUMNS, SpendIntervals, amount_scale, fit_intervals, with_intervals
from churnclv.models.marketing import MARKETING_COLUMNS, with_marketing
from churnclv.models.next_purchase import WAIT_COLUMNS, consistent_timing
from churnclv.models.scorer_config import ScorerConfig
from churnclv.models.scorer_files import (
    GBM_TARGETS,
    NO_LEVELS,
    SavedScorer,
    feature_config_from_dict,
    read_scorer,
    write_scorer,
)
from churnclv.models.seasonality import (
    SUMMARY_COLUMNS,
    LevelWindow,
    SeasonalBTYD,
    fit_seasonal_btyd,
    with_window_levels,
)
from churnclv.models.tier_config import COLUMN_ROLES
from churnclv.models.tier_policy import TierPolicy

log = logging.getLogger(__name__)

_NO_SEASON = "no season: BTYD in operational time failed ({}: {})"

LABEL_COLUMNS = ("churned", "purchases", "spend")
KEY_COLUMNS = ("customer_id", "cutoff", "as_of")
# BTYD outputs added as features in hybrid mode
BTYD_FEATURES = ("btyd_p_alive", "btyd_p_churn", "btyd_expected_purchases", "btyd_expected_spend")
SCORE_COLUMNS = (
    "customer_id",
    "p_churn",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
    *INTERVAL_COLUMNS,
    *WAIT_COLUMNS,
    *MARKETING_COLUMNS,
    "growth_score",
    "tier",
    "tier_level",
    "stage",
    "action",
    "reasons",
)
AUTO_THREADS_MIN_ROWS = 200_000  # below this, LightGBM trains on one thread
# What a model fit raises on data it cannot learn from (no convergence, non-finite output, too few or
# one-class rows): the training pipeline drops that sub-fit with its reason instead of stopping.
# Anything else (a TypeError, a KeyError) is a bug and propagates.
FIT_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    ArithmeticError,
    RuntimeError,
    np.linalg.LinAlgError,
    LightGBMError,
)


def model_features(frame: pd.DataFrame, *, with_btyd: bool) -> list[str]:
    """The model input columns of a feature frame: everything but keys, labels and BTYD outputs."""
    drop = set(KEY_COLUMNS) | set(LABEL_COLUMNS) | set(BTYD_FEATURES)
    cols = [c for c in frame.columns if c not in drop]
    return cols + list(BTYD_FEATURES) if with_btyd else cols


def capped_spend_labels(train: pd.DataFrame, cap: float | None) -> tuple[np.ndarray, int]:
    """The spend labels the learned spend model trains on: at most ``cap`` (BTYD's cap on mean order
    values) per purchase day of the label window, so that one customer's one-off order a thousand
    times the usual does not set every prediction's level; and how many rows that capped."""
    spend = train["spend"].to_numpy(dtype=float)
    if cap is None:
        return spend, 0
    limit = train["purchases"].to_numpy(dtype=float) * cap
    over = spend > limit
    return np.where(over, limit, spend), int(over.sum())


def as_of_day(value: Any, name: str = "as_of") -> pd.Timestamp | None:
    """``value`` as the midnight of its day, by the feature jobs' rule (:func:`~churnclv.features.
    as_of_date`: ISO 8601 strings only; never ``'now'``, which would read the clock); None stays None."""
    return None if value is None else pd.Timestamp(as_of_date(value, name))


class Scorer:
    """Churn, purchases, spend, CLV (and tiers, with a policy) from a point-in-time feature frame.

    Parameters
    ----------
    config : ScorerConfig
        Horizon, CLV settings and the model chosen per target.
    tiers : TierConfig, dict, path or TierPolicy, optional
        The tier policy's configuration (default: the shipped defaults). It is fitted on the
        snapshot's scores in :meth:`fit`. ``False`` scores without tiers.

    Attributes
    ----------
    btyd_ : BTYDModel
        BG/NBD (or the configured BTYD model) with Gamma-Gamma, fitted on the as-of snapshot.
    churn_, purchases_, spend_ : LightGBM models or None
        Fitted when the config chooses ``gbm`` or ``hybrid`` for that target.
    tiers_ : TierPolicy or None
        The fitted tier policy (cut points from the training population).
    metadata_ : dict
        Trained as-of, horizon, training rows, and anything the training pipeline adds.
    """

    btyd_: BTYDModel
    churn_: GBMChurnClassifier | None
    purchases_: GBMCountRegressor | None
    spend_: GBMSpendRegressor | None
    tiers_: TierPolicy | None
    metadata_: dict[str, Any]
    clv_fallback_ratio_: float
    # (a, b): churn = expit(a + b s) on the blended log-odds s (None: no recalibration)
    churn_calibration_: tuple[float, float] | None
    level_factors_: dict[str, float]  # per learned target (purchases, spend), the factor on its output
    seasonal_: SeasonalBTYD | None  # the season and BTYD in operational time (None: no season)
    intervals_: SpendIntervals | None  # spend and CLV intervals from btyd_ (None: rebuilt at the first score)

    def __init__(self, *, config: ScorerConfig | None = None, tiers: Any = None) -> None:
        self.config = config
        self.tiers = tiers

    # ------------------------------------------------------------------ fit

    @property
    def config_(self) -> ScorerConfig:
        """The configuration in use: ``config``, or the defaults when it is None."""
        return self.config or ScorerConfig()

    def _btyd(self) -> BTYDModel:
        c = self.config_
        return BTYDModel(model=c.btyd_model, penalizer=c.btyd_penalizer, value_factor=c.order_value_factor)

    def _gbm_params(self, n_rows: int) -> dict[str, Any]:
        c = self.config_
        params = {
            "learning_rate": c.gbm_learning_rate,
            "num_leaves": c.gbm_num_leaves,
            "max_depth": c.gbm_max_depth,
            "min_data_in_leaf": c.gbm_min_data_in_leaf,
            "feature_fraction": c.gbm_feature_fraction,
            "lambda_l2": c.gbm_lambda_l2,
        }
        if c.gbm_bagging_fraction < 1:
            params.update(bagging_fraction=c.gbm_bagging_fraction, bagging_freq=1)
        # OpenMP threads spin while they wait: on a busy 2-core machine a small fit with all threads
        # ran 30x slower than with one (measured: 46 ms vs 1.5 ms per boosting round at 18k rows).
        params["num_threads"] = c.train_threads or (1 if n_rows < AUTO_THREADS_MIN_ROWS else 0)
        return params

    def fit(
        self,
        train: pd.DataFrame,
        snapshot: pd.DataFrame | FeatureChunks,
        *,
        as_of: Any = None,
        daily: pd.DataFrame | None = None,
        level_window: LevelWindow | Callable[[], LevelWindow | None] | None = None,
        keep_parts: bool = False,
    ) -> Scorer:
        """Fit every model.

        Parameters
        ----------
        train : DataFrame
            Stacked rolling cutoffs: features as of each ``cutoff`` with the labels ``churned``,
            ``purchases`` and ``spend`` over the configured horizon (from
            :func:`churnclv.features.training_frame`). Every window must be closed.
        snapshot : DataFrame or FeatureChunks
            Features as of the training as-of; BTYD is fitted on it (BTYD needs no labels). A base
            too large to hold comes as :class:`~churnclv.features.FeatureChunks`: BTYD and the season
            read its summary columns, the level factors and the tier policy go over it chunk by
            chunk, keeping a few model outputs per customer; the fit is the same as on the whole frame.
        as_of : date-like, optional
            The training as-of, kept in ``metadata_``.
        daily : DataFrame, optional
            The base's purchases per day up to as-of (:func:`churnclv.features.engine.
            compute_daily_purchases`): with ``as_of`` and ``config.seasonality``, a yearly season is
            fitted on it (:mod:`churnclv.models.seasonality`).
        level_window : LevelWindow or a function returning one, optional
            The last closed window of the horizon: with a season, the totals' level factors. A
            function is called only when a season was found, and its window released once used.
        keep_parts : bool
            Keep the snapshot's model outputs for :meth:`score_fitted`.
        """
        c = self.config_
        as_of = as_of_day(as_of)
        missing = [col for col in ("cutoff", *LABEL_COLUMNS) if col not in train.columns]
        if missing:
            raise ValueError(f"Scorer.fit: train is missing columns {missing}; build it with training_frame()")
        chunks = snapshot if isinstance(snapshot, FeatureChunks) else None
        train = stable_floats(train)
        if chunks is None:
            frame = stable_floats(snapshot)
        else:  # what BTYD and the season read, for every customer
            frame = stable_floats(chunks.read([col for col in SUMMARY_COLUMNS if col in chunks.columns]))
        n_snapshot = len(frame)
        notes: list[str] = []
        self.btyd_ = self._btyd().fit(frame)
        self.intervals_ = fit_intervals(self.btyd_, c)
        notes += [f"BTYD at as-of: {n}" for n in getattr(self.btyd_, "fit_notes_", [])]
        if self.btyd_.gg_fallback_ is not None:  # logged as a warning by the fit; kept with the model too
            notes.append(
                f"BTYD at as-of: Gamma-Gamma not used ({self.btyd_.gg_fallback_}): every customer's expected "
                f"order value is the mean, {self.btyd_.mean_order_value_:.4g}"
            )
        bt = self.btyd_.predict(
            frame, c.horizon_days, clv_months=c.clv_months, annual_discount_rate=c.annual_discount_rate
        )
        default = c.clv_months * (365.25 / 12) / c.horizon_days
        self.clv_fallback_ratio_ = clv_fallback_ratio(bt["clv"].to_numpy(), bt["expected_spend"].to_numpy(), default)
        del bt
        seasonal, said = None, []  # said: what the season's steps found (none when not asked for)
        if c.seasonality and daily is not None and as_of is not None:
            try:
                seasonal, message = fit_seasonal_btyd(self.btyd_, frame, as_of, daily)
                said = [message]
            except FIT_ERRORS as exc:
                said = [_NO_SEASON.format(type(exc).__name__, exc)]
        # not read again: ~0.6 GB at 10M customers, let go before the level window's DuckDB job
        # (at its memory limit) and while the learned models train
        whole = frame if chunks is None else None
        del frame
        if seasonal is not None and daily is not None:
            try:
                seasonal, said = with_window_levels(seasonal, daily, level_window, c.horizon_days, said)
            except FIT_ERRORS as exc:
                seasonal, said = None, [_NO_SEASON.format(type(exc).__name__, exc)]
        self.seasonal_ = seasonal
        if said:
            notes += said
            log.info("%s", "; ".join(said))
        self.churn_ = self.purchases_ = self.spend_ = None
        self.churn_calibration_ = None
        self.level_factors_ = dict(NO_LEVELS)
        if c.uses_gbm():
            hybrid = any(m == "hybrid" for m in (c.churn_model, c.purchases_model, c.spend_model))
            train = self._with_btyd_per_cutoff(train, notes) if hybrid else train
            common: dict[str, Any] = {
                "params": self._gbm_params(len(train)),
                "num_boost_round": c.gbm_rounds,
                "seed": c.seed,
            }
            groups = train["customer_id"].to_numpy()
            if c.churn_model != "btyd":
                feats = model_features(train, with_btyd=c.churn_model == "hybrid")
                self.churn_ = GBMChurnClassifier(features=feats, calibration=c.calibration, **common).fit(
                    train, train["churned"].astype(int).to_numpy(), groups=groups
                )
            if c.purchases_model != "btyd":
                feats = model_features(train, with_btyd=c.purchases_model == "hybrid")
                self.purchases_ = GBMCountRegressor(features=feats, refit_full=c.gbm_refit_full, **common).fit(
                    train, train["purchases"].to_numpy(dtype=float), groups=groups
                )
            if c.spend_model != "btyd":
                feats = model_features(train, with_btyd=c.spend_model == "hybrid")
                spend, n_capped = capped_spend_labels(train, self.btyd_.monetary_cap_)  # fitted just above
                if n_capped:
                    notes.append(
                        f"spend labels: {n_capped} training row(s) above {self.btyd_.monetary_cap_:.4g} per "
                        "purchase day (BTYD's cap on mean order values) taken at it"
                    )
                    log.warning("%s", notes[-1])
                self.spend_ = GBMSpendRegressor(features=feats, refit_full=c.gbm_refit_full, **common).fit(
                    train, spend, groups=groups
                )
        train_rows, train_cutoffs = len(train), sorted({str(pd.Timestamp(x).date()) for x in train["cutoff"].unique()})
        flat = self.unsplit_targets()
        if flat:
            notes.append(
                f"the learned {', '.join(flat)} model(s) made no split on {train_rows} training rows "
                f"(gbm_min_data_in_leaf={c.gbm_min_data_in_leaf}): every customer gets the same prediction"
            )
            log.warning("%s", notes[-1])
        del train  # with the hybrid's BTYD columns, a copy of the training rows (~0.3 GB at 570k rows)
        # the snapshot's model outputs, computed once: the level factors, the tier policy and (with
        # keep_parts, score_fitted) the training's own scores of the snapshot read the same predictions
        parts = None
        if c.uses_gbm() or self.tiers is not False or keep_parts:
            if whole is not None:
                parts = self._parts(whole, as_of)
            elif chunks is not None:
                parts = self._chunked_parts(chunks, as_of)
        if parts is not None and c.uses_gbm():
            self._fit_levels(parts)
        self.tiers_ = None
        if parts is not None and self.tiers is not False:
            policy = self.tiers if isinstance(self.tiers, TierPolicy) else TierPolicy(config=self.tiers)
            if whole is not None:
                policy.fit(self._tier_frame(self._base_scores(whole, parts), whole.reset_index(drop=True)))
            elif chunks is not None:
                policy.fit(self._chunked_tier_frame(chunks, parts, policy))
            self.tiers_ = policy
        self._kept_parts = parts if keep_parts else None
        self.metadata_ = {
            "as_of": None if as_of is None else str(pd.Timestamp(as_of).date()),
            "horizon_days": c.horizon_days,
            "train_rows": train_rows,
            "train_cutoffs": train_cutoffs,
            "snapshot_customers": n_snapshot,
            "fit_notes": notes,
        }
        return self

    def unsplit_targets(self) -> list[str]:
        """The targets (``churn``, ``purchases``, ``spend``) whose learned model is a single leaf per
        tree (:meth:`~churnclv.models.gbm_base.GBMBase.has_splits`): the same number for every customer."""
        models = (("churn", self.churn_), ("purchases", self.purchases_), ("spend", self.spend_))
        return [target for target, model in models if model is not None and not model.has_splits()]

    def _with_btyd_per_cutoff(self, train: pd.DataFrame, notes: list[str]) -> pd.DataFrame:
        """Add BTYD outputs to each cutoff's rows from a BTYD fitted on that cutoff alone (no leakage).

        A cutoff whose BTYD cannot be fitted or scored (an early cutoff with few customers) is left
        out of the learned models' training, with the reason in ``notes``; with no cutoff left the
        hybrid cannot be trained and the error propagates."""
        parts, failed = [], []
        last_error: Exception | None = None
        for cutoff, rows in train.groupby("cutoff", sort=True):
            try:
                model = self._btyd().fit(rows)
                parts.append(self._btyd_features(model, rows))
            except FIT_ERRORS as exc:
                failed.append(
                    f"cutoff {pd.Timestamp(cutoff).date()} ({len(rows)} rows) left out of the hybrid's "
                    f"training: its BTYD failed: {exc}"
                )
                log.warning("%s", failed[-1])
                last_error = exc
        if not parts:
            raise ValueError(f"hybrid: BTYD failed at every training cutoff (last: {last_error})")
        notes.extend(failed)
        out = pd.concat(parts)
        return out.loc[train.index.intersection(out.index)]

    def _btyd_features(self, model: BTYDModel, frame: pd.DataFrame) -> pd.DataFrame:
        return _with_btyd(frame, model.predict(frame, self.config_.label_horizon, clv_months=0))

    def _fit_levels(self, parts: _Parts) -> None:
        """Fit on the training snapshot's outputs (a score never depends on who else is scored) what
        carries the learned outputs to the scores: with labels of a shorter horizon (or
        ``churn_recalibrate``), the churn recalibration on BTYD's P(churn) (:func:`~churnclv.models.
        blending.soft_platt`); per learned total, the factor making it BTYD's (unless ``learned_totals =
        "learned"``; always with labels of a shorter horizon); with a season, BTYD's in operational time,
        the learned totals carried as :meth:`_base_scores` does, and always when the season's level was
        measured on the last closed window (what happened there is stronger evidence than either
        model's level)."""
        c = self.config_
        bt, window, raw = parts.bt, parts.window, parts.raw
        transfer = c.label_horizon != c.horizon_days
        if "churn" in raw and (transfer or c.churn_recalibrate):
            p_btyd = bt["p_churn"].to_numpy()
            self.churn_calibration_ = soft_platt(blend_logodds(raw["churn"], p_btyd, c.churn_btyd_weight), p_btyd)
        measured = window is not bt and self.season_levels_from is not None
        if c.learned_totals != "learned" or transfer or measured:
            p_churn = self._final_churn(raw, window)  # _totals holds purchases to at least 1 - p_churn
            own = self._carried(parts, NO_LEVELS)
            for target in ("purchases", "spend"):
                if target in raw:
                    want = window[f"expected_{target}"].to_numpy()
                    factor = (
                        floored_total_factor(own[target], want, 1.0 - p_churn)
                        if target == "purchases"
                        else total_factor(own[target], want)
                    )
                    self.level_factors_[target] = self.level_factors_[target] if factor is None else factor

    @property
    def season_levels_from(self) -> str | None:
        """The cutoff of the closed window the season's level was measured on (that level then sets
        the totals, whatever ``learned_totals`` says); None without a season or without such a window."""
        return None if self.seasonal_ is None else self.seasonal_.levels_from

    def _final_churn(self, raw: Mapping[str, np.ndarray], window: pd.DataFrame) -> np.ndarray:
        """The scores' ``p_churn``: BTYD's for the window, or the learned model's blended with it."""
        p_btyd = window["p_churn"].to_numpy()
        if "churn" not in raw:
            return np.asarray(p_btyd)
        c = self.config_
        return churn_probability(raw["churn"], p_btyd, c.churn_btyd_weight, self.churn_calibration_)

    def _chunked_parts(self, chunks: FeatureChunks, as_of: Any) -> _Parts:
        """:meth:`_parts` of a snapshot in chunks: the model outputs of every customer (a few numbers
        each), without the model input (no reasons from these parts)."""
        bts, windows, raws = ColumnStack(), ColumnStack(), ColumnStack()
        season = False
        for chunk in chunks:  # chunks come with a fresh RangeIndex (FeatureChunks)
            p = self._parts(stable_floats(chunk), as_of)
            season = p.window is not p.bt
            bts.add(p.bt, [c for c in (_KEPT_BT if season else _KEPT_BOTH) if c in p.bt.columns])
            if season:
                windows.add(p.window, [c for c in _KEPT_WINDOW if c in p.window.columns])
            raws.add(p.raw)
            del p
        bt = bts.frame()
        window = windows.frame() if season else bt
        raw = {t: col.to_numpy() for t, col in raws.frame().items()}
        return _Parts(bt, None, raw, window)

    def _chunked_tier_frame(self, chunks: FeatureChunks, parts: _Parts, policy: TierPolicy) -> pd.DataFrame:
        """:meth:`_tier_frame` of a snapshot in chunks, with only the columns the tier policy reads."""
        # not the ids: the fit reads none
        keep = {policy.tier_config.columns[role] for role in COLUMN_ROLES if role != "customer_id"}
        stack = ColumnStack()
        for features, rows in parts.along(chunks):
            frame = self._tier_frame(self._base_scores(features, rows), features)
            stack.add(frame, [col for col in frame.columns if col in keep])
        return stack.frame()

    def _parts(self, features: pd.DataFrame, as_of: Any) -> _Parts:
        """BTYD's outputs at the horizon (with the CLV), the learned models' input and raw outputs (before
        any level factor or recalibration), and the scoring window's BTYD outputs (``bt`` itself
        without a season or an as-of)."""
        c = self.config_
        bt = self.btyd_.predict(
            features, c.horizon_days, clv_months=c.clv_months, annual_discount_rate=c.annual_discount_rate
        )
        X = features
        if any(m is not None for m in (self.churn_, self.purchases_, self.spend_)):
            same = c.label_horizon == c.horizon_days  # the learned models read BTYD at their labels' horizon
            X = _with_btyd(features, bt if same else self.btyd_.predict(features, c.label_horizon, clv_months=0))
        raw = {}
        if self.churn_ is not None:
            raw["churn"] = self.churn_.predict_proba(X)
        for target in ("purchases", "spend"):
            model = getattr(self, f"{target}_")
            if model is not None:
                raw[target] = model.predict(X)
        window = bt
        seasonal = getattr(self, "seasonal_", None)  # scorers built by hand before it existed have none
        at = as_of if as_of is not None else getattr(self, "metadata_", {}).get("as_of")
        if seasonal is not None and at is not None:
            window = seasonal.predict(features, at, c.horizon_days)
        return _Parts(bt, X, raw, window)

    # ------------------------------------------------------------------ score

    def _check_fitted(self) -> None:
        if not hasattr(self, "btyd_"):
            raise NotFittedError("This Scorer is not fitted yet: call fit(train, snapshot) or Scorer.load(path)")

    def score(
        self,
        features: pd.DataFrame,
        *,
        as_of: Any = None,
        prev: pd.Series | pd.DataFrame | None = None,
        reasons: bool = True,
    ) -> pd.DataFrame:
        """Score a feature frame (one row per customer). Row order and ``customer_id`` are kept.

        Parameters
        ----------
        features : DataFrame
            Features as of one date (:func:`churnclv.features.compute_features`).
        as_of : date-like, optional
            That date: where the scoring window ``(as_of, as_of + H]`` starts, which the season (when
            the scorer has one) needs. Default: the training as-of.
        prev : Series or DataFrame, optional
            Last scoring's tiers (``customer_id`` -> tier), for tier hysteresis.
        reasons : bool
            Compute the plain-word reasons (costs about 1-2 ms per customer).

        Returns
        -------
        DataFrame
            ``customer_id, p_churn, p_alive, expected_purchases, expected_spend, clv``, the intervals
            (:data:`~churnclv.models.intervals.INTERVAL_COLUMNS`; ``clv_pXX`` NaN unless ``clv_intervals``),
            ``expected_next_purchase_days, next_purchase_days_p80`` (:mod:`churnclv.models.next_purchase`:
            50 % and 80 % waits consistent with ``p_churn``), the marketing fields (:data:`~churnclv.models.marketing.
            MARKETING_COLUMNS`), then ``growth_score, tier, tier_level, stage, action, reasons`` from
            the tier policy.
        """
        self._check_fitted()
        if "customer_id" not in features.columns:
            raise ValueError("Scorer.score: features need a customer_id column")
        return self._score(stable_floats(features.reset_index(drop=True)), as_of_day(as_of), prev, reasons, None)

    def score_fitted(self, snapshot: pd.DataFrame, *, as_of: Any = None, reasons: bool = False) -> pd.DataFrame:
        """:meth:`score` of the snapshot just fitted with ``keep_parts=True``, from the model outputs the
        fit computed (one prediction of every model over the snapshot instead of two). Once: the kept
        outputs are released."""
        parts, self._kept_parts = getattr(self, "_kept_parts", None), None
        features = stable_floats(snapshot.reset_index(drop=True))
        if (
            parts is None
            or parts.X is None
            or not np.array_equal(
                parts.X["customer_id"].to_numpy(dtype=str), features["customer_id"].to_numpy(dtype=str)
            )
        ):
            raise ValueError("Scorer.score_fitted: pass the snapshot of the last fit(keep_parts=True), once")
        return self._score(features, as_of_day(as_of), None, reasons, parts)

    def score_fitted_chunks(self, snapshot: FeatureChunks, *, as_of: Any = None) -> Iterator[pd.DataFrame]:
        """:meth:`score_fitted` of a snapshot in chunks (the one just fitted with ``keep_parts=True``):
        its scores chunk by chunk, without reasons."""
        parts, self._kept_parts = getattr(self, "_kept_parts", None), None
        if parts is None or parts.X is not None or len(parts.bt) != len(snapshot):
            raise ValueError(
                "Scorer.score_fitted_chunks: pass the chunked snapshot of the last fit(keep_parts=True), once"
            )
        at = as_of_day(as_of)
        for features, rows in parts.along(snapshot):
            yield self._score(features, at, None, False, rows)

    def _score(
        self,
        features: pd.DataFrame,
        as_of: Any,
        prev: pd.Series | pd.DataFrame | None,
        reasons: bool,
        parts: _Parts | None,
    ) -> pd.DataFrame:
        parts = self._parts(features, as_of) if parts is None else parts
        out, X = self._base_scores(features, parts), parts.X
        self.intervals_ = getattr(self, "intervals_", None) or fit_intervals(self.btyd_, self.config_)  # by hand
        scale = amount_scale(  # the draws' amounts at the scores' expected spend (learned, seasonal)
            out["expected_spend"].to_numpy(),
            out["p_churn"].to_numpy(),
            parts.bt["expected_spend"].to_numpy(),
            parts.bt["p_churn"].to_numpy(),
        )
        out = with_intervals(out, self.intervals_, features, clv=self.config_.clv_intervals, scale=scale)
        out = with_marketing(out, features, self.tiers_)  # before the tiers: the playbook may read them
        contributions = None
        if reasons and self.churn_ is not None and self.config_.top_reasons > 0:
            if X is None:  # chunked parts keep no model input
                raise ValueError("Scorer._score: reasons need the model input; score the features with score()")
            contributions = drivers(self.churn_, X, top_k=self.config_.top_reasons)
        if self.tiers_ is None:
            out["reasons"] = (
                [[r.feature for r in row] for row in contributions] if contributions else [[] for _ in range(len(out))]
            )
            return out
        tiers = self.tiers_.assign(
            self._tier_frame(out, features),
            contributions=contributions,
            prev=prev,
            max_reasons=self.config_.top_reasons,
            reasons=reasons,
        )
        more = {
            col: tiers[col].to_numpy() for col in ("growth_score", "tier", "tier_level", "stage", "action", "reasons")
        }
        return pd.concat([out, pd.DataFrame(more, index=out.index)], axis=1)

    def _base_scores(self, features: pd.DataFrame, parts: _Parts) -> pd.DataFrame:
        """The model outputs (no tiers, no reasons) of ``features`` from their :meth:`_parts`.

        With a season, BTYD's outputs for the window come from BTYD in operational time and the
        learned totals are carried by each customer's ratio of the two BTYD expectations."""
        c = self.config_
        bt, window = parts.bt, parts.window
        p_churn, purchases, spend, clv = self._totals(parts, self.level_factors_)
        # p_alive and the next-purchase quantiles agree with the final p_churn (next_purchase.py)
        timing = consistent_timing(
            self.btyd_, features, c.horizon_days, bt["p_churn"].to_numpy(), p_churn, window["p_alive"].to_numpy()
        )
        out = pd.DataFrame(
            {  # built in one go: column by column costs ~0.1 ms a column
                # kept as Arrow strings: a NumPy array would hold one Python object per id (~70 bytes)
                "customer_id": features["customer_id"].astype(str).array,
                "p_churn": p_churn,
                "p_alive": timing["p_alive"],
                "expected_purchases": purchases,
                "expected_spend": spend,
                "clv": clv,
                **{col: timing[col] for col in WAIT_COLUMNS},
            }
        )
        for col in ("p_churn", "p_alive", "expected_purchases", "expected_spend", "clv"):
            if not np.isfinite(out[col].to_numpy(dtype=float)).all():
                raise FloatingPointError(f"Scorer.score: {col} has non-finite values; the models are broken")
        return out

    def _totals(
        self, parts: _Parts, levels: Mapping[str, float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``p_churn``, expected purchases and spend at ``levels`` held to what ``p_churn`` allows
        (:func:`~churnclv.models.blending.coherent_totals`), and the CLV."""
        bt, raw = parts.bt, parts.raw
        bt_spend = bt["expected_spend"].to_numpy()
        clv = (  # a year's value: no window season
            bt["clv"].to_numpy()
            if "spend" not in raw
            else clv_from_spend(
                bt["clv"].to_numpy(), bt_spend, raw["spend"] * levels["spend"], self.clv_fallback_ratio_
            )
        )
        carried = self._carried(parts, levels)
        purchases, spend = carried["purchases"], carried["spend"]
        p_churn = self._final_churn(raw, parts.window)
        purchases, spend = coherent_totals(purchases, spend, p_churn, self.config_.horizon_days)
        return p_churn, purchases, spend, clv

    def _carried(self, parts: _Parts, levels: Mapping[str, float]) -> dict[str, np.ndarray]:
        """Expected ``purchases`` and ``spend`` for the window before the purchases floor: a learned
        total at its level, carried to the window by a season; BTYD's the window's own."""
        bt, raw, window = parts.bt, parts.raw, parts.window
        out = {}
        for target in ("purchases", "spend"):
            if target not in raw:
                out[target] = window[f"expected_{target}"].to_numpy()
                continue
            total = raw[target] * levels[target]
            if window is not bt:  # a season
                season = self.seasonal_
                assert season is not None  # a window of its own comes from the season
                total = total * season.carry(window, bt, target)
            out[target] = total
        return out

    def score_with_own_level(self, features: pd.DataFrame, *, as_of: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """:meth:`score` without reasons, and ``customer_id, expected_purchases, expected_spend`` at the
        learned models' own level (every level factor 1; the purchases floor and a season's carry as
        in the scores), what ``learned_totals = "learned"`` gives without a season, from one
        prediction of every model. The backtest compares both levels' totals with what happened
        (``learned_totals = "auto"``)."""
        self._check_fitted()
        frame = stable_floats(features.reset_index(drop=True))
        as_of = as_of_day(as_of)
        parts = self._parts(frame, as_of)
        scores = self._score(frame, as_of, None, False, parts)
        _, purchases, spend, _ = self._totals(parts, NO_LEVELS)
        own = pd.DataFrame(
            {"customer_id": scores["customer_id"].array, "expected_purchases": purchases, "expected_spend": spend}
        )
        return scores, own

    def feature_config(self) -> FeatureConfig:
        """The feature configuration the scorer was trained with (every path computes features with
        it, so the HTTP answer and the batch row agree); the defaults for scorers saved before it was
        recorded."""
        self._check_fitted()
        return feature_config_from_dict((getattr(self, "metadata_", None) or {}).get("features"))

    def feature_importance(self, target: str = "churn", kind: str = "gain") -> dict[str, float]:
        """LightGBM importance (``gain`` or ``split``) per feature of a target's model, largest first;
        empty when that target is scored by BTYD."""
        self._check_fitted()
        if target not in GBM_TARGETS:
            raise ValueError(f"target={target!r}: use 'churn', 'purchases' or 'spend'")
        model = getattr(self, f"{target}_")
        if model is None:
            return {}
        values = model.booster_.feature_importance(importance_type=kind)
        pairs = zip(model.booster_.feature_name(), map(float, values), strict=True)
        return dict(sorted(pairs, key=lambda kv: -kv[1]))

    @staticmethod
    def _tier_frame(scores: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
        """Scores side by side with the features the tier policy and the reasons read."""
        extra = features.drop(columns=[c for c in features.columns if c in scores.columns])
        return pd.concat([scores.reset_index(drop=True), extra.reset_index(drop=True)], axis=1)

    # ------------------------------------------------------------------ persistence

    def save(self, path: Path | str) -> Path:
        """Write the scorer to a folder: ``scorer.json`` plus ``<target>.lgb.txt`` booster files."""
        self._check_fitted()
        models = {t: getattr(self, f"{t}_") for t in GBM_TARGETS}
        saved = SavedScorer(
            config=self.config_,
            metadata=self.metadata_,
            clv_fallback_ratio=self.clv_fallback_ratio_,
            churn_calibration=self.churn_calibration_,
            level_factors=self.level_factors_,
            seasonal=self.seasonal_,
            intervals=getattr(self, "intervals_", None),
            btyd=self.btyd_,
            gbm={t: m for t, m in models.items() if m is not None},
            tiers=self.tiers_,
        )
        return write_scorer(path, saved)

    @classmethod
    def load(cls, path: Path | str) -> Scorer:
        """Read a scorer written by :meth:`save`.

        Raises
        ------
        FileNotFoundError
            No ``scorer.json`` in ``path``.
        churnclv.models.scorer_files.ScorerFormatError
            The files are not a scorer this code can read (damaged, tampered with, another
            version): one line naming the file and the field, never a traceback from deep inside.
        """
        saved = read_scorer(path)
        scorer = cls(config=saved.config)
        scorer.tiers_ = saved.tiers
        scorer.metadata_ = saved.metadata
        scorer.btyd_ = saved.btyd
        scorer.clv_fallback_ratio_ = saved.clv_fallback_ratio
        scorer.churn_calibration_ = saved.churn_calibration
        scorer.level_factors_ = dict(saved.level_factors)
        scorer.seasonal_ = saved.seasonal
        scorer.intervals_ = saved.intervals
        scorer.churn_ = scorer.purchases_ = scorer.spend_ = None
        for target, model in saved.gbm.items():
            setattr(scorer, f"{target}_", model)
        return scorer


@dataclass(frozen=True)
class _Parts:
    """A feature frame's model outputs before the scorer combines them (:meth:`Scorer._parts`)."""

    bt: pd.DataFrame  # BTYD at the horizon, with the CLV
    # the learned models' input (the features and BTYD's outputs at the label horizon); None when the
    # parts were computed chunk by chunk (:meth:`Scorer._chunked_parts`)
    X: pd.DataFrame | None
    raw: dict[str, np.ndarray]  # per learned target: its output before level factors and recalibration
    window: pd.DataFrame  # BTYD over the scoring window (``bt`` itself without a season)

    def along(self, chunks: FeatureChunks) -> Iterator[tuple[pd.DataFrame, _Parts]]:
        """Each chunk's features (stable floats) with its rows of these chunked parts (``window``
        stays ``bt`` without a season)."""
        start = 0
        for chunk in chunks:
            features = stable_floats(chunk)
            stop = start + len(features)
            bt = self.bt.iloc[start:stop].reset_index(drop=True)
            window = bt if self.window is self.bt else self.window.iloc[start:stop].reset_index(drop=True)
            yield features, _Parts(bt, None, {t: v[start:stop] for t, v in self.raw.items()}, window)
            start = stop


#: What chunked parts keep of BTYD's outputs: the columns the level factors and
#: :meth:`Scorer._base_scores` read of ``bt`` (at the horizon) and of ``window`` (the season's; without
#: a season ``window`` is ``bt``, which keeps both)
_KEPT_BT = ("p_churn", "expected_purchases", "expected_spend", "clv")
_KEPT_WINDOW = ("p_churn", "p_alive", "expected_purchases", "expected_spend")
_KEPT_BOTH = tuple(dict.fromkeys(_KEPT_BT + _KEPT_WINDOW))


def _with_btyd(features: pd.DataFrame, prediction: pd.DataFrame) -> pd.DataFrame:
    """Features plus the BTYD outputs the hybrid models read (:data:`BTYD_FEATURES`)."""
    extra = pd.DataFrame(
        {col: prediction[col.removeprefix("btyd_")].to_numpy() for col in BTYD_FEATURES}, index=features.index
    )
    return pd.concat([features.drop(columns=[c for c in BTYD_FEATURES if c in features.columns]), extra], axis=1)


def empty_scores() -> pd.DataFrame:
    """An empty frame with the score columns (for callers that score zero customers)."""
    text = ("customer_id", "risk_band", "tier", "stage", "action", "reasons")
    return pd.DataFrame({c: pd.Series(dtype="object" if c in text else "float64") for c in SCORE_COLUMNS})


__all__ = [
    "BTYD_FEATURES",
    "FIT_ERRORS",
    "SCORE_COLUMNS",
    "Scorer",
    "empty_scores",
    "model_features",
]
