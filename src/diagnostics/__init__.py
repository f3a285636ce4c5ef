"""The diagnostics kit: evaluation plots and the tables behind them, for BTYD and churnclv models.

Every ``plot_*`` takes ``ax=None`` (a new Figure, never pyplot, when omitted) and returns the Axes; the
numbers it draws come from the function named next to it, which returns a DataFrame. BTYD quantities
take an explicit ``time_unit`` (``"days"`` or ``"weeks"``).

- holdout purchases by frequency: :func:`holdout_by_frequency`, :func:`plot_holdout_by_frequency`;
- frequency/recency matrices: :func:`frequency_recency_matrix`, :func:`p_alive_matrix`,
  :func:`plot_frequency_recency_matrix`, :func:`plot_p_alive_matrix`;
- tracking over time: :func:`purchases_over_time`, :func:`plot_purchases_over_time` (cumulative or
  incremental);
- gain, lift, Lorenz: :func:`gain_table`, :func:`lorenz_table`, :func:`plot_gain`, :func:`plot_lift`,
  :func:`plot_lorenz`;
- calibration of p_churn: :func:`calibration_table`, :func:`plot_calibration_curve`;
- cohort retention: :func:`cohort_retention`, :func:`cohort_matrix`, :func:`plot_cohort_retention`;
- RFM: :func:`rfm_table`, :func:`rfm_segments`, :func:`plot_rfm`;
- tiers: :func:`tier_summary`, :func:`tier_mix_over_time`, :func:`migration_matrix`, :func:`plot_tier_mix`,
  :func:`plot_tier_mix_over_time`, :func:`plot_tier_migration`.

:func:`save` writes an Axes' figure as PNG.
"""

from churnclv.diagnostics.calibration import calibration_table, plot_calibration_curve
from churnclv.diagnostics.cohorts import cohort_matrix, cohort_retention, plot_cohort_retention
from churnclv.diagnostics.gains import gain_table, lorenz_table, plot_gain, plot_lift, plot_lorenz
from churnclv.diagnostics.holdout import holdout_by_frequency, plot_holdout_by_frequency
from churnclv.diagnostics.inputs import TIME_UNITS, DiagnosticsError
from churnclv.diagnostics.matrices import (
    frequency_recency_matrix,
    p_alive_matrix,
    plot_frequency_recency_matrix,
    plot_p_alive_matrix,
)
from churnclv.diagnostics.rfm import plot_rfm, rfm_segments, rfm_table
from churnclv.diagnostics.tiers import plot_tier_migration, plot_tier_mix, plot_tier_mix_over_time, tier_mix_over_time
from churnclv.diagnostics.tracking import expected_repeat_purchases, plot_purchases_over_time, purchases_over_time
from churnclv.models.tier_report import migration_matrix, tier_summary
from churnclv.plotting import save

__all__ = [
    "TIME_UNITS",
    "DiagnosticsError",
    "calibration_table",
    "cohort_matrix",
    "cohort_retention",
    "expected_repeat_purchases",
    "frequency_recency_matrix",
    "gain_table",
    "holdout_by_frequency",
    "lorenz_table",
    "migration_matrix",
    "p_alive_matrix",
    "plot_calibration_curve",
    "plot_cohort_retention",
    "plot_frequency_recency_matrix",
    "plot_gain",
    "plot_holdout_by_frequency",
    "plot_lift",
    "plot_lorenz",
    "plot_p_alive_matrix",
    "plot_purchases_over_time",
    "plot_rfm",
    "plot_tier_migration",
    "plot_tier_mix",
    "plot_tier_mix_over_time",
    "purchases_over_time",
    "rfm_segments",
    "rfm_table",
    "save",
    "tier_mix_over_time",
    "tier_summary",
]
