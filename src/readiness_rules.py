"""The rules behind the readiness verdicts: what each model needs of the data, the thresholds, and
the training pipeline's layout of labelled cutoffs and backtest folds.

:func:`judge` turns the numbers :func:`churnclv.readiness.assess` measured into one verdict per model,
the errors (nothing can be fitted) and the warnings (what is thin, and what data would fix it).

The thresholds follow the code that fits the models: BG/NBD and Gamma-Gamma are
:class:`churnclv.models.btyd.BTYDModel` (Fader, Hardie and Lee 2005, Marketing Science 24(2) and JMR
42(4)); labelled cutoffs and backtest folds follow the training pipeline's layout (monthly cutoffs
``as_of - H - 30k`` with ``min_history_days`` of data before each; a fold evaluates at ``as_of - H`` and
trains at ``as_of - 2H`` or earlier).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from churnclv.features.dates import DAY
from churnclv.names import MAX_DAYS_AFTER_DATA
from churnclv.readiness_report import ModelReadiness

__all__ = [
    "BGNBD_WARN_REPEAT_BUYERS",
    "CUTOFF_STEP_DAYS",
    "GBM_MIN_CUSTOMERS",
    "MIN_BACKTEST_HORIZON_DAYS",
    "judge",
    "labelled_cutoffs",
    "longest_backtest",
]

# the training pipeline's cutoff step (TrainConfig.cutoff_step_days); src/ may not import training/
CUTOFF_STEP_DAYS = 30
# without a backtest at the horizon, training chooses its models on the longest shorter horizon a
# backtest fits, when it is at least this long (shorter windows say little about a longer horizon)
MIN_BACKTEST_HORIZON_DAYS = 14
# below this many repeat buyers BG/NBD's parameters are poorly identified (a warning, not a refusal)
BGNBD_WARN_REPEAT_BUYERS = 10
# LightGBM with min_data_in_leaf 50 and a held-out part for early stopping needs a few hundred rows
GBM_MIN_CUSTOMERS = 100


def labelled_cutoffs(first: dt.date | None, day: dt.date, horizon: int, min_history: int) -> tuple[int, dt.date | None]:
    """How many monthly cutoffs have a closed label window and enough history, and the latest."""
    if first is None:
        return 0, None
    latest = day - horizon * DAY
    earliest = first + min_history * DAY
    if latest < earliest:
        return 0, None
    return (latest - earliest).days // CUTOFF_STEP_DAYS + 1, latest


def longest_backtest(measured: dict[str, Any], min_history: int) -> int | None:
    """The longest horizon H with history >= min_history + 2 H (None below MIN_BACKTEST_HORIZON_DAYS)."""
    longest = (measured["history_days"] - min_history) // 2
    return longest if measured["first_transaction"] is not None and longest >= MIN_BACKTEST_HORIZON_DAYS else None


def judge(
    m: dict[str, Any],
    day: dt.date | None,
    horizon: int,
    min_history: int,
    gg_min: int,
    *,
    data_end: dt.date | None = None,
) -> tuple[list[ModelReadiness], list[str], list[str]]:
    """One verdict per model (``btyd``, ``gamma_gamma``, ``gbm``, ``hybrid``, ``backtest``), the errors
    and the warnings, from the numbers ``m`` measured as of ``day`` (None: no transaction line at all).

    ``gg_min`` is Gamma-Gamma's minimum of repeat buyers with positive spend (the scorer's default);
    ``data_end`` the day of the data's last transaction line, after the as-of too (None: not known).
    """
    errors: list[str] = []
    warnings: list[str] = []
    buyers, repeat, repeat_pos = m["customers_with_purchase"], m["repeat_buyers"], m["repeat_buyers_positive_spend"]
    history = m["history_days"]
    t_max = 0 if day is None or m["first_purchase"] is None else (day - m["first_purchase"]).days
    later = "use a later as-of or data with a longer history"

    if day is None:
        errors.append("the data hold no transaction line: nothing can be fitted; add the transactions table's rows")
    elif m["first_transaction"] is None:
        errors.append(f"no transaction line on or before as-of {day}: nothing can be fitted; {later}")
    elif buyers == 0:
        errors.append(
            f"no customer with a purchase (a line with amount > 0) by as-of {day}: nothing can be "
            "fitted; add the sales lines, not only returns or zero amounts (or, where a zero amount is a "
            "purchase, set [features] zero_amount_is_purchase = true)"
        )
    elif t_max == 0:
        errors.append(
            f"every first purchase is on the as-of date {day} (T is 0 for every customer): no time "
            f"has passed to observe repeat purchases; {later}"
        )
    elif repeat == 0:
        errors.append(
            f"no repeat buyer (nobody bought on two different days) by as-of {day}: BG/NBD is not "
            f"identified and every churn label would be 'churned'; {later}"
        )

    last = data_end  # the data's end: a quiet month before the as-of, with data after it, is no error
    late = day is not None and last is not None and (day - last).days > MAX_DAYS_AFTER_DATA
    if late and day is not None and last is not None:
        errors.append(
            f"as-of {day} is {(day - last).days:,} days after the last transaction line ({last}): the "
            f"label windows after it are empty, so every customer would count as churned; use an "
            f"as-of within {MAX_DAYS_AFTER_DATA} days of the data's end (e.g. --as-of {last}), or "
            "check the year"
        )

    # BG/NBD (spend is Gamma-Gamma's, which falls back to the mean order value, 0 without any)
    btyd_ok = buyers > 0 and t_max > 0 and repeat > 0
    btyd = ModelReadiness(
        "btyd",
        btyd_ok,
        "BG/NBD needs >= 1 customer with a purchase, a first purchase before as-of (T > 0) and >= 1 repeat "
        f"buyer; below {BGNBD_WARN_REPEAT_BUYERS} repeat buyers its parameters are poorly identified",
        f"{buyers:,} customers with a purchase, {repeat:,} repeat buyers ({repeat_pos:,} with positive "
        f"spend), T up to {t_max:,} days",
    )
    if btyd_ok and repeat < BGNBD_WARN_REPEAT_BUYERS:
        warnings.append(
            f"only {repeat} repeat buyers by as-of: BG/NBD parameters are poorly identified "
            f"(about {BGNBD_WARN_REPEAT_BUYERS} or more wanted); {later}"
        )
    if btyd_ok and t_max < min_history:
        # nobody observed long enough to lapse: the fit runs to the edge of its parameter space (a 10-day
        # history of 924 repeat buyers failed at every start and penalizer)
        warnings.append(
            f"the longest customer history is {t_max:,} days (under {min_history}): too short to see anyone "
            f"lapse, so the BG/NBD fit may not converge; {later}"
        )
    if btyd_ok and repeat_pos == 0:  # repeat buyers, but none with a positive net spend
        warnings.append(
            "no repeat buyer with a positive net spend by as-of: every expected spend and CLV is 0; "
            "check that sales lines carry positive amounts"
        )

    gg_ok = repeat_pos >= gg_min
    gg = ModelReadiness(
        "gamma_gamma",
        gg_ok,
        f"Gamma-Gamma spend needs >= {gg_min} repeat buyers with positive spend, else every customer's order "
        "value is the population mean order value",
        f"{repeat_pos:,} repeat buyers with positive spend"
        + ("" if gg_ok else f" (needs {gg_min}): population mean used"),
    )
    if btyd_ok and not gg_ok:
        warnings.append(
            f"only {repeat_pos} repeat buyers with positive spend (Gamma-Gamma needs {gg_min}): "
            f"spend uses the population mean order value; {later}"
        )

    # the learned models: labels at the latest cutoff whose window has closed
    need_labels = min_history + horizon
    cutoff, at_c, churn_c = m["latest_labelled_cutoff"], m["customers_at_latest_cutoff"], m["churners_at_latest_cutoff"]
    if cutoff is None:
        gbm_ok = False
        gbm_detail = (
            f"no labelled cutoff: needs {need_labels:,} days of history ({min_history} + horizon "
            f"{horizon}), has {history:,}"
        )
        if not errors:
            short = history - min_history
            fix = (f"a horizon of at most {short} days or " if short >= 1 else "") + later
            warnings.append(
                f"no labelled cutoff for LightGBM/hybrid: a {horizon}-day label window needs "
                f"{need_labels:,} days of history, the data have {history:,}; {fix}"
            )
    else:
        one_class = churn_c in (0, at_c)
        gbm_ok = at_c >= GBM_MIN_CUSTOMERS and not one_class
        gbm_detail = (
            f"{m['labelled_cutoffs']} labelled cutoffs, latest {cutoff} with {at_c:,} customers with a "
            f"purchase ({churn_c:,} without one in its window)"
        )
        if errors:
            pass  # the errors say it all
        elif at_c < GBM_MIN_CUSTOMERS:
            warnings.append(
                f"only {at_c} customers with a purchase by the latest labelled cutoff {cutoff} "
                f"(LightGBM/hybrid need {GBM_MIN_CUSTOMERS}): the learned models have too little to learn from; "
                "training still backtests them and uses one only where it beats BTYD there (with no backtest, "
                "BTYD scores every target); more customers or a later as-of would fix it"
            )
        elif one_class:
            kind = "churned" if churn_c == at_c else "bought again"
            warnings.append(
                f"at the latest labelled cutoff {cutoff} every customer {kind} within the "
                f"{horizon}-day window: the churn classifier needs both outcomes; use another horizon "
                "or a later as-of"
            )
    gbm = ModelReadiness(
        "gbm",
        gbm_ok,
        f"LightGBM needs >= 1 labelled cutoff (c >= first transaction + {min_history} days, c + horizon <= as-of) "
        f"with >= {GBM_MIN_CUSTOMERS} customers with a purchase by it, some of whom buy again in its window and "
        "some not",
        gbm_detail,
    )
    hybrid = ModelReadiness(
        "hybrid",
        gbm_ok and btyd_ok,
        "LightGBM on the features plus BTYD outputs: needs what gbm and btyd need",
        f"gbm {'ok' if gbm_ok else 'not ok'}, btyd {'ok' if btyd_ok else 'not ok'}",
    )

    need_backtest = min_history + 2 * horizon
    backtest_ok = m["first_transaction"] is not None and history >= need_backtest
    longest = longest_backtest(m, min_history)
    backtest = ModelReadiness(
        "backtest",
        backtest_ok,
        f"a backtest fold (model selection) needs history >= {min_history} + 2 x horizon days: an evaluation "
        f"cutoff at as-of - horizon and a training cutoff at as-of - 2 x horizon with {min_history} days before "
        "it; otherwise training goes on without a backtest at this horizon: models chosen on the longest "
        f"horizon a backtest fits (at least {MIN_BACKTEST_HORIZON_DAYS} days), learned models trained on the "
        "labelled cutoffs (of that shorter horizon, carried to this one by BTYD, when this horizon has fewer "
        "than train.min_label_cutoffs), or BTYD (label-free) for every target when neither exists",
        f"needs {need_backtest:,} days of history, has {history:,}"
        + (
            ""
            if backtest_ok
            else (f"; a backtest fits with a horizon of at most {longest} days" if longest else "; no horizon fits")
        ),
    )
    if not backtest_ok and not errors:
        fix = f"a horizon of at most {longest} days or " if longest else ""
        warnings.append(
            f"no backtest at horizon {horizon}: it needs {need_backtest:,} days of history, the data "
            f"have {history:,}; training goes on without a backtest at this horizon ("
            + (f"models chosen on a {longest}-day backtest" if longest else "BTYD for every target")
            + f"); {fix}{need_backtest - history:,} more days of "
            "history (a later as-of or earlier data) would fix it"
        )
    if day is not None and not m["has_events"]:
        warnings.append(
            "no events by as-of: engagement features (logins, e-mails, support) stay empty; add an "
            "events table to use them"
        )
    if day is not None and not m["has_signup_ts"]:
        warnings.append(
            "no signup_ts by as-of: customers who signed up but never bought are not scored; add a "
            "customers table with signup_ts to include them"
        )
    missing, with_lines = m["lines_not_in_customers"], m["customers_with_lines"]
    if with_lines and 2 * missing > with_lines:
        warnings.append(
            f"{missing:,} of the {with_lines:,} customers with transaction lines are not in the customers "
            "table: where the tables write ids differently (leading zeros lost, e.g. 7 for 007, or a "
            "prefix), each such customer counts twice; write the ids alike in every table (as text)"
        )
    models = [btyd, gg, gbm, hybrid, backtest]
    if late:  # the counts above see the data, not the empty label windows after it: nothing is ok
        models = [replace(m, ok=False, detail=f"{m.detail}; but the as-of is after the data's end") for m in models]
    return models, errors, warnings
