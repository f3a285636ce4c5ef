"""The readiness report: what clean tables support as of a date (:class:`Readiness`) and one model's
verdict (:class:`ModelReadiness`), as JSON or a few lines of text.

:func:`churnclv.readiness.assess` fills it in; :mod:`churnclv.readiness_rules` holds the rules behind
the verdicts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["ModelReadiness", "Readiness"]


@dataclass(frozen=True)
class ModelReadiness:
    """One model's verdict: ``ok`` when it can be fitted as configured, ``rule`` in words, ``detail``
    with this data's numbers."""

    name: str
    ok: bool
    rule: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """The verdict as a JSON-able dict."""
        return asdict(self)


@dataclass(frozen=True)
class Readiness:
    """What clean tables support as of a date (see :func:`churnclv.readiness.assess`).

    Attributes
    ----------
    as_of, horizon_days, min_history_days
        The question asked; ``as_of`` is None only when the data hold no transaction line at all.
    customers_known
        Distinct customers with a transaction line or a signup on or before as-of.
    customers_with_purchase
        Customers with a purchase day (a line with ``amount > 0``) on or before as-of.
    repeat_buyers, repeat_buyers_positive_spend
        Customers with purchases on two or more days; of those, the ones whose mean net spend of the
        repeat purchase days is positive (Gamma-Gamma's population).
    first_transaction, last_transaction, first_purchase
        Dates of the first and last transaction line and of the first purchase (None without one).
    history_days
        ``as_of - first_transaction`` in days (0 without transactions).
    has_events, has_customers, has_signup_ts
        An events table with a row on or before as-of; a customers table; a signup on or before as-of.
    customers_with_lines, lines_not_in_customers
        Distinct customers with a transaction line on or before as-of; of those, the ones the
        customers table does not hold (both 0 without a customers table: counted only to compare the
        two tables, a distinct over every line). Most of them missing means the
        tables likely write ids differently (``7`` and ``007``): each such customer counts twice.
    labelled_cutoffs
        Monthly cutoffs ``c = as_of - H - 30k`` with ``c >= first_transaction + min_history_days``:
        the cutoffs whose label window ``(c, c + H]`` has closed by as-of.
    latest_labelled_cutoff, customers_at_latest_cutoff, churners_at_latest_cutoff
        The latest of them (None when there is none); its customers with a purchase on or before it,
        and how many of those made no purchase in its label window.
    backtest_fits, max_backtest_horizon_days
        Whether one backtest fold fits at ``horizon_days`` (history >= min_history_days + 2 H), and
        the longest horizon one would fit at (None when even 1 day does not).
    models
        One :class:`ModelReadiness` per model: ``btyd``, ``gamma_gamma``, ``gbm``, ``hybrid``,
        ``backtest``.
    errors
        Why nothing can be fitted at all (empty when something can).
    warnings
        What is missing or thin, and what data would fix it.
    """

    as_of: dt.date | None
    horizon_days: int
    min_history_days: int
    customers_known: int
    customers_with_purchase: int
    repeat_buyers: int
    repeat_buyers_positive_spend: int
    first_transaction: dt.date | None
    last_transaction: dt.date | None
    first_purchase: dt.date | None
    history_days: int
    has_events: bool
    has_customers: bool
    has_signup_ts: bool
    customers_with_lines: int
    lines_not_in_customers: int
    labelled_cutoffs: int
    latest_labelled_cutoff: dt.date | None
    customers_at_latest_cutoff: int
    churners_at_latest_cutoff: int
    backtest_fits: bool
    max_backtest_horizon_days: int | None
    models: tuple[ModelReadiness, ...]
    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when at least something can be fitted (no errors)."""
        return not self.errors

    def model(self, name: str) -> ModelReadiness:
        """The verdict of the model ``name``."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in the readiness report; choose from {[m.name for m in self.models]}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: dates as ISO strings, lists for the sequences."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, dt.date):
                out[key] = value.isoformat()
            elif isinstance(value, tuple):
                out[key] = list(value)
            else:
                out[key] = value
        return out

    def format(self) -> str:
        """A short human-readable summary: a few lines, then one line per model."""
        day = "-" if self.as_of is None else self.as_of.isoformat()
        lines = [f"readiness as of {day}, horizon {self.horizon_days} days"]
        lines.append(
            f"  customers: {self.customers_known:,} known, {self.customers_with_purchase:,} with a purchase, "
            f"{self.repeat_buyers:,} repeat buyers ({self.repeat_buyers_positive_spend:,} with positive spend)"
        )
        span = (
            "no transactions"
            if self.first_transaction is None
            else f"{self.first_transaction} to {self.last_transaction} ({self.history_days:,} days to the as-of)"
        )
        yes = {True: "yes", False: "no"}
        lines.append(
            f"  history: {span}; events: {yes[self.has_events]}, customers table: "
            f"{yes[self.has_customers]}, signup_ts: {yes[self.has_signup_ts]}"
        )
        cutoff = (
            ""
            if self.latest_labelled_cutoff is None
            else f" (latest {self.latest_labelled_cutoff}, {self.customers_at_latest_cutoff:,} customers "
            "with a purchase)"
        )
        longest = "none" if self.max_backtest_horizon_days is None else f"up to {self.max_backtest_horizon_days} days"
        lines.append(
            f"  labelled cutoffs: {self.labelled_cutoffs}{cutoff}; backtest: "
            f"{yes[self.backtest_fits]} (horizons that fit: {longest})"
        )
        width = max(len(m.name) for m in self.models)
        for m in self.models:
            lines.append(f"  {'ok' if m.ok else 'not ok':<6}  {m.name:<{width}}  {m.detail}")
        if self.errors:
            lines.append("NOTHING CAN BE FITTED:")
            lines += [f"  error: {e}" for e in self.errors]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)
