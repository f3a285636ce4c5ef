"""The tier config's ``[risk_bands]`` and ``[acquisition_cost]`` sections: what the marketing fields read.

:mod:`churnclv.models.marketing` turns ``p_churn`` into a churn risk band (low, medium, high) at the
cut points of ``[risk_bands]``, and the 12-month CLV into a net CLV after the acquisition cost of
``[acquisition_cost]``: a customers-table column holding each customer's cost, else a cost per
acquisition channel, else a default. Both are validated when the tier config is loaded; every
error names the key, the rule and the fix. The defaults here are the shipped ``tiers.toml``'s (they
serve configs saved before the sections existed).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from churnclv.config_schema import Fix, Section, rule_error

__all__ = ["RISK_BAND_NAMES", "AcquisitionCost", "RiskBands"]

#: The churn risk bands, from the lowest risk up.
RISK_BAND_NAMES: tuple[str, ...] = ("low", "medium", "high")

CutPoint = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False), Fix("a probability strictly between 0 and 1")]
Cost = Annotated[float, Field(ge=0, allow_inf_nan=False), Fix("an amount of money >= 0, e.g. 12.5")]


def _attribute_name(name: str) -> str:
    if not name.strip():
        raise rule_error(
            "must name a customers-table column (a non-empty string)",
            'write the column\'s name, e.g. "acquisition_channel"',
            got=name,
        )
    return name


AttributeName = Annotated[str, AfterValidator(_attribute_name), Fix("write the name of a customers-table column")]


class RiskBands(Section):
    """``[risk_bands]``: ``p_churn`` below ``medium`` is low risk, from ``medium`` medium, from ``high`` high."""

    medium: CutPoint = 0.5
    high: CutPoint = 0.8

    @model_validator(mode="after")
    def _increasing(self) -> RiskBands:
        if not self.medium < self.high:
            raise rule_error(
                f"must be above risk_bands.medium ({self.medium:g}): the cut points rise from low to high risk",
                "raise high or lower medium, e.g. medium = 0.5 and high = 0.8",
                key=("high",),
                got=self.high,
            )
        return self

    @property
    def cut_points(self) -> tuple[float, float]:
        """``(medium, high)``: where the medium and the high band start."""
        return (self.medium, self.high)


class AcquisitionCost(Section):
    """``[acquisition_cost]``: each customer's acquisition cost (currency), first found of: the
    customers-table column ``column`` (a number >= 0), the cost of the customer's channel (the
    column ``channel_column``) in ``by_channel``, ``default`` (unset: unknown, net CLV null)."""

    column: AttributeName = "acquisition_cost"
    channel_column: AttributeName = "acquisition_channel"
    by_channel: dict[str, Cost] = Field(default_factory=dict)
    default: Cost | None = None
