"""BTYD ("buy till you die") models wrapping ``lifetimes``: purchases, churn, spend and CLV.

:class:`BTYDModel` fits one transaction model -- BG/NBD (default), Pareto/NBD or MBG/NBD -- and a
Gamma-Gamma spend model on the per-customer summary the feature job builds, and scores every customer
for a horizon of ``H`` days: ``p_alive``, ``p_churn``, ``expected_purchases``, ``expected_order_value``,
``expected_spend``, ``clv`` and ``expected_next_purchase_days``.

The input is the customer summary of :mod:`churnclv.models.btyd_summary` (``frequency``, ``recency``,
``T``, ``monetary_value``; one row per customer, lifetimes' conventions, all times in **days**).

A customer who never bought (a sign-up) has ``frequency``, ``recency`` and ``T`` all NaN. Such rows are
left out of the fit. They are scored as a customer with no repeat purchase whose clock started at their
first sign of life: ``frequency = recency = 0`` and ``T = tenure_days`` when the frame has that column,
else ``T = 0`` (a brand-new customer: the population prior). Someone who has not bought for
``tenure_days`` is less likely to buy next than someone who just arrived
(:func:`~churnclv.models.btyd_summary.never_bought_age`).

Churn is ``P(no purchase in (as_of, as_of + H])`` under the fitted model, never ``1 - P(alive)``: BG/NBD
gives ``P(alive) = 1`` to every one-time buyer, so ``1 - P(alive)`` ranks them as the safest customers.

Every score holds for every parameter set a fit can return: the conditional expectations are evaluated
by series, closed form or quadrature, whichever is exact for the row
(:mod:`churnclv.models.btyd_conditionals`), and a transaction-model fit that fails is retried from other
starting points and then at larger penalizers before giving up (:mod:`churnclv.models.btyd_fitting`;
``fit_notes_`` says what was used). Gamma-Gamma and its fallback: :mod:`churnclv.models.btyd_spend`.

The models are the papers' (lifetimes implements them; we only wrap the fitters):

- BG/NBD: Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2), 275-284.
- Pareto/NBD: Schmittlein, Morrison and Colombo (1987), "Counting Your Customers: Who Are They and What
  Will They Do Next?", Management Science 33(1), 1-24; conditional pmf from Fader and Hardie (2006),
  "Deriving the Conditional PMF of the Pareto/NBD Model" (brucehardie.com note 028).
- MBG/NBD: Batislam, Denizel and Filiztekin (2007), "Empirical validation and comparison of models for
  customer base analysis", IJRM 24(3), 201-209; Wagner and Hoppe (2008), "Erratum on the MBG/NBD
  Model", IJRM 25(3), 225-226.
- Gamma-Gamma: Fader, Hardie and Lee (2005), "RFM and CLV: Using Iso-Value Curves for Customer Base
  Analysis", JMR 42(4), 415-430; Fader and Hardie (2013), "The Gamma-Gamma Model of Monetary Value"
  (brucehardie.com note 025).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from churnclv.models import btyd_conditionals as conditional
from churnclv.models.btyd_fitting import fit_purchases
from churnclv.models.btyd_spend import CAP_IQR, CAP_MIN_RATIO, capped, fit_spend, monetary_cap, order_value
from churnclv.models.btyd_summary import BTYDInputError, never_bought_age, unique_rows, validate_summary
from churnclv.models.lifetimes_fitters import GG_PARAM_NAMES, PARAM_NAMES, fitter_with_params, pareto_recency, quiet
from churnclv.models.next_purchase import purchase_wait
from churnclv.models.saved_format import SavedFormatError, check_stamp

__all__ = ["MODELS", "PREDICTION_COLUMNS", "BTYDModel"]

logger = logging.getLogger(__name__)

MODELS: tuple[str, ...] = ("bgnbd", "pareto", "mbgnbd")
PREDICTION_COLUMNS: tuple[str, ...] = (
    "p_alive",
    "p_churn",
    "expected_purchases",
    "expected_order_value",
    "expected_spend",
    "clv",
    "expected_next_purchase_days",
)

# The stamp of a saved BTYDModel (see to_dict): its format name predates the module split.
_STAMP = {"format": "churnclv.models.btyd.BTYDModel", "version": 1}


class BTYDModel(BaseEstimator):
    """BG/NBD, Pareto/NBD or MBG/NBD purchases plus Gamma-Gamma spend, wrapping ``lifetimes``.

    Parameters
    ----------
    model : {"bgnbd", "pareto", "mbgnbd"}, default "bgnbd"
        Transaction model: BG/NBD (Fader, Hardie and Lee 2005), Pareto/NBD (Schmittlein, Morrison and
        Colombo 1987) or MBG/NBD (Batislam, Denizel and Filiztekin 2007).
    penalizer : float, default 0.0
        lifetimes' ``penalizer_coef`` for the transaction model (L2 on its parameters, in lifetimes'
        internal time scale). A fit that fails at it is retried at larger ones (see :meth:`fit`).
    gg_penalizer : float, default 0.0
        lifetimes' ``penalizer_coef`` for Gamma-Gamma.
    time_unit_days : float, default 1.0
        The model's time unit in days (7 for weeks). Inputs and outputs stay in days; only the
        parameters (``alpha``, ``beta``) and ``log_likelihood_`` are in this unit.
    compress : bool, default True
        Fit on the unique ``(frequency, recency, T)`` rows (and unique ``(frequency, monetary_value)``
        rows for Gamma-Gamma) with counts as lifetimes ``weights``: the same likelihood, so the same
        parameters, in a fraction of the time. From 20,000 unique rows on, the optimizer also starts
        from a fit on a time-coarsened copy of the data (same optimum, fewer iterations). False fits
        lifetimes on every customer from its default start (the reference).
    tol : float, default 1e-8
        Optimizer tolerance passed to lifetimes. Tighter than its 1e-7 default, so compressed and
        uncompressed fits land on the same optimum to ~1e-8 rather than ~1e-6. When BFGS stops on
        rounding noise ("precision loss") at this tolerance the fit is retried at 1e-7.
    gg_min_repeat_buyers : int, default 20
        Fewer repeat buyers with positive ``monetary_value`` than this and Gamma-Gamma is not fitted:
        every customer's expected order value is the population mean order value instead
        (``gg_fallback_`` says why). The same fallback applies when Gamma-Gamma fails to converge or
        gives ``q <= 1``.
    value_factor : float, default 1.0
        A factor on every expected order value (so on expected spend and CLV): training sets it to
        what the backtest measured, the realised spend per purchase over Gamma-Gamma's
        (``[scorer] order_value``); 1 is Gamma-Gamma as fitted. Not used in the fit.

    Attributes
    ----------
    params_ : dict[str, float]
        Transaction-model parameters (``r, alpha, a, b`` or ``r, alpha, s, beta``; rates per
        ``time_unit_days``).
    log_likelihood_ : float
        Total log-likelihood of the transaction model at ``params_`` (unpenalized, model time unit):
        the figure the papers report.
    gg_params_ : dict[str, float] or None
        Gamma-Gamma ``p, q, v`` (``v`` is the papers' gamma), None when the fallback is in use.
    gg_log_likelihood_ : float or None
        Total Gamma-Gamma log-likelihood.
    mean_order_value_ : float
        Population mean order value: mean net spend per repeat purchase day over repeat buyers.
    monetary_cap_ : float or None
        The cap on a customer's mean order value (:func:`~churnclv.models.btyd_spend.monetary_cap`:
        Q3 + 3 IQR of its log over the repeat buyers, at least 10 x Q3), in the fit and in every
        prediction; None: no cap (fewer than 4 repeat buyers, or a model saved before the cap).
    gg_fallback_ : str or None
        Why Gamma-Gamma is not used, or None.
    n_customers_, n_unique_rows_, n_repeat_buyers_ : int
        Customers fitted on (with at least one purchase), unique ``(frequency, recency, T)`` rows, and
        repeat buyers with positive monetary value.
    fit_notes_ : list[str]
        What the transaction-model fit had to fall back on (another starting point, a larger
        penalizer), empty when the first attempt worked; each is also logged as a warning.
    fit_seconds_ : dict[str, float]
        Wall time of the fit's stages: ``purchases`` (compression + transaction model) and ``spend``
        (not saved by :meth:`to_dict`).

    Notes
    -----
    Customers with no purchase at all (``frequency``, ``recency``, ``T`` NaN) are not fitted on and are
    scored as a customer with no repeat purchase whose clock started at their first sign of life:
    ``frequency = recency = 0`` and ``T = tenure_days`` when the frame has that column (as the feature
    frames do), else ``T = 0`` (as if their first purchase were on the as-of date).
    """

    def __init__(
        self,
        *,
        model: str = "bgnbd",
        penalizer: float = 0.0,
        gg_penalizer: float = 0.0,
        time_unit_days: float = 1.0,
        compress: bool = True,
        tol: float = 1e-8,
        gg_min_repeat_buyers: int = 20,
        value_factor: float = 1.0,
    ) -> None:
        self.model = model
        self.penalizer = penalizer
        self.gg_penalizer = gg_penalizer
        self.time_unit_days = time_unit_days
        self.compress = compress
        self.tol = tol
        self.gg_min_repeat_buyers = gg_min_repeat_buyers
        self.value_factor = value_factor

    def _check_settings(self) -> None:
        name = type(self).__name__
        if self.model not in MODELS:
            raise BTYDInputError(f"{name}: model={self.model!r} is not one of {list(MODELS)}.")
        for field in ("penalizer", "gg_penalizer"):
            v = getattr(self, field)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise BTYDInputError(f"{name}: {field}={v!r} must be a finite number >= 0.")
        if not (
            isinstance(self.time_unit_days, (int, float))
            and math.isfinite(self.time_unit_days)
            and self.time_unit_days > 0
        ):
            raise BTYDInputError(
                f"{name}: time_unit_days={self.time_unit_days!r} must be > 0 (1 for days, 7 for weeks)."
            )
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise BTYDInputError(f"{name}: tol={self.tol!r} must be in (0, 1).")
        if not (isinstance(self.gg_min_repeat_buyers, (int, np.integer)) and self.gg_min_repeat_buyers >= 1):
            raise BTYDInputError(f"{name}: gg_min_repeat_buyers={self.gg_min_repeat_buyers!r} must be an integer >= 1.")
        if not (isinstance(self.value_factor, (int, float)) and 0 < self.value_factor <= 10):
            raise BTYDInputError(
                f"{name}: value_factor={self.value_factor!r} must be in (0, 10] (1: Gamma-Gamma as fitted)."
            )

    def fit(self, frame: pd.DataFrame, y: None = None) -> BTYDModel:
        """Fit the transaction model and Gamma-Gamma on a customer summary.

        Parameters
        ----------
        frame : pandas.DataFrame
            One row per customer with ``frequency``, ``recency``, ``T``, ``monetary_value`` in days
            (see the module docstring). Never-purchased rows (NaN) are ignored.
        y : None
            Unused; present for scikit-learn compatibility.

        Returns
        -------
        BTYDModel
            ``self``, fitted.

        Raises
        ------
        BTYDInputError
            A ``ValueError`` and :class:`~churnclv.errors.ChurnclvError`: when a setting breaks its rule, or
            the frame breaks the summary contract or holds no customer with a purchase.
        BTYDConvergenceError
            When every attempt at the transaction model (see Notes) fails to converge or gives
            unusable parameters, or when fewer distinct histories than parameters make it
            unidentifiable.

        Notes
        -----
        A transaction-model fit that raises lifetimes' ``ConvergenceError``, gives parameters outside
        ``(1e-6, 1e6)`` or a non-finite log-likelihood is retried from lifetimes' default start (when
        a warm start was used), then from two fixed starts, then at penalizers 1e-4, 1e-3, 1e-2, 0.1
        and 1 (those above ``penalizer``); ``fit_notes_`` records what was used.
        """
        self._check_settings()
        name = type(self).__name__
        cols = validate_summary(frame, f"{name}.fit")
        bought = ~cols["never"]
        if not bought.any():
            raise BTYDInputError(
                f"{name}.fit: no customer with a purchase (frequency, "
                "recency and T are NaN in every row); there is nothing to fit."
            )
        if not np.any(cols["frequency"][bought] > 0):  # the likelihood then runs off to r -> 0 at any start
            raise BTYDInputError(
                f"{name}.fit: no repeat purchase (frequency is 0 in every row): nobody bought on two different "
                "days, so the purchase rate and the dropout are not identified; fit at a later as-of or on more "
                "customers, and check that a customer keeps one id across orders."
            )
        unit = float(self.time_unit_days)
        f = cols["frequency"][bought]
        r = cols["recency"][bought] / unit
        t = cols["T"][bought] / unit
        m = cols["monetary_value"][bought]
        if t.max() <= 0:
            raise BTYDInputError(
                f"{name}.fit: column 'T' is 0 for every customer (all "
                "first purchases on the as-of date); fit at a later as-of date."
            )

        started = time.perf_counter()
        params, log_likelihood, notes, n_unique = fit_purchases(
            self.model,
            f,
            r,
            t,
            compress=self.compress,
            penalizer=float(self.penalizer),
            tol=float(self.tol),
            where=f"{name}.fit",
        )
        for note in notes:
            logger.warning("BTYD fit fallback used: %s", note)
        purchases_s = time.perf_counter() - started

        started = time.perf_counter()
        cap = monetary_cap(f, m)
        above = int(np.sum((f > 0) & (m > cap))) if cap is not None else 0
        if above:
            notes = [
                *notes,
                (
                    f"{above} repeat buyer(s) with a mean order value above {cap:.4g} (Q3 + {CAP_IQR:g} IQR of its "
                    f"log over the repeat buyers, at least {CAP_MIN_RATIO:g} x Q3) taken as {cap:.4g}"
                ),
            ]
            logger.warning("BTYD spend: %s", notes[-1])
        spend = fit_spend(
            f,
            capped(m, cap),
            compress=self.compress,
            penalizer=float(self.gg_penalizer),
            tol=float(self.tol),
            min_repeat_buyers=self.gg_min_repeat_buyers,
            where=f"{name}.fit",
        )
        if spend.fallback is not None:
            logger.warning(
                "Gamma-Gamma not used, expected order value is the population mean %.4g: %s",
                spend.mean_order_value,
                spend.fallback,
            )
        spend_s = time.perf_counter() - started

        self.params_ = params
        self.log_likelihood_ = log_likelihood
        self.gg_params_ = spend.params
        self.gg_log_likelihood_ = spend.log_likelihood
        self.mean_order_value_ = spend.mean_order_value
        self.monetary_cap_ = cap
        self.gg_fallback_ = spend.fallback
        self.n_customers_ = int(f.size)
        self.n_unique_rows_ = n_unique
        self.fit_notes_ = notes
        self.n_repeat_buyers_ = spend.n_repeat_buyers
        self.fit_seconds_ = {"purchases": purchases_s, "spend": spend_s}
        logger.debug(
            "fitted %s on %d customers (%d unique rows) in %.2fs: %s, log-likelihood %.2f",
            self.model,
            self.n_customers_,
            self.n_unique_rows_,
            purchases_s,
            params,
            log_likelihood,
        )
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet: call 'fit' "
                "with a customer summary (or load one with "
                f"{type(self).__name__}.from_dict) before 'predict'."
            )

    def _order_values(self, cols: Mapping[str, np.ndarray]) -> np.ndarray:
        values = order_value(self.gg_params_, self.mean_order_value_, cols, getattr(self, "monetary_cap_", None))
        factor = float(self.value_factor)
        return values if factor == 1.0 else values * factor

    def expected_order_value(self, frame: pd.DataFrame) -> pd.Series:
        """Gamma-Gamma conditional expected value of a future purchase day, per customer.

        See :func:`churnclv.models.btyd_spend.order_value` for the formula; under the fallback every
        customer gets ``mean_order_value_``. Both times ``value_factor``.

        Parameters
        ----------
        frame : pandas.DataFrame
            Customer summary (see the module docstring).

        Returns
        -------
        pandas.Series
            Indexed like ``frame``.
        """
        self._check_fitted()
        cols = validate_summary(frame, f"{type(self).__name__}.expected_order_value")
        values = self._order_values(cols)
        return pd.Series(values, index=frame.index, name="expected_order_value")

    def predict(
        self, frame: pd.DataFrame, horizon_days: float, *, clv_months: int = 12, annual_discount_rate: float = 0.10
    ) -> pd.DataFrame:
        """Score every customer for the next ``horizon_days`` days.

        Parameters
        ----------
        frame : pandas.DataFrame
            Customer summary as in :meth:`fit` (never-purchased rows are scored with no repeat purchase
            and ``T = tenure_days`` when the frame has that column, else as new customers).
        horizon_days : float
            Horizon ``H`` in days, > 0.
        clv_months : int, default 12
            CLV horizon in months of ``365.25 / 12`` days.
        annual_discount_rate : float, default 0.10
            Discount rate per year; month ``k``'s spend is discounted by ``(1 + d)^(k / 12)``.

        Returns
        -------
        pandas.DataFrame
            Same index and row order as ``frame`` (``customer_id`` first when ``frame`` has it), with:

            - ``p_alive``: P(alive at as-of | history);
            - ``p_churn``: P(no purchase in (as-of, as-of + H] | history);
            - ``expected_purchases``: E[purchase days in (as-of, as-of + H] | history];
            - ``expected_order_value``: Gamma-Gamma E[value of a purchase day | spend history];
            - ``expected_spend``: ``expected_purchases * expected_order_value``;
            - ``clv``: ``sum_k E[purchases in month k] * expected_order_value / (1 + d)^(k/12)``
              over ``k = 1..clv_months``;
            - ``expected_next_purchase_days``: median days from as-of to the next purchase under the
              conditional model (smallest ``h`` with P(no purchase in h) <= 1/2), NaN when that is
              not within a year (:data:`~churnclv.models.next_purchase.MAX_WAIT_DAYS`). Add it to the
              as-of date for a date.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit` (or :meth:`from_dict`).
        FloatingPointError
            If any score comes out non-finite (scores are never silently NaN).
        """
        self._check_fitted()
        name = type(self).__name__
        if not (
            isinstance(horizon_days, (int, float, np.integer, np.floating))
            and math.isfinite(horizon_days)
            and horizon_days > 0
        ):
            raise BTYDInputError(f"{name}.predict: horizon_days={horizon_days!r} must be a finite number of days > 0.")
        if not (isinstance(clv_months, (int, np.integer)) and clv_months >= 0):
            raise BTYDInputError(f"{name}.predict: clv_months={clv_months!r} must be an integer >= 0.")
        if not (
            isinstance(annual_discount_rate, (int, float, np.integer, np.floating))
            and math.isfinite(annual_discount_rate)
            and annual_discount_rate > -1
        ):
            raise BTYDInputError(
                f"{name}.predict: annual_discount_rate={annual_discount_rate!r} must be "
                "a finite number > -1 (0.10 for 10% a year)."
            )
        cols = validate_summary(frame, f"{name}.predict")
        unit = float(self.time_unit_days)
        (f, r, t), (x, tx, tt), inverse = self._histories(frame, cols)
        model, params = self.model, self.params_
        fitter = fitter_with_params(model, params)
        h = float(horizon_days) / unit
        with quiet():
            p_alive = conditional.as_probability(
                "p_alive", conditional.alive_probability(model, fitter, params, x, tx, tt)
            )
            none = conditional.no_purchase_probability(model, fitter, params, p_alive, x, tx, tt, h)
            p_churn = conditional.as_probability("p_churn", none)
            purchases = conditional.expected_purchases(model, fitter, params, x, tx, tt, h, p_alive)
            discounted = conditional.discounted_purchases(
                model, fitter, params, x, tx, tt, p_alive, unit, int(clv_months), annual_discount_rate
            )
            next_days = purchase_wait(model, fitter, params, p_alive, x, tx, tt, unit, 0.5)

        value = self._order_values(cols)
        purchases_all = purchases[inverse]
        data: dict[str, Any] = {}
        if "customer_id" in frame.columns:
            data["customer_id"] = frame["customer_id"].to_numpy()
        data.update(
            p_alive=p_alive[inverse],
            p_churn=p_churn[inverse],
            expected_purchases=purchases_all,
            expected_order_value=value,
            expected_spend=purchases_all * value,
            clv=discounted[inverse] * value,
            expected_next_purchase_days=next_days[inverse],
        )
        out = pd.DataFrame(data, index=frame.index)  # one construction: cheap for one row too
        for c in PREDICTION_COLUMNS[:-1]:
            bad = ~np.isfinite(np.asarray(data[c], dtype=float))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise FloatingPointError(
                    f"{name}.predict: {c} is not finite for {int(bad.sum())} customer(s) (first at "
                    f"index {frame.index[i]!r}: frequency={f[i]}, recency={r[i] * unit}, "
                    f"T={t[i] * unit}); the {model} closed forms overflowed with params {params}."
                )
        return out

    def _histories(
        self, frame: pd.DataFrame, cols: Mapping[str, np.ndarray]
    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], np.ndarray]:
        """Per row ``(frequency, recency, T)`` in model time (sign-ups as no repeat purchase at
        ``T = tenure_days``), the unique ones (Pareto/NBD recency nudged) and the inverse map."""
        unit = float(self.time_unit_days)
        never = cols["never"]
        f = np.where(never, 0.0, cols["frequency"])
        r = np.where(never, 0.0, cols["recency"]) / unit
        t = np.where(never, never_bought_age(frame, never), cols["T"]) / unit
        (x, tx, tt), _, inverse = unique_rows(f, r, t)
        if self.model == "pareto":
            tx = pareto_recency(x, tx, tt)
        return (f, r, t), (x, tx, tt), inverse

    def purchase_wait_days(self, frame: pd.DataFrame, target: np.ndarray) -> np.ndarray:
        """Days from as-of until the probability of at least one purchase reaches ``target`` (one per
        row), NaN when not within a year (:func:`~churnclv.models.next_purchase.purchase_wait`)."""
        self._check_fitted()
        (_, _, _), (x, tx, tt), inverse = self._histories(frame, validate_summary(frame, "purchase_wait_days"))
        model, params = self.model, self.params_
        fitter = fitter_with_params(model, params)
        with quiet():
            p_alive = conditional.as_probability(
                "p_alive", conditional.alive_probability(model, fitter, params, x, tx, tt)
            )
            return purchase_wait(model, fitter, params, p_alive, x, tx, tt, float(self.time_unit_days), target, inverse)

    def to_dict(self) -> dict[str, Any]:
        """Settings and learned parameters as a JSON-serialisable dict (no pickling).

        Returns
        -------
        dict
            ``{"format", "version", "init", "fitted"}``; ``fitted`` is None before :meth:`fit`.
        """
        init = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.get_params().items()}
        fitted: dict[str, Any] | None = None
        if hasattr(self, "params_"):
            fitted = {
                "params": {k: float(v) for k, v in self.params_.items()},
                "log_likelihood": float(self.log_likelihood_),
                "gg_params": None if self.gg_params_ is None else {k: float(v) for k, v in self.gg_params_.items()},
                "gg_log_likelihood": None if self.gg_log_likelihood_ is None else float(self.gg_log_likelihood_),
                "mean_order_value": float(self.mean_order_value_),
                "monetary_cap": None if self.monetary_cap_ is None else float(self.monetary_cap_),
                "gg_fallback": self.gg_fallback_,
                "n_customers": int(self.n_customers_),
                "n_unique_rows": int(self.n_unique_rows_),
                "n_repeat_buyers": int(self.n_repeat_buyers_),
                "fit_notes": [str(n) for n in self.fit_notes_],
            }
        return {**_STAMP, "init": init, "fitted": fitted}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BTYDModel:
        """Rebuild an estimator from :meth:`to_dict` output.

        Parameters
        ----------
        data : Mapping
            As returned by :meth:`to_dict` (possibly through JSON).

        Returns
        -------
        BTYDModel
            Fitted when ``data["fitted"]`` is not None.
        """
        check_stamp(
            data, _STAMP, reader=f"{cls.__name__}.from_dict", fix=f"pass the output of {cls.__name__}.to_dict()."
        )
        try:
            est = cls(**dict(data["init"]))
        except TypeError as exc:
            raise SavedFormatError(
                f"{cls.__name__}.from_dict: field 'init' holds an unknown setting "
                f"({exc}); expected keys of {cls.__name__}().get_params()."
            ) from exc
        est._check_settings()
        fitted = data.get("fitted")
        if fitted is None:
            return est
        names = PARAM_NAMES[est.model]
        params = dict(fitted["params"])
        if sorted(params) != sorted(names):
            raise SavedFormatError(
                f"{cls.__name__}.from_dict: field 'fitted.params' must have keys "
                f"{list(names)} for model {est.model!r}, got {sorted(params)}."
            )
        gg = fitted.get("gg_params")
        if gg is not None and sorted(gg) != sorted(GG_PARAM_NAMES):
            raise SavedFormatError(
                f"{cls.__name__}.from_dict: field 'fitted.gg_params' must have keys "
                f"{list(GG_PARAM_NAMES)}, got {sorted(gg)}."
            )
        est.params_ = {k: float(params[k]) for k in names}
        est.log_likelihood_ = float(fitted["log_likelihood"])
        est.gg_params_ = None if gg is None else {k: float(gg[k]) for k in GG_PARAM_NAMES}
        gg_ll = fitted.get("gg_log_likelihood")
        est.gg_log_likelihood_ = None if gg_ll is None else float(gg_ll)
        est.mean_order_value_ = float(fitted["mean_order_value"])
        cap = fitted.get("monetary_cap")  # optional: absent before the cap
        est.monetary_cap_ = None if cap is None else float(cap)
        est.gg_fallback_ = fitted.get("gg_fallback")
        est.n_customers_ = int(fitted["n_customers"])
        est.n_unique_rows_ = int(fitted["n_unique_rows"])
        est.n_repeat_buyers_ = int(fitted["n_repeat_buyers"])
        est.fit_notes_ = [str(n) for n in fitted.get("fit_notes", [])]  # optional: absent before
        return est
