"""What the diagnostics' plots share beyond :mod:`churnclv.plotting` (whose ``_axes`` and ``save`` they use)."""

from __future__ import annotations

from matplotlib.axes import Axes

__all__ = ["reference_line"]

REFERENCE_GID = "reference"


def reference_line(ax: Axes, x: list[float], y: list[float], label: str) -> None:
    """A dotted reference line (the diagonal, a lift of 1), drawn once per Axes however many models are added."""
    if not any(line.get_gid() == REFERENCE_GID for line in ax.lines):
        ax.plot(x, y, color="grey", linestyle=":", label=label, gid=REFERENCE_GID)
